"""CLI exit codes and the paper table."""

import subprocess
import sys
from pathlib import Path

from lightseg.cli import main

LIGHTSEG = Path(sys.executable).with_name("lightseg")


def test_profile_paper_prints_the_ten_figures():
    r = subprocess.run(
        [LIGHTSEG, "profile", "--paper"], capture_output=True, text=True, env={"COLUMNS": "160"}
    )
    assert r.returncode == 0
    for fig in ("31,043,586", "4,197,986", "404.00", "296.50", "96.51", "38.48", "46.16",
                "17.66", "901.04", "418.64"):  # fmt: skip
        assert r.stdout.count(fig) == 2, fig
    assert " NO " not in r.stdout


def test_exit_codes(tmp_path):
    assert main(["profile", "--input", "3x32x32", "--model", "lightunet"]) == 0
    assert main(["profile", "--input", "banana"]) == 2
    assert main(["profile", "--model", str(tmp_path / "missing")]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["--help"]) == 0


def test_error_is_one_line(tmp_path):
    r = subprocess.run(
        [LIGHTSEG, "profile", "--model", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "error:" in r.stderr
    assert "Traceback" not in r.stderr


def test_profile_json(tmp_path):
    out = tmp_path / "p.json"
    assert (
        main(["profile", "--input", "3x32x32", "--convention", "modern", "--json", str(out)]) == 0
    )
    import json

    d = json.loads(out.read_text())
    assert d["summary"]["params"] == 4_198_000 and len(d["layers"]) > 20
