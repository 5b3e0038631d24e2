"""Core ML, OpenVINO, ExecuTorch and LiteRT exports of the tiny model."""

from __future__ import annotations

import importlib.util
import json
import platform

import pytest
from export_checks import strict_int8_verdict

from lightseg.errors import BackendUnavailable
from lightseg.export.verify import verify_new

need = {
    m: pytest.mark.skipif(importlib.util.find_spec(m) is None, reason=f"{m} not installed")
    for m in ("coremltools", "openvino", "executorch")
}


@need["coremltools"]
def test_coreml_spec_fp32_io_ops_metadata(make_ctx, tmp_path):
    import coremltools as ct

    from lightseg.export import coreml

    ctx = make_ctx(tmp_path)
    coreml.build(ctx, "fp16")
    verify_new(ctx)
    a = ctx.artifacts["coreml-fp16"]
    spec = a.options["spec"]
    assert [(d["name"], d["dtype"]) for d in spec["inputs"]] == [("image", "FLOAT32")]
    assert [(d["name"], d["dtype"]) for d in spec["outputs"]] == [("logits", "FLOAT32")]
    assert set(spec["mil_ops"]) >= coreml.EXPECTED_OPS and "cast" in spec["mil_ops"]
    assert a.options["spec_check"] == "passed"
    if platform.system() != "Darwin":
        assert a.verification["status"] == "skipped" and "macOS" in a.verification["reason"]
    ml = ct.models.MLModel(str(tmp_path / a.path), skip_model_load=True)
    meta = ml.user_defined_metadata
    assert json.loads(meta["preprocessing"])["size"] == 32
    assert meta["source_sha256"] == ctx.source_sha256
    assert ml.get_spec().specificationVersion >= 7  # iOS 16


@need["openvino"]
@pytest.mark.int8_kernels
def test_openvino_fp32_and_int8(make_ctx, tmp_path):
    from lightseg.export import openvino, quantize

    ctx = make_ctx(tmp_path)
    quantize.build_int8(ctx)
    openvino.build(ctx, "fp32")
    openvino.build(ctx, "int8")
    verify_new(ctx)
    fp32, int8 = ctx.artifacts["openvino-fp32"], ctx.artifacts["openvino-int8"]
    assert fp32.verification["status"] == "pass" and fp32.verification["prob_abs_max"] < 1e-4
    strict_int8_verdict(int8.verification)
    assert int8.verification["dice_ref_mean"] >= 0.9
    assert (tmp_path / "openvino" / "model-fp32.bin").stat().st_size > 10_000  # fp32, not fp16
    assert fp32.files == {"openvino/model-fp32.bin": fp32.files["openvino/model-fp32.bin"]}


@need["executorch"]
def test_executorch_xnnpack_fp32(make_ctx, tmp_path):
    from lightseg.export import executorch

    ctx = make_ctx(tmp_path)
    executorch.build(ctx, "fp32")
    verify_new(ctx)
    a = ctx.artifacts["executorch-fp32"]
    assert a.options["partitions"] >= 1, a.options
    assert a.verification["status"] == "pass", a.verification
    assert a.verification["prob_abs_max"] < 1e-4


@pytest.mark.slow
@need["executorch"]
def test_executorch_xnnpack_int8_pt2e(make_ctx, tmp_path):
    from lightseg.export import executorch

    ctx = make_ctx(tmp_path)
    executorch.build(ctx, "int8")
    verify_new(ctx)
    a = ctx.artifacts["executorch-int8"]
    assert a.options["partitions"] >= 1 and a.options["outside_delegate"] == []
    strict_int8_verdict(a.verification)
    assert a.verification["prob_abs_max"] > 1e-4 and a.verification["dice_ref_mean"] >= 0.9


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is not None, reason="installed")
def test_litert_missing_says_how(make_ctx, tmp_path):
    from lightseg.export import litert

    with pytest.raises(BackendUnavailable, match=r"pip install 'lightseg\[litert\]'"):
        litert.build(make_ctx(tmp_path), "fp32")
