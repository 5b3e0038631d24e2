"""The perf table's numbers from known inputs: GFLOP/s, % of peak, speed-ups, size ratios."""

from __future__ import annotations

import pytest

from lightseg.pipeline import perf


def _b(name, backend, precision, p50, size=0, status="ok"):
    return {
        "name": name,
        "backend": backend,
        "precision": precision,
        "status": status,
        "message": "" if status == "ok" else "boom",
        "p50": p50,
        "p90": p50 * 1.1,
        "cv": 0.05,
        "peak_rss_mb": 100.0,
        "size_bytes": size,
    }


BENCH = {
    "backends": [
        _b("pytorch-reference", "pytorch", "fp32", 400.0),
        _b("onnx-fp32", "onnxruntime", "fp32", 200.0, size=1000),
        _b("onnx-int8", "onnxruntime", "int8", 100.0, size=280),
        _b("openvino-bf16", "openvino", "bf16", 50.0, size=1000),
        _b("executorch-fp32", "executorch", "fp32", 0.0, status="error"),
        _b("unet-pytorch-fp32", "pytorch-eager", "fp32", 1000.0),
        _b("unet-onnx-fp32", "onnxruntime", "fp32", 500.0, size=2500),
        _b("unet-onnx-int8", "onnxruntime", "int8", 240.0, size=700),
    ]
}
PEAKS = {"fp32": 250.0, "bf16": 800.0, "int8": 400.0}
GFLOP = {"lightunet": 38.38, "unet": 96.0}
VERDICTS = {
    "onnx-fp32": {"status": "pass", "metrics": {"dice_ref_mean": 1.0, "dice_ref_min": 1.0}},
    "onnx-int8": {"status": "pass", "metrics": {"dice_ref_mean": 0.995, "dice_ref_min": 0.99}},
    "openvino-bf16": {"status": "fail", "metrics": {"dice_ref_mean": 0.9, "dice_ref_min": 0.8}},
}


def test_rows_numbers():
    t = {r["name"]: r for r in perf.rows(BENCH, VERDICTS, PEAKS, GFLOP)}
    r = t["onnx-fp32"]
    assert r["effective_gflops"] == pytest.approx(38.38 / 0.2)  # 191.9 GFLOP/s
    assert r["pct_of_peak"] == pytest.approx(100 * 191.9 / 250.0)  # of the fp32 peak
    assert r["speedup_vs_eager_fp32"] == pytest.approx(2.0)
    assert r["light_vs_unet"] == pytest.approx(2.5)
    assert r["dice_vs_fp32_mean"] == 1.0 and r["parity"] == "pass"
    i8 = t["onnx-int8"]
    assert i8["pct_of_peak"] == pytest.approx(100 * 383.8 / 400.0)  # int8 peak
    assert i8["size_vs_fp32"] == pytest.approx(0.28)
    assert i8["light_vs_unet"] == pytest.approx(2.4)
    assert t["openvino-bf16"]["pct_of_peak"] == pytest.approx(100 * 767.6 / 800.0)
    assert t["pytorch-reference"]["light_vs_unet"] == pytest.approx(2.5)
    assert t["pytorch-reference"]["parity"] == "reference"
    u = t["unet-onnx-fp32"]
    assert u["effective_gflops"] == pytest.approx(96.0 / 0.5)
    assert u["speedup_vs_eager_fp32"] == pytest.approx(2.0)  # vs the unet's own eager
    assert u["size_vs_fp32"] is None and t["unet-onnx-int8"]["size_vs_fp32"] == 0.28
    bad = t["executorch-fp32"]
    assert bad["p50_ms"] is None and bad["effective_gflops"] is None
    assert bad["status"] == "error: boom"


def test_batch_rows_count_images():
    t = {r["name"]: r for r in perf.rows(BENCH, {}, PEAKS, GFLOP, batch=4)}
    assert t["onnx-fp32"]["images_per_s"] == pytest.approx(20.0)
    assert t["onnx-fp32"]["effective_gflops"] == pytest.approx(4 * 38.38 / 0.2)


def test_targets_verdicts():
    table = perf.rows(BENCH, VERDICTS, PEAKS, GFLOP)
    got = perf.targets(table)
    best = got["best_speedup_ge_4x_with_dice_ge_0.99"]
    assert best["artifact"] == "onnx-int8"  # openvino-bf16 is faster but fails parity
    assert best["value"] == pytest.approx(4.0) and best["met"]
    assert got["fp32_backend_pct_of_fp32_peak_ge_70"]["met"]
    low = got["best_low_precision_pct_of_its_peak_ge_50"]
    assert low["artifact"] == "onnx-int8" and low["met"]
    ratios = got["light_vs_unet_ge_2.3_every_backend"]
    assert ratios["min"] == pytest.approx(2.4) and ratios["met"]
    assert got["int8_size_le_30pct_of_fp32"]["met"]


def test_helpers():
    assert perf.effective_gflops(38.38, 190.0) == pytest.approx(202.0)
    assert perf.effective_gflops(38.38, None) is None
    assert perf.pct_of_peak(100.0, 200.0) == 50.0
    assert perf.pct_of_peak(100.0, None) is None


def test_targets_refuse_trivial_dice_and_a_peak_below_the_model():
    table = perf.rows(BENCH, VERDICTS, PEAKS, GFLOP)
    got = perf.targets(table, lesion_pixels=[0, 0])
    best = got["best_speedup_ge_4x_with_dice_ge_0.99"]
    assert not best["met"] and "trivial" in best["note"]
    low_peaks = {"fp32": 250.0, "bf16": 800.0, "int8": 100.0}  # int8 model beats its "peak"
    got = perf.targets(perf.rows(BENCH, VERDICTS, low_peaks, GFLOP), lesion_pixels=[5])
    assert got["best_speedup_ge_4x_with_dice_ge_0.99"]["met"]
    assert not got["best_low_precision_pct_of_its_peak_ge_50"]["met"]
    assert "peak" in got["fp32_backend_pct_of_fp32_peak_ge_70"]["note"]
