"""android_demo's plain-Java pre/post-processing vs golden vectors from the Python pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_data import PRE, SIZE, synthetic_slice
from java_harness import missing, run_junit

from lightseg.data.overlay import overlay_argb
from lightseg.data.preprocessing import Preprocessing
from lightseg.fileio import sha256_path

CASES = [  # name, h, w, preprocessing (pad smaller, crop larger, mixed, resize, 1 channel)
    ("pad", 48, 56, PRE),
    ("crop", 80, 72, PRE),
    ("mixed", 90, 40, Preprocessing(40.0, 400.0, 3, SIZE, "pad")),
    ("resize", 50, 70, Preprocessing(0.0, 600.0, 3, SIZE, "resize")),
    ("one_channel", 64, 64, Preprocessing(-50.0, 350.5, 1, 32, "pad")),
]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def _write(d: Path, name: str, a: np.ndarray, dtype: str) -> str:
    (d / name).write_bytes(np.ascontiguousarray(a, dtype=dtype).tobytes())
    return name


def write_golden(d: Path, model: torch.nn.Module) -> dict:
    """HU slices, expected tensors, logits (the tiny U-Net, or random with K=1/3), masks, pixels."""
    cases = []
    rng = np.random.default_rng(7)
    for i, (name, h, w, pre) in enumerate(CASES):
        hu, _ = synthetic_slice(h, w, seed=i)
        hu[0, 0] = -3000.0  # below the window
        hu[-1, -1] = 3000.0  # above it
        x = pre(hu)
        if pre.channels == 3 and pre.size == SIZE:
            with torch.no_grad():
                logits = model(torch.from_numpy(x[None]))[0].numpy()
        else:  # other class counts: K=1 (sigmoid rule) and K=3
            k = 1 if pre.channels == 1 else 3
            logits = rng.normal(0, 2, (k, pre.size, pre.size)).astype(np.float32)
        k = logits.shape[0]
        mask = (logits[0] > 0).astype(np.int32) if k == 1 else logits.argmax(0).astype(np.int32)
        probs = 1 / (1 + np.exp(-logits.astype(np.float64))) if k == 1 else _softmax(logits)
        case = {
            "name": name,
            "h": h,
            "w": w,
            "k": k,
            "preprocessing": pre.to_dict(),
            "tensor_atol": 1e-6 if pre.fit == "resize" else 0.0,
            "hu": _write(d, f"{name}_hu.f32", hu, "<f4"),
            "tensor": _write(d, f"{name}_tensor.f32", x, "<f4"),
            "logits": _write(d, f"{name}_logits.f32", logits, "<f4"),
            "probs": _write(d, f"{name}_probs.f32", probs, "<f4"),
            "mask": _write(d, f"{name}_mask.i32", mask, "<i4"),
            "overlay": _write(d, f"{name}_overlay.i32", overlay_argb(x[0], mask), "<u4"),
        }
        if pre.fit == "pad":
            orig = np.zeros((h, w), np.int32)  # inverse of the centre pad/crop
            s = pre.size
            sy, sx, dy, dx = (
                max(0, (h - s) // 2),
                max(0, (w - s) // 2),
                max(0, (s - h) // 2),
                max(0, (s - w) // 2),
            )
            ch, cw = min(h, s), min(w, s)
            orig[sy : sy + ch, sx : sx + cw] = mask.reshape(s, s)[dy : dy + ch, dx : dx + cw]
            case["mask_original"] = _write(d, f"{name}_mask_orig.i32", orig, "<i4")
        cases.append(case)
        assert 0 < mask.sum() < mask.size, f"{name}: golden mask must hold both classes"
    values = rng.gamma(2.0, 3.0, 37)
    pct = {
        "values": values.tolist(),
        "p50": np.percentile(values, 50),
        "p90": np.percentile(values, 90),
    }
    doc = {"cases": cases, "percentile": pct}
    (d / "cases.json").write_text(json.dumps(doc))
    _write_pack(d / "pack", np.fromfile(d / cases[0]["tensor"], "<f4").reshape(1, 3, SIZE, SIZE))
    return doc


def _write_pack(pack: Path, x: np.ndarray) -> None:
    """A parity pack as lightseg.benchmarks.pack writes it; two .ort artifacts, one corrupt."""
    from lightseg.benchmarks.pack import KIND, SCHEMA_VERSION

    pack.mkdir()
    (pack / "m8.ort").write_bytes(b"int8 model bytes")
    (pack / "m32.ort").write_bytes(b"fp32 model bytes")
    arts = [
        {
            "name": "onnx-fp32",
            "path": "m.onnx",
            "format": "onnx",
            "precision": "fp32",
            "sha256": "00" * 32,
        },
        {
            "name": "ort-fp32",
            "path": "m32.ort",
            "format": "ort",
            "precision": "fp32",
            "sha256": "ff" * 32,
        },  # does not match: must be refused
        {
            "name": "ort-int8",
            "path": "m8.ort",
            "format": "ort",
            "precision": "int8",
            "sha256": sha256_path(pack / "m8.ort"),
        },
    ]
    manifest = {"schema_version": 1, "preprocessing": PRE.to_dict(), "artifacts": arts}
    meta = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "manifest": manifest,
        "preprocessing": PRE.to_dict(),
        "input": {
            "name": "image",
            "shape": list(x.shape),
            "dtype": "float32",
            "file": "inputs.f32",
        },
        "output": {"name": "logits", "shape": [len(x), 2, *x.shape[2:]], "dtype": "float32"},
        "masks": None,
    }
    (pack / "pack.json").write_text(json.dumps(meta))
    x.astype("<f4").tofile(pack / "inputs.f32")


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_java_core_matches_python_golden_vectors(tmp_path, tiny_model):
    golden = tmp_path / "golden"
    golden.mkdir()
    doc = write_golden(golden, tiny_model)
    run, failed, out = run_junit(tmp_path / "classes", {"lightseg.golden": str(golden)})
    assert failed == 0, out
    assert run >= 12, out
    # the pack round trip really ran: the runtimes' device reader accepts what Java wrote
    from lightseg.benchmarks.pack import read_pack
    from lightseg.runtimes.device import DeviceResultsRunner

    pack = read_pack(golden / "pack")
    x = pack.inputs()
    runner = DeviceResultsRunner(
        golden / "pack", pack.output_shape, x, pack.precision_of_results(golden / "pack")
    )
    runner.open()
    logits = np.fromfile(golden / doc["cases"][0]["logits"], "<f4").reshape(pack.output_shape)
    np.testing.assert_array_equal(runner.infer(x), logits)
    assert runner.timings == {
        "backend": "ort-mobile",
        "device": "junit",
        "artifact": "ort-int8",
        "latency_ms": [1.5, 2.25],
        "load_ms": 12,
        "versions": {"java": "junit"},
    }
    assert runner.precision == "int8"


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_java_golden_tests_fail_on_a_wrong_vector(tmp_path, tiny_model):
    """The harness can fail: one flipped mask pixel in the golden file fails the Java tests."""
    golden = tmp_path / "golden"
    golden.mkdir()
    doc = write_golden(golden, tiny_model)
    f = golden / doc["cases"][0]["mask"]
    m = np.fromfile(f, "<i4")
    m[5] = 1 - m[5]
    m.astype("<i4").tofile(f)
    _, failed, out = run_junit(tmp_path / "classes", {"lightseg.golden": str(golden)})
    assert failed >= 2, out  # the mask test and the overlay test
