"""Python 3.10 (JetPack 6) really works: every module imports, core units run, in a 3.10 venv.

scripts/install.sh makes ``.venv310`` (light: no torch or runtimes) where a 3.10 interpreter
exists; elsewhere this test is skipped with that reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY310 = ROOT / ".venv310" / "bin" / "python"


@pytest.mark.skipif(not PY310.exists(), reason="no .venv310 (no Python 3.10 on this machine)")
def test_every_module_imports_and_core_units_run_on_310():
    r = subprocess.run(
        [str(PY310), "-I", str(ROOT / "scripts" / "py310_smoke.py")],
        capture_output=True, text=True, timeout=300, cwd="/",
    )  # fmt: skip
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["python"].startswith("3.10")
    assert doc["imports"]["errors"] == {}
    ok = set(doc["imports"]["ok"])
    assert {"lightseg.judge.verdict", "lightseg.benchmarks.inputs", "lightseg.data.sets"} <= ok
    assert len(ok) >= 20, doc["imports"]
    assert doc["core"]["judge_same"] == "pass" and doc["core"]["judge_wrong"] == "fail"
    assert doc["core"]["input_set_shape"] == [2, 3, 32, 32]
    assert doc["core"]["input_set_lesion_pixels"] > 0
    assert r.returncode == 0
