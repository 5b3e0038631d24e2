"""The NNCF int8 IR of the tiny checkpoint: built by x86-openvino, int8 on every conv, its options
recorded, judged like every artifact and an auto-tune candidate."""

from __future__ import annotations

import sys

import numpy as np
import pytest

INSTALL = "pip install 'lightseg[openvino]'"
pytest.importorskip("openvino", reason=f"OpenVINO is not installed ({INSTALL})")
pytest.importorskip("nncf", reason=f"NNCF is not installed ({INSTALL})")

NAME = "openvino-int8-nncf"
CONVS = ("Convolution", "ConvolutionBackpropData")
#: Ops a quantized tensor passes through unchanged in scale (NNCF quantizes their inputs).
SCALE_KEEPING = ("Concat", "MaxPool")


@pytest.fixture(scope="module")
def ov_export(tiny_ckpt, tmp_path_factory):
    """x86-openvino export of the tiny checkpoint (8 calibration images)."""
    from lightseg.export.targets import export

    return export(tiny_ckpt, "x86-openvino", tmp_path_factory.mktemp("nncf") / "x86", calib_n=8)


@pytest.fixture(scope="module")
def ir(ov_export):
    import openvino as ov

    return ov.Core().read_model(str(ov_export.root / ov_export.artifact(NAME).path))


def _source(node, port: int):
    """The node feeding ``node``'s input ``port``."""
    return node.input_value(port).get_node()


def _fake_quantized(node) -> bool:
    """Whether ``node``'s output is a FakeQuantize's, directly or through Concat / MaxPool."""
    if node.get_type_name() in SCALE_KEEPING:
        return all(_fake_quantized(_source(node, i)) for i in range(node.get_input_size()))
    return node.get_type_name() == "FakeQuantize"


def test_x86_openvino_builds_the_nncf_ir_with_its_weights_file(ov_export):
    a = ov_export.artifact(NAME)
    assert (a.backend, a.precision, a.format) == ("openvino", "int8", "xml")
    assert a.path == "openvino/model-int8-nncf.xml" and "x86-openvino" in a.targets
    assert list(a.files) == ["openvino/model-int8-nncf.bin"]
    assert (ov_export.root / "openvino" / "model-int8-nncf.bin").is_file()
    assert set(a.tools) == {"openvino", "nncf"}
    assert a.inputs[0].shape[0] == "batch"


def test_every_conv_reads_a_fake_quantized_input_and_int8_weights(ir):
    convs = [op for op in ir.get_ops() if op.get_type_name() in CONVS]
    assert len(convs) == 18  # 15 convs + 3 transposed convs of lightunet depth 3
    for op in convs:
        assert _fake_quantized(_source(op, 0)), op.get_friendly_name()
        w = _source(op, 1)
        while w.get_type_name() in ("Multiply", "Subtract", "Convert"):
            w = _source(w, 0)
        assert w.get_type_name() == "Constant", op.get_friendly_name()
        assert w.get_element_type().get_type_name() == "i8", op.get_friendly_name()


def test_the_manifest_records_how_nncf_quantized(ov_export):
    o = ov_export.artifact(NAME).options
    assert o["preset"] == "mixed" and o["bias_correction"] == "fast"
    assert o["subset_size"] == o["calibration_images"] == 8
    assert (o["calibration"], o["activation_ranges"]) == ("minmax", "MINMAX")
    assert o["source"] == "model.onnx" and o["compress_to_fp16"] is False


def test_the_judge_gave_a_verdict_with_numbers(ov_export):
    v = ov_export.artifact(NAME).verification
    assert v["status"] in ("pass", "fail", "undecided"), v
    for k in ("dice_ref_mean", "large_dice_min", "confident_flips", "prob_abs_max"):
        assert np.isfinite(v[k]), k


def test_the_openvino_auto_tune_family_takes_it_in_every_mode(ov_export):
    from lightseg.pipeline.autotune import FAMILIES

    cands = {a.name: a for a in FAMILIES["openvino"].select(ov_export)}
    assert {NAME, f"{NAME}-performance", f"{NAME}-accuracy", f"{NAME}-bf16"} <= set(cands)
    bf16 = cands[f"{NAME}-bf16"]  # float parts in bf16, judged by the int8 gate
    assert bf16.precision == "int8"
    assert bf16.options["run_with"] == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert "openvino-fp32-bf16" not in cands  # fp32 in bf16 is the openvino-bf16 artifact


def test_without_nncf_the_step_names_the_install(monkeypatch):
    from lightseg.errors import BackendUnavailable
    from lightseg.export import nncf_int8

    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(BackendUnavailable, match="lightseg\\[openvino\\]"):
        nncf_int8.quantize(None, np.zeros((1, 3, 32, 32), np.float32))


def test_an_empty_calibration_set_is_one_clear_error():
    from lightseg.errors import LightsegError
    from lightseg.export import nncf_int8

    with pytest.raises(LightsegError, match="no images"):
        nncf_int8.quantize(None, np.zeros((0, 3, 32, 32), np.float32))


def test_the_bf16_variant_runs_float_parts_in_bf16_where_the_cpu_has_it(ov_export):
    import openvino as ov

    from lightseg.pipeline.autotune import FAMILIES
    from lightseg.runtimes.openvino import OpenVinoRunner

    cands = {a.name: a for a in FAMILIES["openvino"].select(ov_export)}
    x = np.random.default_rng(0).random((1, 3, 32, 32), np.float32)
    out = {}
    for name in ("openvino-int8", "openvino-int8-bf16"):
        with OpenVinoRunner(ov_export, cands[name], threads=2) as r:
            out[name] = (r.infer(x), r.info["inference_precision"])
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert out["openvino-int8"][1] == "f32"
    assert out["openvino-int8-bf16"][1] == ("bf16" if "BF16" in caps else "f32")
    a, b = out["openvino-int8"][0], out["openvino-int8-bf16"][0]
    assert a.shape == b.shape and np.isfinite(b).all()
    assert np.abs(a - b).max() <= 0.05 * np.abs(a).max()  # only the float parts' rounding differs
