"""ONNX, fp16, int8 and ORT Mobile artifacts: verified numbers, hashes, determinism."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from export_checks import strict_int8_verdict

from lightseg.artifact import load_manifest
from lightseg.errors import LightsegError
from lightseg.export.quantize import quantize_int8
from lightseg.export.targets import export
from lightseg.judge.verdict import compare, load_tolerances
from lightseg.runtimes.ort import run_model

GATES = load_tolerances()


def test_every_float_artifact_passes_the_judge(ort_export):
    arts = {a.name: a for a in ort_export.artifacts}
    for name in ("onnx-fp32", "onnx-fp32-fixed", "onnx-fp16", "ort-fp32"):
        v = arts[name].verification
        assert v["status"] == "pass", (name, v)
        assert v["ref_lesion_pixels"] > 50  # the tiny model predicts lesions: not a trivial mask
        assert v["prob_abs_p99"] <= GATES[arts[name].precision]["max"]["prob_abs_p99"]
        assert v["inputs"]["name"] == "verification" and v["inputs"]["n"] == 64
        assert v["ci"]["flip_rate"][1] <= GATES[arts[name].precision]["max"]["flip_rate"]
    assert arts["onnx-fp32"].verification["prob_abs_max"] < 1e-4
    assert arts["onnx-fp16"].verification["prob_abs_max"] < 2e-2


def test_tiny_model_reference_has_margin_for_the_float_checks(tiny_checkpoint):
    """The precondition of the test above: no reference pixel within 0.05 of p = 0.5 whose lone
    flip moves a (small) lesion boundary by more than 1 px; fp16 moves probabilities by < 0.01."""
    from lightseg.checkpoint import load_checkpoint
    from lightseg.data.sets import input_set
    from lightseg.export.verify import torch_reference
    from lightseg.judge.metrics import boundary_max, softmax

    ck = load_checkpoint(tiny_checkpoint)
    p = softmax(torch_reference(ck.model, input_set("verification", ck.preprocessing).x))[:, 1]
    fragile = []
    for i, (prob, mask) in enumerate(zip(p, p > 0.5, strict=True)):
        for y, x in zip(*np.nonzero(np.abs(prob - 0.5) < 0.05), strict=True):
            flipped = mask.copy()
            flipped[y, x] = ~flipped[y, x]
            if boundary_max(mask, flipped) > 1:
                fragile.append((i, int(y), int(x), round(float(prob[y, x]), 4)))
    assert fragile == []


def test_int8_artifacts_meet_the_strict_gate_or_say_why(ort_export):
    for name in ("onnx-int8", "ort-int8"):
        strict_int8_verdict(ort_export.artifact(name).verification)
    assert ort_export.artifact("onnx-int8").verification["prob_abs_max"] > 1e-4  # quantized


def test_onnx_single_file_named_io_opset_and_shapes(ort_export):
    root = ort_export.root
    assert not list(root.glob("*.data"))
    dyn = onnx.load(root / "model.onnx")
    fixed = onnx.load(root / "model-fixed.onnx")
    assert [i.name for i in dyn.graph.input] == ["image"]
    assert [o.name for o in dyn.graph.output] == ["logits"]
    assert dyn.opset_import[0].version == 17
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert ort_export.artifact("onnx-fp32").options["simplified"] is True


def test_dynamic_batch_model_matches_torch_at_batch_3(ort_export, tiny_checkpoint):
    from lightseg.checkpoint import load_checkpoint
    from lightseg.export.verify import torch_reference

    ck = load_checkpoint(tiny_checkpoint)
    x = np.random.default_rng(3).random((3, 3, 32, 32), dtype=np.float32)
    out = run_model(ort_export.root / "model.onnx", x)
    assert out.shape == (3, 2, 32, 32)
    assert np.abs(out - torch_reference(ck.model, x)).max() < 1e-4


def test_fp16_keeps_fp32_io(ort_export):
    m = onnx.load(ort_export.root / "model-fp16.onnx")
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    inits = {i.data_type for i in m.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in inits


def test_int8_is_u8_activations_s8_per_channel_weights(ort_export):
    m = onnx.load(ort_export.root / "model-int8.onnx")
    zps = {i.name: i for i in m.graph.initializer if i.name.endswith("zero_point")}
    types = {i.data_type for i in zps.values()}
    assert onnx.TensorProto.UINT8 in types and onnx.TensorProto.INT8 in types
    per_channel = [z for z in zps.values() if z.data_type == onnx.TensorProto.INT8 and z.dims]
    assert per_channel and max(z.dims[0] for z in per_channel) > 1


def test_manifest_hashes_verify_and_tampering_is_caught(ort_export):
    m = load_manifest(ort_export.root)
    assert m.source["weights_sha256"] == ort_export.source["weights_sha256"]
    for a in m.artifacts:
        assert m.verify(a).exists()
        assert a.sha256 and a.size_bytes > 0
    path = m.path_of(m.artifact("onnx-int8"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LightsegError, match="sha256"):
        m.verify(m.artifact("onnx-int8"))
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_mobile_usability_report_parsed(ort_export):
    u = ort_export.artifact("ort-fp32").options["usability"]
    ml = u["CoreML MLProgram"]
    assert ml["supported_nodes"] == ml["total_nodes"] > 0 and ml["partitions"] == 1
    nnapi = u["NNAPI"]
    assert "ai.onnx:ConvTranspose" in nnapi["unsupported_ops"]
    assert nnapi["supported_nodes"] < nnapi["total_nodes"]
    assert (ort_export.root / "ort" / "mobile_usability.txt").is_file()


def test_ort_required_operators_config(ort_export):
    fp32 = (ort_export.root / "ort" / "model-fp32.required_operators.config").read_text()
    int8 = (ort_export.root / "ort" / "model-int8.required_operators.config").read_text()
    assert "QuickGelu" in fp32 and "ConvTranspose" in fp32
    assert "nchwc" not in fp32  # no x86-only layout ops in a mobile model
    assert "QLinearConv" in int8 or "QuantizeLinear" in int8


def test_targets_recorded_per_artifact(ort_export):
    assert "android-ort-int8" in ort_export.artifact("ort-int8").targets
    assert "web-wasm" in ort_export.artifact("onnx-int8-fixed").targets
    assert set(ort_export.targets) >= {"x86-ort-int8", "jetson-trt-int8"}
    assert json.loads((ort_export.root / "manifest.json").read_text())["schema_version"] == 1


def test_reexport_is_byte_identical(ort_export, tiny_checkpoint, tmp_path):
    again = export(tiny_checkpoint, "x86-ort-int8", tmp_path / "again")
    for name in ("onnx-fp32", "onnx-fp32-fixed", "onnx-int8"):
        assert again.artifact(name).sha256 == ort_export.artifact(name).sha256, name


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_methods(ort_export, make_ctx, tmp_path, method):
    ctx = make_ctx(tmp_path)
    dst = tmp_path / f"int8-{method}.onnx"
    quantize_int8(ctx.files["onnx-fp32"], dst, ctx.calib, method)
    v = compare(ctx.ref, run_model(dst, ctx.x), None, GATES, "int8")
    assert v.metrics["dice_ref_mean"] >= 0.85, v.metrics
    assert dst.read_bytes() != (ort_export.root / "model-int8.onnx").read_bytes()


def test_dynamic_quantization_refused(make_ctx, tmp_path):
    ctx = make_ctx(tmp_path)
    with pytest.raises(LightsegError, match="ConvInteger"):
        quantize_int8(ctx.files["onnx-fp32"], tmp_path / "d.onnx", ctx.calib, "minmax", "dynamic")
