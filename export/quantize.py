"""fp16 and int8 (static QDQ) ONNX models, with the accuracy cost measured at export.

- fp16: onnxconverter-common, fp32 input/output kept (``keep_io_types``). A storage/GPU/mobile
  format: the x86 CPU EP gains no speed from it.
- int8: ONNX Runtime static quantization, QDQ format, uint8 activations x int8 per-channel
  weights, calibrated on phantom slices with lesions (or the user's data) with minmax, entropy
  or percentile. Dynamic quantization is refused (see :data:`DYNAMIC_REFUSAL`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError
from lightseg.export import onnx as lonnx
from lightseg.export.context import CALIBRATION_METHODS, ExportContext, artifact, timer
from lightseg.fileio import atomic_path

DYNAMIC_REFUSAL = (
    "dynamic int8 quantization is refused: on this CNN it becomes ConvInteger, measured 2-7x "
    "slower than fp32 on the ORT CPU EP; use static QDQ (the default)"
)


def _tools() -> dict:
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__}


def build_fp16(ctx: ExportContext) -> None:
    """model-fp16.onnx (dynamic batch, fp32 I/O) from model.onnx."""
    import onnx
    import onnxconverter_common
    from onnxconverter_common import float16

    with timer() as t:
        src = onnx.load(ctx.files["onnx-fp32"])
        m16 = float16.convert_float_to_float16(src, keep_io_types=True)
        lonnx.check(m16)
        path = ctx.out / "model-fp16.onnx"
        lonnx.save(m16, path)
    ctx.files["onnx-fp16"] = path
    artifact(
        ctx,
        "onnx-fp16",
        path,
        t(),
        backend="onnxruntime",
        precision="fp16",
        format="onnx",
        tools={**_tools(), "onnxconverter_common": onnxconverter_common.__version__},
        options={"keep_io_types": True, "opset": ctx.opset, "dynamic_batch": True},
        **ctx.io("batch"),
    )


def calib_cache(ctx: ExportContext) -> Path | None:
    """Where this export keeps its ONNX calibration ranges (None: no sharing)."""
    return None if ctx.cache_dir is None else ctx.cache_dir / f"calib-{ctx.calibration}.json"


class _Reader:
    """Calibration data reader: one image per batch."""

    def __init__(self, x: np.ndarray) -> None:
        self._it = iter([{"image": x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self._it, None)


def quantize_int8(
    src: Path,
    dst: Path,
    calib: np.ndarray,
    method: str,
    mode: str = "static",
    symmetric: bool = False,
    cache: Path | None = None,
    exclude_ops: tuple[str, ...] = (),
    exclude_last_conv: bool = False,
) -> list[str]:
    """Static QDQ int8 of ``src`` written to ``dst``; returns the node names left in float.

    Defaults to uint8 activations x int8 per-channel weights (fast on the ORT CPU EP);
    ``symmetric=True`` gives int8 activations with zero points 0, as TensorRT requires.
    ``cache``: a JSON file of calibration ranges, written on first use and reused after.
    ``exclude_ops`` (op types) and ``exclude_last_conv`` (the conv producing the logits) stay
    in float. Defaults to quantizing everything.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode == "dynamic":
        raise LightsegError(DYNAMIC_REFUSAL)
    if method not in CALIBRATION_METHODS:
        raise LightsegError(
            f"calibration method {method!r} is unknown; choose {', '.join(CALIBRATION_METHODS)}"
        )
    cm = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    with tempfile.TemporaryDirectory(prefix=".quant.", dir=dst.parent) as tmp:
        prep = Path(tmp) / "prep.onnx"
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        exclude: list[str] = []
        if exclude_ops or exclude_last_conv:
            import onnx

            graph = onnx.load(str(prep)).graph
            outs = {o.name for o in graph.output}
            exclude = [
                n.name
                for n in graph.node
                if n.op_type in exclude_ops
                or (exclude_last_conv and n.op_type == "Conv" and outs & set(n.output))
            ]
        with atomic_path(dst) as out:
            quantize_static(
                str(prep),
                str(out),
                _Reader(calib),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=cm,
                nodes_to_exclude=exclude,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
                calibration_cache_path=cache,
            )
    return exclude


def build_int8(ctx: ExportContext) -> None:
    """model-int8.onnx (dynamic batch) and model-int8-fixed.onnx (batch 1)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    calib = ctx.calib
    with timer() as t:
        path = ctx.out / "model-int8.onnx"
        quantize_int8(ctx.files["onnx-fp32"], path, calib, ctx.calibration, cache=calib_cache(ctx))
    ctx.files["onnx-int8"] = path
    options = {
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per-channel",
        "calibration": ctx.calibration,
        "calibration_images": len(calib),
        "dynamic_batch": True,
    }
    common = dict(backend="onnxruntime", precision="int8", format="onnx", tools=_tools())
    artifact(
        ctx,
        "onnx-int8",
        path,
        t(),
        options=options,
        **common,
        **ctx.io("batch"),
    )
    with timer() as t:
        m = onnx.load(path)
        make_dim_param_fixed(m.graph, "batch", 1)
        fix_output_shapes(m)
        lonnx.check(m)
        fixed = ctx.out / "model-int8-fixed.onnx"
        lonnx.save(m, fixed)
    ctx.files["onnx-int8-fixed"] = fixed
    artifact(
        ctx,
        "onnx-int8-fixed",
        fixed,
        t(),
        options={**options, "dynamic_batch": False},
        **common,
    )


#: x86 int8 variants: (artifact name, file, op types left in float, last conv left in float).
INT8_VARIANTS = (
    ("onnx-int8-convt-fp", "model-int8-convt-fp.onnx", ("ConvTranspose",), False),
    ("onnx-int8-convt-last-fp", "model-int8-convt-last-fp.onnx", ("ConvTranspose",), True),
)


def build_int8_variants(ctx: ExportContext) -> None:
    """int8 QDQ with ConvTranspose (and the last conv) left in float: x86 auto-pick candidates."""
    for name, fname, ops, last in INT8_VARIANTS:
        with timer() as t:
            path = ctx.out / fname
            excl = quantize_int8(
                ctx.files["onnx-fp32"], path, ctx.calib, ctx.calibration,
                cache=calib_cache(ctx), exclude_ops=ops, exclude_last_conv=last,
            )  # fmt: skip
        artifact(
            ctx,
            name,
            path,
            t(),
            backend="onnxruntime",
            precision="int8",
            format="onnx",
            tools=_tools(),
            options={
                "format": "QDQ",
                "activations": "uint8",
                "weights": "int8 per-channel",
                "calibration": ctx.calibration,
                "float_nodes": excl,
                "dynamic_batch": True,
            },
            **ctx.io("batch"),
        )
