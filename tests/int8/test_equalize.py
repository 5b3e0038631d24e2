"""Concat equalisation: exact in fp32, and it gives the skips their uint8 resolution back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightseg.checkpoint import load_checkpoint
from lightseg.data.sets import input_set
from lightseg.errors import LightsegError
from lightseg.models import create_model, fold_swish_beta
from lightseg.models.equalize import FRACTION, concat_ranges, equalize_concats

QAT = Path(__file__).resolve().parents[2] / "lightseg" / "checkpoints" / "qat"


@pytest.fixture(scope="module")
def shipped():
    """The shipped model, beta folded (what the exporter converts), and 4 calibration slices."""
    ck = load_checkpoint(None)
    model, _ = fold_swish_beta(ck.model)
    return model, input_set("calibration", ck.preprocessing, 4).x


def concat_inputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each Up block's concat (its DoubleConv's input) on ``x``."""
    seen: dict[str, np.ndarray] = {}
    hooks = [
        model.get_submodule(f"{n}.conv").register_forward_pre_hook(
            lambda m, i, n=n: seen.__setitem__(n, i[0].numpy().copy())
        )
        for n in model.up_names
    ]
    with torch.inference_mode():
        model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    return seen


def skip_sqnr_db(cat: np.ndarray, skip_channels: int) -> float:
    """SQNR of the skip channels after per-tensor asymmetric uint8 quantize-dequantize of the
    whole concat (what ORT's QDQ does to it)."""
    lo, hi = min(float(cat.min()), 0.0), max(float(cat.max()), 0.0)
    scale = (hi - lo) / 255
    zp = np.round(-lo / scale)
    q = (np.clip(np.round(cat / scale) + zp, 0, 255) - zp) * scale
    s, e = cat[:, :skip_channels], q[:, :skip_channels] - cat[:, :skip_channels]
    return float(10 * np.log10((s**2).sum() / (e**2).sum()))


def test_equalized_model_is_exact_and_original_untouched(shipped):
    model, x = shipped
    before = {k: v.clone() for k, v in model.state_dict().items()}
    eq, report = equalize_concats(model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.inference_mode():
        a, b = model(torch.from_numpy(x)), eq(torch.from_numpy(x))
    assert float((a - b).abs().max()) <= 1e-4 * float(a.abs().max())
    assert torch.equal(a.argmax(1), b.argmax(1))
    scaled = [r["scaled_channels"] for r in report["blocks"].values()]
    assert sum(scaled) > 0 and report["fraction"] == FRACTION


def test_upsampled_channels_fit_the_skip_and_skip_sqnr_rises(shipped):
    model, x = shipped
    eq, report = equalize_concats(model, x)
    before, after = concat_ranges(model, x), concat_ranges(eq, x)
    for name, r in before.items():
        limit = FRACTION * float(r["skip_max"]) * (1 + 1e-5)
        assert float(after[name]["up_abs"].max()) <= limit, (name, report["blocks"][name])
    # the shipped model's up2 ConvTranspose: 32 on these 4 slices (88 on 16), its skip 9
    worst = max(report["blocks"], key=lambda n: report["blocks"][n]["up_abs_max"])
    assert report["blocks"][worst]["up_abs_max"] > 3 * report["blocks"][worst]["skip_max"]
    skip_w = model.get_submodule(f"{worst}.conv.double_conv.0").in_channels - (
        model.get_submodule(f"{worst}.up").out_channels
    )
    db0 = skip_sqnr_db(concat_inputs(model, x)[worst], skip_w)
    db1 = skip_sqnr_db(concat_inputs(eq, x)[worst], skip_w)
    assert db1 >= db0 + 10, (db0, db1)


def test_bilinear_blocks_are_skipped_unchanged():
    torch.manual_seed(0)
    model = create_model("lightunet", base=4, bilinear=True, activation="silu").eval()
    x = torch.randn(2, 3, 32, 32).numpy()
    eq, report = equalize_concats(model, x)
    assert all("skipped" in r for r in report["blocks"].values())
    with torch.inference_mode():
        assert torch.equal(model(torch.from_numpy(x)), eq(torch.from_numpy(x)))


def test_export_records_equalization_and_fp32_still_passes(tiny_ckpt, tmp_path):
    from lightseg.export.targets import export

    m = export(tiny_ckpt, "x86-ort-int8", tmp_path / "eq", calib_n=8, n_verify=8, equalize=True)
    arts = {a.name: a for a in m.artifacts}
    assert arts["onnx-fp32"].verification["status"] == "pass"
    assert arts["onnx-fp32"].verification["prob_abs_max"] <= 1e-5
    eq = arts["onnx-int8"].options["equalized"]
    assert arts["onnx-fp32"].options["equalized"] == eq
    assert len(eq["blocks"]) == 3 and eq["images"] == 8
    assert m.extra["calibration"]["equalize"] is True


def test_equalize_with_trained_ranges_is_refused(tmp_path):
    from lightseg.export.targets import export

    with pytest.raises(LightsegError, match="--equalize"):
        export(QAT, "x86-ort-int8", tmp_path / "q",
               calibration="trained", equalize=True)  # fmt: skip
    assert not (tmp_path / "q").exists()
