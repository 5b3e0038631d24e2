"""Strict int8 gates on real ORT QDQ artifacts of the tiny model, on the verification set."""

import numpy as np
import pytest
from bench_data import PRE, export_onnx

from lightseg.data.sets import input_set
from lightseg.export.quantize import quantize_int8
from lightseg.judge.verdict import compare, load_tolerances
from lightseg.runtimes.ort import run_model


@pytest.fixture(scope="module")
def judged(trained, tmp_path_factory):
    """Verdicts of int8 artifacts calibrated on 2 blank images and on the calibration set."""
    model, _ = trained
    root = tmp_path_factory.mktemp("int8")
    export_onnx(model, root / "model.onnx")
    vset = input_set("verification", PRE)
    ref = run_model(root / "model.onnx", vset.x)
    out = {}
    for name, calib in (
        ("blank", np.zeros((2, 3, PRE.size, PRE.size), np.float32)),
        ("calibrated", input_set("calibration", PRE, 16).x),  # minmax: more images, wider
    ):
        quantize_int8(root / "model.onnx", root / f"{name}.onnx", calib, "minmax")
        y = run_model(root / f"{name}.onnx", vset.x)
        out[name] = compare(ref, y, vset.masks, load_tolerances(), "int8", name)
    return out


def test_int8_calibrated_on_blank_images_fails_the_strict_gate(judged):
    """Calibrated on 2 blank images, the activation ranges miss the lesions: no lesion is left."""
    v = judged["blank"]
    assert v.status == "fail", v.reason()
    failed = {c.metric for c in v.failures()}
    assert {
        "small_boundary_max",
        "large_dice_min",
        "gt_dice_ratio",
        "confident_flip_rate",
    } <= failed
    assert v.metrics["slices"] == 64 and v.metrics["small_slices"] >= 48
    assert v.metrics["dice_ref_mean"] < 0.1 and v.metrics["gt_dice"] < 0.05
    assert v.metrics["confident_flips"] > 0


@pytest.mark.int8_kernels
def test_int8_calibrated_on_the_calibration_set_holds_every_observed_gate(judged):
    """Well calibrated, the tiny model's int8 masks hold every observed gate (boundaries within
    a pixel, no confident flip, no large slice below 0.95). Whether 64 slices also decide that it
    keeps 99.5% of the reference's task Dice depends on the CPU's int8 kernels: measured ratio
    0.9976, CI 0.993-1.002 (undecided) on Intel with AMX; CI 0.9966-1.0014 (pass) on AMD EPYC."""
    v = judged["calibrated"]
    assert not v.failures(), v.reason()
    assert [c.metric for c in v.checks if c.status == "undecided"] in ([], ["gt_dice_ratio"])
    lo, hi = v.ci["gt_dice_ratio"]
    assert lo <= v.metrics["gt_dice_ratio"] <= hi and v.metrics["gt_dice_ratio"] >= 0.995
    assert v.status == ("undecided" if lo < 0.995 else "pass"), v.reason()
    assert v.metrics["small_boundary_max"] <= 1.0 and v.metrics["confident_flips"] == 0
