"""TensorRT: engines where ``tensorrt`` imports; otherwise a readiness check plus a build recipe.

Engines are not portable across GPUs or TensorRT versions: a Jetson engine is built on the Jetson.
Where TensorRT is missing (this machine, PyPI wheels are placeholders), lightseg still delivers:

- a readiness check of the ONNX against ``trt_onnx_ops.json`` (the TensorRT ONNX parser's
  operator table, source named inside) plus known-bad patterns (non-zero QDQ zero points,
  weights that are not initializers, non-default ONNX domains, opsets above the parser's);
- ``tensorrt/build_engines.sh``: trtexec command lines for fp16 and int8 with the shapes,
  an optimisation profile and a timing cache, and the Jetson clock notes.

The int8 engine needs explicit quantization with QDQ zero points 0, so a separate
``model-int8-trt.onnx`` is made and verified with ORT: int8 weights and activations, each conv
input on the uint8 grid of the CPU file by an offset folded into the conv (:mod:`trt_offset`).
"""

from __future__ import annotations

import json
from pathlib import Path

from lightseg.export.context import ExportContext, artifact, timer
from lightseg.fileio import atomic_path

TABLE = Path(__file__).with_name("trt_onnx_ops.json")
MAX_BATCH = 8


def available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def load_table() -> dict:
    return json.loads(TABLE.read_text())


def readiness(model_path: Path, table: dict | None = None) -> dict:
    """Every node checked against the parser's table and known-bad patterns; issues listed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    table = table or load_table()
    model = onnx.load(model_path)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    produced_by_const = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    found: dict[str, list[str]] = {}  # issue -> nodes

    def flag(node, why: str) -> None:
        found.setdefault(f"{node.op_type}: {why}", []).append(node.name or node.output[0])

    issues: list[str] = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > table["max_opset"]:
            issues.append(
                f"opset {imp.version} > {table['max_opset']} (TensorRT {table['tensorrt']})"
            )
    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
        if n.domain not in ("", "ai.onnx"):
            flag(n, f"domain {n.domain!r} is not parsed by TensorRT")
            continue
        entry = table["ops"].get(n.op_type)
        if entry is None or not entry["supported"]:
            flag(n, "not supported by the TensorRT ONNX parser")
            continue
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1:
            w = n.input[1]
            if w not in inits and w not in produced_by_const and not _from_dq(g, w, inits):
                flag(n, "weights are not an initializer")
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            zp = inits.get(n.input[2])
            if zp is not None and np.any(numpy_helper.to_array(zp) != 0):
                flag(n, "non-zero zero point (TensorRT needs symmetric QDQ)")
            if zp is not None and zp.data_type == onnx.TensorProto.UINT8:
                flag(n, "uint8 quantization (TensorRT needs int8)")
    for why, nodes in found.items():
        issues.append(f"{why} ({len(nodes)} nodes, e.g. {nodes[0]})")
    dyn = [
        d.dim_param
        for i in g.input
        for d in i.type.tensor_type.shape.dim[1:]
        if d.dim_param or d.dim_value <= 0
    ]
    if dyn:
        issues.append(f"dynamic non-batch dimensions {dyn}: give an optimisation profile for each")
    return {
        "status": "passed" if not issues else "failed",
        "model": model_path.name,
        "nodes": len(g.node),
        "op_counts": dict(sorted(counts.items())),
        "issues": issues,
        "table": table["source"],
        "tensorrt_table_version": table["tensorrt"],
    }


def _from_dq(graph, name: str, inits: dict) -> bool:
    """True if ``name`` is a DequantizeLinear of an initializer (QDQ weights)."""
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and name in n.output:
            return n.input[0] in inits
    return False


SCRIPT = """#!/usr/bin/env bash
# Build TensorRT engines for lightseg ON THE TARGET DEVICE (engines are not portable across
# GPUs or TensorRT versions). Made by lightseg export {version}; source weights sha256 {sha}.
#
# Jetson first: max performance mode and locked clocks, for stable builds and timings
#   sudo nvpmodel -m 0 && sudo jetson_clocks
# trtexec lives in /usr/src/tensorrt/bin on JetPack.
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC=${{TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}}
SHAPES="--minShapes=image:1x{c}x{s}x{s} --optShapes=image:1x{c}x{s}x{s} \\
  --maxShapes=image:{mb}x{c}x{s}x{s}"

# fp16 (input/output stay fp32)
"$TRTEXEC" --onnx=../model.onnx $SHAPES --fp16 \\
  --timingCacheFile=timing.cache --saveEngine=model-fp16.engine

# int8 from the symmetric QDQ model (explicit quantization; fp16 for the rest), where exported
if [ -f ../model-int8-trt.onnx ]; then
  "$TRTEXEC" --onnx=../model-int8-trt.onnx $SHAPES --int8 --fp16 \\
    --timingCacheFile=timing.cache --saveEngine=model-int8.engine
fi

# mixed (jetson-trt-int8-mixed): the same, its sensitive layers without QDQ run in fp16
if [ -f ../model-int8-trt-mixed.onnx ]; then
  "$TRTEXEC" --onnx=../model-int8-trt-mixed.onnx $SHAPES --int8 --fp16 \\
    --timingCacheFile=timing.cache --saveEngine=model-int8-mixed.engine
fi

# latency (p90 is the headline), after building:
#   "$TRTEXEC" --loadEngine=model-fp16.engine --shapes=image:1x{c}x{s}x{s} \\
#     --warmUp=500 --duration=10 --percentile=90,95,99 --useCudaGraph
"""


#: Where the TensorRT QDQ files quantize (NVIDIA's recommended placement for explicit
#: quantization); on this model's verification set it keeps the masks far better than QDQ on
#: every tensor (docs/int8.md, "TensorRT: QDQ where a conv reads its input").
PLACEMENT = "Conv/ConvTranspose inputs only: conv + Swish run fused in float, quantized where read"
#: What the TensorRT QDQ files' activations are (:mod:`lightseg.export.trt_offset`): a symmetric
#: range would waste half the codes of a Swish output or the image (verification: 20 confident
#: flips on the shipped QAT checkpoint; with the offsets 0).
ACTIVATIONS = (
    "int8, zero point 0; each conv input keeps its uint8 grid by an offset folded into the conv "
    "(Sub, explicit Pad, bias)"
)


def build_int8_trt(ctx: ExportContext) -> None:
    """model-int8-trt.onnx: int8 QDQ with zero points 0 (activations and weights) for TensorRT,
    placed where a conv reads its input, each input on its uint8 grid (:data:`ACTIVATIONS`)."""
    from lightseg.export.quantize import calib_cache, method_overrides
    from lightseg.export.trt_offset import quantize_offset

    with timer() as t:
        path = ctx.out / "model-int8-trt.onnx"
        src = ctx.files["onnx-fp32"]
        quantize_offset(
            src, path, ctx.calib, ctx.calibration, cache=calib_cache(ctx),
            overrides=method_overrides(ctx, src),
        )  # fmt: skip
    ctx.files["onnx-int8-trt"] = path
    artifact(
        ctx,
        "onnx-int8-trt",
        path,
        t(),
        backend="onnxruntime",  # TensorRT consumes it; here it runs on the ORT CPU EP
        precision="int8",
        format="onnx",
        options={
            "format": "QDQ",
            "activations": ACTIVATIONS,
            "placement": PLACEMENT,
            "weights": "int8 per-channel symmetric",
            "calibration": ctx.calibration,
            "for": "TensorRT explicit quantization",
        },
        **ctx.io("batch"),
    )


#: The ONNX each engine precision is built from ("int8-mixed": the jetson-trt-int8-mixed step's).
SOURCES = {"fp16": "onnx-fp32", "int8": "onnx-int8-trt", "int8-mixed": "onnx-int8-trt-mixed"}


def build(ctx: ExportContext, precision: str) -> None:
    """Engine (TensorRT present) or readiness report + build script (absent), per precision."""
    if precision == "int8" and "onnx-int8-trt" not in ctx.files:
        build_int8_trt(ctx)
    src = ctx.files[SOURCES[precision]]
    folder = ctx.out / "tensorrt"
    folder.mkdir(exist_ok=True)
    with timer() as t:
        ready = readiness(src)
        if available():
            path = folder / f"model-{precision}.engine"
            build_engine(src, path, ctx, precision)
            how = "engine built with the TensorRT Python API on this machine"
            fmt = "engine"
        else:
            path = folder / "build_engines.sh"
            c, s = ctx.pre.channels, ctx.pre.size
            text = SCRIPT.format(version=ctx.version, sha=ctx.source_sha256, c=c, s=s, mb=MAX_BATCH)
            with atomic_path(path) as tmp:
                tmp.write_text(text)
                tmp.chmod(0o755)
            how = "TensorRT is not installed here: readiness checked, build script written"
            fmt = "script"
    artifact(
        ctx,
        f"tensorrt-{precision}",
        path,
        t(),
        backend="tensorrt",
        precision="int8" if precision == "int8-mixed" else precision,
        format=fmt,
        options={
            "onnx": src.name,
            "what_happened": how,
            "profile": {"min": 1, "opt": 1, "max": MAX_BATCH},
            "timing_cache": "tensorrt/timing.cache",
            "readiness": ready,
        },
        **ctx.io("batch"),
    )


def build_engine(onnx_path: Path, dst: Path, ctx: ExportContext, precision: str) -> None:
    """Build and serialise an engine with the TensorRT Python API (only where it imports)."""
    import tensorrt as trt

    from lightseg.errors import LightsegError

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        raise LightsegError(f"TensorRT could not parse {onnx_path.name}: {parser.get_error(0)}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    if precision.startswith("int8"):
        config.set_flag(trt.BuilderFlag.INT8)
    c, s = ctx.pre.channels, ctx.pre.size
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, c, s, s), (1, c, s, s), (MAX_BATCH, c, s, s))
    config.add_optimization_profile(profile)
    cache_file = dst.parent / "timing.cache"
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise LightsegError(f"TensorRT failed to build the {precision} engine")
    with atomic_path(dst) as tmp:
        tmp.write_bytes(bytes(engine))
    with atomic_path(cache_file) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
