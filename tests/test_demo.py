"""The main job end to end on a tiny trained checkpoint (the shipped one runs in `make demo`)."""

import json
from pathlib import Path

from lightseg.cli import main

TINY = Path(__file__).parent / "demos" / "fixtures" / "tiny_lightunet"


def test_demo_exports_judges_and_times(tmp_path):
    out = tmp_path / "demo"
    rc = main(["demo", "--checkpoint", str(TINY), "--out", str(out),
               "--targets", "android-ort-int8", "--n", "3", "--runs", "3"])  # fmt: skip
    assert rc == 0
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is True
    verdicts = {v["name"]: v for v in parity["backends"]}
    assert verdicts["ort-int8"]["status"] == "pass"
    assert verdicts["onnx-fp32"]["metrics"]["prob_abs_max"] < 1e-4
    bench = json.loads((out / "bench.json").read_text())
    names = {b["name"] for b in bench["backends"]}
    assert {"pytorch-reference", "ort-int8"} <= names
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
