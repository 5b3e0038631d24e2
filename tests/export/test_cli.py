"""lightseg export / doctor on the command line: bad input exits 2 with one line."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from lightseg.cli import main


def test_unknown_target_exits_2(tiny_checkpoint, tmp_path, capsys):
    assert (
        main(["export", tiny_checkpoint, "--targets", "toaster", "--out", str(tmp_path / "o")]) == 2
    )
    assert "unknown target" in capsys.readouterr().err


def test_opset_11_refused(tiny_checkpoint, tmp_path, capsys):
    rc = main(
        ["export", tiny_checkpoint, "-t", "x86-ort-int8", "--opset", "11", "-o", str(tmp_path)]
    )
    assert rc == 2 and "opset 11" in capsys.readouterr().err


def test_missing_and_corrupt_checkpoint(tiny_checkpoint, tmp_path, capsys):
    assert (
        main(["export", str(tmp_path / "nope"), "-t", "x86-ort-int8", "-o", str(tmp_path / "a")])
        == 2
    )

    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    w = bad / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    assert main(["export", str(bad), "-t", "x86-ort-int8", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sha256" in err


def test_non_empty_out_needs_force(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "x.txt").write_text("keep")
    assert main(["export", tiny_checkpoint, "-t", "x86-ort-int8", "-o", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err


def test_export_cli_writes_manifest_last(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["export", tiny_checkpoint, "-t", "x86-ort-int8", "-o", str(out), "--calib-n", "4"])
    text = capsys.readouterr().out
    statuses = {a["name"]: a["verification"]["status"]
                for a in json.loads((out / "manifest.json").read_text())["artifacts"]}  # fmt: skip
    assert statuses["onnx-fp32"] == "pass"
    assert rc == (0 if set(statuses.values()) == {"pass"} else 1)  # strict int8 gate decides
    assert "[1/2] onnx" in text and "model-int8.onnx" in text
    m = json.loads((out / "manifest.json").read_text())
    assert m["extra"]["calibration"]["method"] == "minmax"
    assert {k: m["extra"]["calibration"]["data"][k] for k in ("name", "seed", "n")} == {
        "name": "calibration",
        "seed": 101,
        "n": 4,
    }
    assert m["extra"]["input_sets"]["verification"]["seed"] == 202
    assert not [p for p in out.rglob(".*")]  # no temp files left behind


def test_list_targets_and_doctor(capsys):
    assert main(["export", "--list-targets"]) == 0
    listed = capsys.readouterr().out
    for name in ("android-ort-int8", "iphone-coreml-fp16", "jetson-trt-int8", "web-wasm"):
        assert name in listed
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "jetson-trt-fp16" in out and "TensorRT" in out


@pytest.mark.parametrize("method", ["bogus"])
def test_bad_calibration_method(tiny_checkpoint, tmp_path, method):
    rc = main(
        [
            "export",
            tiny_checkpoint,
            "-t",
            "x86-ort-int8",
            "-o",
            str(tmp_path / "c"),
            "--calibration",
            method,
        ]
    )
    assert rc == 2


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is not None, reason="installed")
def test_named_target_without_backend_exits_2_with_install_hint(tiny_checkpoint, tmp_path, capsys):
    rc = main(["export", tiny_checkpoint, "-t", "android-litert", "-o", str(tmp_path / "l")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "litert" in err
    assert not (tmp_path / "l").exists()  # refused before any work


def test_calib_data_from_user(tiny_checkpoint, tmp_path, capsys):
    import numpy as np

    good = tmp_path / "calib.npy"
    np.save(good, np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32))
    out = tmp_path / "u"
    args = ["export", tiny_checkpoint, "-t", "x86-ort-int8", "-o", str(out)]
    assert main([*args, "--calib-data", str(good)]) in (0, 1)  # 1: int8 misses the strict gate
    m = json.loads((out / "manifest.json").read_text())
    assert m["extra"]["calibration"]["data"] == {"name": "user", "source": "calib.npy", "n": 5}
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 1, 8, 8), np.float32))
    assert main([*args, "--force", "--calib-data", str(bad)]) == 2
    assert "expected" in capsys.readouterr().err
