"""Core ML compressed packages (int8 weights, 6-bit palettized, W8A8) of the tiny model, checked
statically: the saved MIL program's ops, which conv weights are compressed, sizes vs fp16."""

from __future__ import annotations

import json
import platform
from collections import Counter, defaultdict

import pytest

from lightseg.artifact import load_manifest
from lightseg.errors import LightsegError

pytest.importorskip(
    "coremltools", reason="coremltools not installed (pip install 'lightseg[coreml]')"
)

MACOS = platform.system() == "Darwin"
TARGET = "iphone-coreml-int8"


def saved_ops(path) -> Counter:
    """MIL op kinds of the package as saved (its spec), not of the in-memory model."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    ops: Counter = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            ops.update(op.type for op in block.operations)
    return ops


def assert_skipped_off_macos(a) -> None:
    if not MACOS:
        assert a.verification["status"] == "skipped", a.verification
        assert "macOS" in a.verification["reason"]


@pytest.fixture(scope="module")
def compressed(tiny_checkpoint, tmp_path_factory):
    from lightseg.export.targets import export

    out = tmp_path_factory.mktemp("coreml") / "int8"
    return export(tiny_checkpoint, TARGET, out)


@pytest.mark.slow
def test_int8_weights_every_conv_compressed(compressed):
    a = compressed.artifact("coreml-int8w")
    o = a.options
    assert (a.precision, a.path, o["compute_precision"]) == (
        "int8",
        "coreml/model-int8w.mlpackage",
        "fp16",
    )
    assert (
        o["source"] == "coreml/model-fp16.mlpackage" and o["minimum_deployment_target"] == "iOS16"
    )
    assert o["compression"]["mode"] == "linear_symmetric"
    assert o["compression"]["granularity"] == "per_channel"
    # 18 conv/conv_transpose weights; the 2x4x1x1 head (8 elements) stays inline in the program
    assert o["spec"]["conv_weights"] == {"total": 18, "compressed": 17, "inline": 1}
    ops = saved_ops(compressed.path_of(a))
    assert ops["constexpr_affine_dequantize"] == 17 and "constexpr_lut_to_dense" not in ops
    assert ops["constexpr_affine_dequantize"] == o["spec"]["mil_ops"]["constexpr_affine_dequantize"]
    assert not {"quantize", "dequantize"} & set(ops)  # weights only: activations stay fp16
    assert o["spec_check"] == "passed" and TARGET in a.targets
    # int8 of fp16: ~1/2 (0.567 on this tiny model: per-channel scales, 64-byte alignment)
    assert 0.5 < o["size"]["weight_file_ratio"] < 0.6
    assert o["size"]["fp16_bytes"] == compressed.artifact("coreml-fp16").size_bytes
    assert o["size"]["bytes"] == a.size_bytes < o["size"]["fp16_bytes"]
    assert_skipped_off_macos(a)


@pytest.mark.slow
def test_palettized_6bit_every_conv_compressed(compressed):
    a = compressed.artifact("coreml-palettized")
    o = a.options
    assert a.precision == "int8" and o["compute_precision"] == "fp16"
    c = o["compression"]
    assert (c["mode"], c["nbits"], c["granularity"]) == ("kmeans", 6, "per_tensor")
    assert "iOS18" in c["per_grouped_channel"]
    assert o["spec"]["conv_weights"] == {"total": 18, "compressed": 17, "inline": 1}
    ops = saved_ops(compressed.path_of(a))
    assert ops["constexpr_lut_to_dense"] == 17 and "constexpr_affine_dequantize" not in ops
    # 6 of 16 bits plus a 64-entry LUT per tensor: 0.508 here, 0.376 on the shipped model
    ratio = o["size"]["weight_file_ratio"]
    assert (
        0.37 < ratio < 0.55
        and ratio < compressed.artifact("coreml-int8w").options["size"]["weight_file_ratio"]
    )
    assert o["spec_check"] == "passed"
    assert_skipped_off_macos(a)


@pytest.mark.slow
def test_metadata_and_fp16_reference_kept(compressed):
    import coremltools as ct

    fp16 = compressed.artifact("coreml-fp16")
    assert fp16.options["spec"]["conv_weights"]["compressed"] == 0
    assert TARGET in fp16.targets
    for name in ("coreml-int8w", "coreml-palettized"):
        ml = ct.models.MLModel(
            str(compressed.path_of(compressed.artifact(name))), skip_model_load=True
        )
        meta = ml.user_defined_metadata
        assert meta["source_sha256"] == compressed.source["weights_sha256"]
        assert json.loads(meta["preprocessing"])["size"] == 32
        assert [i.name for i in ml.get_spec().description.input] == ["image"]


@pytest.mark.slow
@pytest.mark.skipif(MACOS, reason="on macOS the calibration runs and W8A8 is built")
def test_w8a8_not_built_off_macos_with_the_reason(compressed, capsys):
    from lightseg.export.cli import print_manifest

    assert "coreml-w8a8" not in [a.name for a in compressed.artifacts]
    why = load_manifest(compressed.root).extra["not_built"]["coreml-w8a8"]
    assert why.startswith("coremltools linear_quantize_activations refused")
    assert "Model prediction is only supported on macOS" in why
    print_manifest(compressed, compressed.root)
    assert f"not built coreml-w8a8: {why}" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(MACOS, reason="macOS calibrates for real (see the export test)")
def test_w8a8_where_calibration_runs(make_ctx, tmp_path, monkeypatch):
    """Fixed activation ranges stand in for the run only macOS can do; the rest is real."""
    import coremltools.optimize.coreml._post_training_quantization as ptq

    from lightseg.export import coreml
    from lightseg.export.verify import verify_new

    ranges = defaultdict(lambda: {"rmin": -8.0, "rmax": 8.0})
    monkeypatch.setattr(ptq, "_get_activation_calibration_stats", lambda *a, **k: ranges)
    ctx = make_ctx(tmp_path)
    coreml.build_compressed(ctx, "w8a8")  # builds coreml-fp16 first: the size reference
    verify_new(ctx)
    a = ctx.artifacts["coreml-w8a8"]
    o = a.options
    assert not ctx.not_built and a.precision == "int8" and o["compute_precision"] == "fp16"
    assert o["minimum_deployment_target"] == "iOS17" and o["spec"]["spec_version"] == 8
    act = o["compression"]["activations"]
    assert (act["dtype"], act["calibration_images"], act["calibration_set"]) == (
        "int8",
        8,
        "calibration",
    )
    ops = saved_ops(tmp_path / a.path)
    assert ops["quantize"] == ops["dequantize"] > 0
    assert ops["constexpr_affine_dequantize"] == 17
    assert o["spec"]["conv_weights"] == {"total": 18, "compressed": 17, "inline": 1}
    assert 0.5 < o["size"]["weight_file_ratio"] < 0.6 and o["spec_check"] == "passed"
    assert_skipped_off_macos(a)


def test_unknown_compression_is_one_clear_error():
    from lightseg.export import coreml

    with pytest.raises(LightsegError, match="one of int8w, palettized, w8a8"):
        coreml.build_compressed(None, "int4")  # refused before the context is used
