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
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.fileio import atomic_path

DYNAMIC_REFUSAL = (
    "dynamic int8 quantization is refused: on this CNN it becomes ConvInteger, measured 2-7x "
    "slower than fp32 on the ORT CPU EP; use static QDQ (the default)"
)


#: Artifact options that say which layers run at which precision (mixed precision's choices and
#: the calibration); artifacts converted from an int8 ONNX carry them over, the auto-tune shows
#: them in each candidate's evidence.
LAYER_OPTIONS = ("calibration", "float_units", "float_macs", "a16_tensors")


def ort_tools() -> dict:
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
        tools={**ort_tools(), "onnxconverter_common": onnxconverter_common.__version__},
        options={"keep_io_types": True, "opset": ctx.opset, "dynamic_batch": True},
        **ctx.io("batch"),
    )


def calib_cache(ctx: ExportContext) -> Path | None:
    """Where this export keeps its ONNX calibration ranges (None: no sharing)."""
    return None if ctx.cache_dir is None else ctx.cache_dir / f"calib-{ctx.calibration}.json"


#: Calibration methods: ORT calibrator and its options. "mse" pins an MSE-searched clip per
#: activation tensor (:mod:`lightseg.export.calibrate`) on top of the MinMax ranges.
METHODS: dict[str, tuple[str, dict]] = {
    "minmax": ("MinMax", {}),
    "entropy": ("Entropy", {}),
    "percentile": ("Percentile", {"CalibPercentile": 99.999}),
    "percentile-99.99": ("Percentile", {"CalibPercentile": 99.99}),
    "mse": ("MinMax", {}),
    "trained": ("MinMax", {}),  # every range pinned from the QAT checkpoint (method_overrides)
}
CALIB_CHUNK = 4  # images per calibration pass: ORT holds every activation of a pass in memory


class _Reader:
    """Calibration data reader: one image per batch; ORT may ask for a range (a chunk)."""

    def __init__(self, x: np.ndarray) -> None:
        self._x, self._i, self._end = x, 0, len(x)

    def __len__(self) -> int:
        return len(self._x)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._i, self._end = start_index, min(end_index, len(self._x))

    def get_next(self):
        if self._i >= self._end:
            return None
        self._i += 1
        return {"image": self._x[self._i - 1 : self._i]}


def _chunk(n: int) -> int:
    """The largest divisor of ``n`` up to CALIB_CHUNK (ORT wants equal chunks)."""
    return max(d for d in range(1, min(CALIB_CHUNK, n) + 1) if n % d == 0)


def minmax_ranges(prep: Path, calib: np.ndarray, cache: Path) -> dict[str, tuple[float, float]]:
    """(min, max) of every float tensor of ``prep`` over ``calib``, kept in ORT's cache format."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        create_calibrator,
        load_tensors_data,
        save_tensors_data,
    )

    if not cache.is_file():
        with tempfile.TemporaryDirectory(prefix=".minmax.", dir=cache.parent) as tmp:
            cal = create_calibrator(
                prep,
                augmented_model_path=str(Path(tmp) / "aug.onnx"),
                calibrate_method=CalibrationMethod.MinMax,
            )
            reader, step = _Reader(calib), _chunk(len(calib))
            for start in range(0, len(calib), step):  # as quantize_static's strided calibration
                reader.set_range(start, start + step)
                cal.collect_data(reader)
            save_tensors_data(cal.compute_data(), cache)
    data = load_tensors_data(cache).data
    return {
        k: (float(np.min(v.range_value[0])), float(np.max(v.range_value[1])))
        for k, v in data.items()
    }


def preprocess(src: Path, dst: Path) -> Path:
    """ORT's quantization pre-processing (shape inference, graph clean-up); names are kept."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def _producers_consumers(graph) -> tuple[dict, dict]:
    prod = {o: n for n in graph.node for o in n.output}
    cons: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    return prod, cons


def silu_nodes(graph) -> dict[str, list[str]]:
    """Swish activations: {tensor x: node names} for ``x*Sigmoid(x)`` and ``x*Sigmoid(beta*x)``.

    Works on both graphs: before the Swish beta is folded (Mul(beta) -> Sigmoid -> Mul) and
    after (plain SiLU: Sigmoid -> Mul).
    """
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    prod, cons = _producers_consumers(graph)
    out: dict[str, list[str]] = {}
    for s in graph.node:
        if s.op_type != "Sigmoid":
            continue
        x, nodes = s.input[0], [s.name]
        pre = prod.get(x)
        if pre is not None and pre.op_type == "Mul" and consts & set(pre.input):
            x, nodes = next(i for i in pre.input if i not in consts), [pre.name, s.name]
        mul = [m for m in cons.get(s.output[0], []) if m.op_type == "Mul" and x in m.input]
        if len(mul) == 1:
            out[x] = nodes + [mul[0].name]
    return out


def quantizable(node) -> bool:
    """Whether ORT's static quantizer would put this node's tensors in int8."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return node.op_type in QDQRegistry or node.op_type in QLinearOpsRegistry


def layer_units(graph) -> dict[str, list[str]]:
    """Units of sensitivity and mixed precision, in graph order: {unit: node names}.

    A conv (or transposed conv) together with the Swish on its output is one unit (its
    internals are only worth keeping float together); any other quantizable node is its own.
    """
    act = silu_nodes(graph)
    taken = {n for nodes in act.values() for n in nodes}
    units: dict[str, list[str]] = {}
    for n in graph.node:
        if n.name in taken or not quantizable(n):
            continue
        units[n.name] = [n.name]
        if n.op_type in ("Conv", "ConvTranspose") and n.output[0] in act:
            units[n.name] += act[n.output[0]]
    return units


def unit_tensors(graph, nodes: list[str]) -> list[str]:
    """The activation tensors the nodes read or write (what 16-bit activations widen)."""
    consts = {i.name for i in graph.initializer}
    names = set(nodes)
    seen: dict[str, None] = {}
    for n in graph.node:
        if n.name in names:
            for t in [*n.input, *n.output]:
                if t and t not in consts:
                    seen[t] = None
    return list(seen)


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
    *,
    float_nodes: tuple[str, ...] = (),
    only_nodes: tuple[str, ...] = (),
    a16_tensors: tuple[str, ...] = (),
    silu_float: bool = False,
    conv_inputs_only: bool = False,
    overrides: dict[str, list[dict]] | None = None,
    preprocessed: bool = False,
) -> list[str]:
    """Static QDQ int8 of ``src`` written to ``dst``; returns the node names left in float.

    Defaults to uint8 activations x int8 per-channel weights (fast on the ORT CPU EP), every
    quantizable node quantized. ``symmetric=True`` gives int8 activations with zero points 0, as
    TensorRT requires. ``cache``: a JSON file of calibration ranges, written on first use and
    reused after. Left in float: ``exclude_ops`` (op types), ``exclude_last_conv`` (the conv
    producing the logits), ``float_nodes`` (names) and with ``silu_float`` the Sigmoid/Mul
    nodes of every Swish (then only conv inputs/outputs are quantized). ``only_nodes``: quantize
    just these. ``conv_inputs_only``: QDQ only where a Conv/ConvTranspose reads its input
    (TensorRT's recommended placement: each conv runs with its Swish fused in float, its output
    quantized where the next conv reads it; a max-pool output keeps its input's pinned range, as
    in the full placement). ``a16_tensors``: activations kept at uint16 (W8A16). ``overrides``:
    ORT TensorQuantOverrides (pinned ranges or scales); method "mse" computes them when not given.
    ``preprocessed``: ``src`` already went through :func:`preprocess` (saves a pass per call).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if mode == "dynamic":
        raise LightsegError(DYNAMIC_REFUSAL)
    if method not in METHODS:
        known = ", ".join(METHODS)
        raise LightsegError(f"calibration method {method!r} is unknown; choose {known}")
    if method == "trained" and not overrides:
        raise LightsegError("calibration 'trained' needs the checkpoint's trained ranges")
    cm_name, calib_opts = METHODS[method]
    with tempfile.TemporaryDirectory(prefix=".quant.", dir=dst.parent) as tmp:
        prep = Path(src) if preprocessed else preprocess(src, Path(tmp) / "prep.onnx")
        cache = cache or Path(tmp) / "calib.json"
        if method == "mse" and overrides is None:
            from lightseg.export.calibrate import as_overrides, mse_ranges

            overrides = as_overrides(mse_ranges(prep, calib, minmax_ranges(prep, calib, cache)))
        exclude = list(float_nodes)
        if exclude_ops or exclude_last_conv or silu_float:
            import onnx

            graph = onnx.load(str(prep)).graph
            outs = {o.name for o in graph.output}
            exclude += [
                n.name
                for n in graph.node
                if n.op_type in exclude_ops
                or (exclude_last_conv and n.op_type == "Conv" and outs & set(n.output))
            ]
            if silu_float:
                exclude += [n for nodes in silu_nodes(graph).values() for n in nodes]
        exclude = list(dict.fromkeys(exclude))
        overrides = dict(overrides or {})
        float_outputs = list(CONV_OPS) if conv_inputs_only else []
        if conv_inputs_only:
            overrides.update(_pool_overrides(prep, overrides))
        for t in a16_tensors:  # a 16-bit tensor keeps a pinned range, not an 8-bit scale
            rng = {k: v for k, v in overrides.get(t, [{}])[0].items() if k in ("rmin", "rmax")}
            overrides[t] = [{**rng, "quant_type": QuantType.QUInt16}]
        with atomic_path(dst) as out:
            quantize_static(
                str(prep),
                str(out),
                _Reader(calib),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=getattr(CalibrationMethod, cm_name),
                nodes_to_quantize=list(only_nodes),
                nodes_to_exclude=exclude,
                op_types_to_quantize=list(CONV_OPS) if conv_inputs_only else None,
                extra_options={
                    "OpTypesToExcludeOutputQuantization": float_outputs,
                    "ActivationSymmetric": symmetric,
                    "WeightSymmetric": True,
                    "CalibStridedMinMax": _chunk(len(calib)),
                    "TensorQuantOverrides": overrides,
                    **calib_opts,
                },
                calibration_cache_path=cache,
            )
    return exclude


def dequantized(node, inits: dict[str, np.ndarray]) -> np.ndarray:
    """The float64 values a DequantizeLinear ``node`` of a constant gives (per-tensor or per-axis
    scale and zero point), ``inits`` the graph's initializers as arrays."""
    q, scale = inits[node.input[0]].astype(np.float64), inits[node.input[1]].astype(np.float64)
    zp = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % max(q.ndim, 1)
    shape = [-1 if k == axis else 1 for k in range(q.ndim)] if scale.ndim else []
    return (q - zp.reshape(shape)) * scale.reshape(shape)


#: The ops ``conv_inputs_only`` quantizes (their activation input and weights, not their output).
CONV_OPS = ("Conv", "ConvTranspose")


def _pool_overrides(prep: Path, overrides: dict) -> dict:
    """A max-pool output's pinned range is its input's (max-pool keeps its input's grid): with
    ``conv_inputs_only`` the pooled tensor is where the next conv's quantization sits."""
    import onnx

    return {
        n.output[0]: overrides[n.input[0]]
        for n in onnx.load(str(prep)).graph.node
        if n.op_type == "MaxPool" and n.input[0] in overrides
    }


def method_overrides(ctx: ExportContext, src: Path) -> dict | None:
    """TensorQuantOverrides the export's calibration method pins on ``src`` (None: calibrate).

    "trained" pins every activation to the range the QAT checkpoint was trained with, so the
    int8 graph is the one QAT simulated (:func:`lightseg.export.calibrate.trained_ranges`).
    """
    if ctx.calibration != "trained":
        return None
    from lightseg.export.calibrate import as_overrides, trained_ranges

    return as_overrides(trained_ranges(src, ctx.export_model, ctx.activation_ranges or {}))


def build_int8(ctx: ExportContext) -> None:
    """model-int8.onnx (dynamic batch) and model-int8-fixed.onnx (batch 1)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    calib = ctx.calib
    with timer() as t:
        path = ctx.out / "model-int8.onnx"
        src = ctx.files["onnx-fp32"]
        quantize_int8(
            src, path, calib, ctx.calibration, cache=calib_cache(ctx),
            overrides=method_overrides(ctx, src),
        )  # fmt: skip
    ctx.files["onnx-int8"] = path
    options = {
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per-channel",
        "calibration": ctx.calibration,
        "calibration_images": len(calib),
        "dynamic_batch": True,
    }
    common = dict(backend="onnxruntime", precision="int8", format="onnx", tools=ort_tools())
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
                overrides=method_overrides(ctx, ctx.files["onnx-fp32"]),
            )  # fmt: skip
        artifact(
            ctx,
            name,
            path,
            t(),
            backend="onnxruntime",
            precision="int8",
            format="onnx",
            tools=ort_tools(),
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
