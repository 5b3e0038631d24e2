"""`lightseg parity` / `bench` end to end on a tiny trained model with ONNX artifacts."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_data import artifact, write_manifest

from lightseg.cli import main
from lightseg.runtimes.base import RUNNERS


def test_parity_passes_and_writes_reports(good_dir, tmp_path):
    out = tmp_path / "r"
    rc = main(
        [
            "parity",
            str(good_dir),
            "--n",
            "3",
            "--json",
            f"{out}.json",
            "--md",
            f"{out}.md",
            "--html",
            f"{out}.html",
        ]
    )
    assert rc == 0
    doc = json.loads(Path(f"{out}.json").read_text())
    assert doc["schema_version"] == 1 and doc["passed"] is True
    (b,) = doc["backends"]
    assert b["status"] == "pass" and b["metrics"]["prob_abs_max"] < 1e-4
    assert b["metrics"]["gt_dice_ref"] > 0.3  # the tiny model really segments lesions (not empty)
    assert "| onnx-fp32 | onnxruntime | fp32 | **pass**" in Path(f"{out}.md").read_text()
    html = Path(f"{out}.html").read_text()
    assert html.count("data:image/png;base64,") >= 2


def test_wrong_outputs_exit_1_naming_backend(export_dir, capsys):
    rc = main(["parity", str(export_dir), "--n", "2"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "onnx-bad (onnxruntime)" in err and "limit" in err and "onnx-fp32" not in err


def test_tampered_artifact_exit_2(good_dir, capsys):
    with open(good_dir / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert main(["parity", str(good_dir), "--n", "1"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_missing_manifest_exit_2(tmp_path, capsys):
    assert main(["parity", str(tmp_path), "--n", "1"]) == 2
    assert "manifest.json" in capsys.readouterr().err


CRASHER = """
import os, signal
from lightseg.runtimes.base import ArtifactRunner

class Crasher(ArtifactRunner):
    def open_impl(self):
        pass
    def infer_impl(self, x):
        os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_crashing_backend_is_its_failure_only(good_dir, trained, tmp_path, monkeypatch, capsys):
    (tmp_path / "crashplug.py").write_text(CRASHER)
    shutil.copy2(good_dir / "model.onnx", good_dir / "crash.onnx")
    write_manifest(
        good_dir,
        trained[1],
        [
            artifact(good_dir, "onnx-fp32", "model.onnx"),
            artifact(good_dir, "crashy", "crash.onnx", backend="crashy"),
        ],
    )
    # an explicit registry entry: the worker receives it with its open message
    monkeypatch.setitem(RUNNERS, "crashy", f"{tmp_path / 'crashplug.py'}:Crasher")
    rc = main(["parity", str(good_dir), "--n", "2", "--json", str(tmp_path / "p.json")])
    assert rc == 1
    assert "crashed (signal 11)" in capsys.readouterr().err
    status = {
        b["name"]: b["status"] for b in json.loads((tmp_path / "p.json").read_text())["backends"]
    }
    assert status == {"onnx-fp32": "pass", "crashy": "error"}


def test_unavailable_backend_is_skipped(good_dir, trained, tmp_path):
    shutil.copy2(good_dir / "model.onnx", good_dir / "fake.mlpackage")
    write_manifest(
        good_dir,
        trained[1],
        [
            artifact(good_dir, "onnx-fp32", "model.onnx"),
            artifact(good_dir, "coreml-fp16", "fake.mlpackage", "coreml", "fp16"),
        ],
    )
    if sys.platform == "darwin":
        return
    rc = main(["parity", str(good_dir), "--n", "2", "--json", str(tmp_path / "p.json")])
    assert rc == 0
    b = json.loads((tmp_path / "p.json").read_text())["backends"][1]
    assert b["status"] == "skipped" and b["message"] == "Core ML prediction needs macOS"


def test_device_pack_round_trip(good_dir, tmp_path, capsys):
    pack, res = tmp_path / "pack", tmp_path / "res"
    assert main(["parity", "pack", str(good_dir), "--out", str(pack), "--n", "2"]) == 0
    doc = json.loads((pack / "pack.json").read_text())
    assert (pack / "inputs.f32").stat().st_size == 4 * int(np.prod(doc["input"]["shape"]))
    script = [sys.executable, str(pack / "device_script.py"), str(pack), "--out", str(res)]
    subprocess.run([*script, "--runs", "3", "--threads", "1"], check=True, capture_output=True)
    timings = json.loads((res / "timings.json").read_text())
    assert timings["artifact"] == "onnx-fp32" and len(timings["latency_ms"]) == 3
    assert main(["parity", "compare", str(pack), "--device-results", str(res)]) == 0
    # NaN in the device outputs: a failed structure gate (exit 1)
    y = np.fromfile(res / "outputs.f32", "<f4")
    y[5] = np.nan
    y.tofile(res / "outputs.f32")
    assert main(["parity", "compare", str(pack), "--device-results", str(res)]) == 1
    assert "structure" in capsys.readouterr().err
    # wrong size: bad input (exit 2)
    y[:-7].tofile(res / "outputs.f32")
    assert main(["parity", "compare", str(pack), "--device-results", str(res)]) == 2
    assert "expected" in capsys.readouterr().err


def test_bench_json(good_dir, tmp_path):
    out = tmp_path / "b.json"
    args = ["bench", str(good_dir), "--runs", "6", "--warmup", "1", "--no-peers"]
    assert main([*args, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    names = [b["name"] for b in doc["backends"]]
    assert names == ["pytorch-reference", "onnx-fp32"]
    for b in doc["backends"]:
        assert b["status"] == "ok" and len(b["samples_ms"]) == 6
        assert 0 < b["min"] <= b["p50"] <= b["p90"] <= b["max"]
        assert b["peak_rss_mb"] > 10 and b["load_s"] > 0
    assert doc["peak_gflops"]["fp32"] > 0 and doc["model_gmacs"] > 0
