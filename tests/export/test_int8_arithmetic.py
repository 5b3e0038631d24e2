"""Which int8 arithmetic judges an artifact: the target's, where this host's fused kernel is not it.

x86 CPUs without VNNI saturate ORT's fused u8 x s8 conv (lightseg.runtimes.ort.u8s8_saturates);
phones, Jetsons and browsers accumulate in int32. The host probe is patched to "saturates" where a
test must exercise that path on any host; everything else runs the real ONNX Runtime.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import lightseg.runtimes.ort as ort_runtime
from lightseg.artifact import load_manifest
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import input_set
from lightseg.errors import LightsegError
from lightseg.runtimes.base import runner_for
from lightseg.runtimes.ort import run_model, u8s8_saturates
from lightseg.runtimes.worker import Session


@pytest.fixture
def saturating_host(monkeypatch):
    monkeypatch.setattr(ort_runtime, "u8s8_saturates", lambda: True)


@pytest.fixture(scope="module")
def x(ort_export):
    return input_set("verification", Preprocessing.from_dict(ort_export.preprocessing)).x[:8]


def outputs(manifest, name: str, x: np.ndarray, timing: bool = False) -> tuple[np.ndarray, dict]:
    runner = runner_for(manifest, manifest.artifact(name), threads=1)
    runner.timing = timing
    with runner:
        return runner.infer(x), runner.info


def test_export_records_the_arithmetic_of_each_int8_verdict(ort_export):
    """x86 artifacts are judged on the host's kernel; the others on their target's."""
    arts = {a.name: a for a in ort_export.artifacts}
    assert ort_export.extra["host_int8_saturates"] is u8s8_saturates()
    want = {"onnx-int8": "saturating", "ort-int8": "exact", "onnx-int8-trt": "exact"}
    for name, arithmetic in want.items():
        got = arts[name].verification.get("int8_arithmetic")
        assert got == (arithmetic if u8s8_saturates() else None), (name, got)
    assert "int8_arithmetic" not in arts["onnx-fp32"].verification


def test_the_ort_file_runs_exactly_like_the_onnx_it_came_from(ort_export, x):
    """The premise of judging an .ort by its source: on the fused kernel they agree far below one
    quantization step of the logits (bit-identical on AMD Zen 3)."""
    src = ort_export.artifact("ort-int8").options["source_onnx"]["path"]
    ort_file = ort_export.root / ort_export.artifact("ort-int8").path
    a, b = run_model(ort_file, x), run_model(ort_export.root / src, x)
    assert np.abs(a - b).max() < 1e-3
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))


def test_phone_artifact_is_judged_unfused_and_timed_fused(ort_export, x, saturating_host):
    m = load_manifest(ort_export.root)
    src = m.root / m.artifact("ort-int8").options["source_onnx"]["path"]
    judged, info = outputs(m, "ort-int8", x)
    assert info["int8_arithmetic"] == "exact" and info["judged_file"] == "model-int8-fixed.onnx"
    np.testing.assert_array_equal(judged, run_model(src, x, level="basic"))
    timed, info = outputs(m, "ort-int8", x, timing=True)
    assert info["int8_arithmetic"] == "saturating" and "judged_file" not in info
    np.testing.assert_array_equal(timed, run_model(m.root / m.artifact("ort-int8").path, x))
    x86, info = outputs(m, "onnx-int8", x)
    assert info["int8_arithmetic"] == "saturating"
    np.testing.assert_array_equal(x86, run_model(m.root / "model-int8.onnx", x))


def test_latency_workers_open_runners_to_be_timed(ort_export, saturating_host):
    session = Session()
    msg = {"kind": "artifact", "manifest": str(ort_export.root), "artifact": "ort-int8"}
    reply = session.handle({"cmd": "open", "threads": 1, "timing": True, **msg})
    assert reply["ok"] and reply["info"]["int8_arithmetic"] == "saturating", reply
    reply = Session().handle({"cmd": "open", "threads": 1, **msg})
    assert reply["ok"] and reply["info"]["int8_arithmetic"] == "exact", reply


def test_a_changed_source_onnx_is_refused_not_judged(ort_export, tmp_path, saturating_host):
    root = tmp_path / "exp"
    shutil.copytree(ort_export.root, root)
    src = root / "model-int8-fixed.onnx"
    src.write_bytes(src.read_bytes()[:-10])
    m = load_manifest(root)
    with pytest.raises(LightsegError, match="model-int8-fixed.onnx, the ONNX it was converted"):
        runner_for(m, m.artifact("ort-int8"), threads=1).open()


def test_parity_judges_int8_with_the_arithmetic_export_verification_used(ort_export, tmp_path):
    from lightseg.cli import main

    report = tmp_path / "parity.json"
    args = ["--backends", "ort-int8,onnx-int8", "--json", str(report)]
    main(["parity", str(ort_export.root), *args])
    rows = {b["name"]: b for b in json.loads(report.read_text())["backends"]}
    assert set(rows) == {"ort-int8", "onnx-int8"}
    for name, row in rows.items():
        exported = ort_export.artifact(name).verification
        assert row["info"].get("int8_arithmetic") == exported.get("int8_arithmetic"), name
        assert row["status"] == exported["status"], name
        assert row["metrics"]["prob_abs_max"] == pytest.approx(exported["prob_abs_max"], rel=1e-6)


def test_a_source_onnx_outside_the_export_is_refused(ort_export, tmp_path, saturating_host):
    root = tmp_path / "exp"
    shutil.copytree(ort_export.root, root)
    doc = json.loads((root / "manifest.json").read_text())
    ort_doc = next(a for a in doc["artifacts"] if a["name"] == "ort-int8")
    ort_doc["options"]["source_onnx"]["path"] = "../outside.onnx"
    (root / "manifest.json").write_text(json.dumps(doc))
    m = load_manifest(root)
    with pytest.raises(LightsegError, match="leads outside the export folder"):
        runner_for(m, m.artifact("ort-int8"), threads=1).open()
