"""PyTorch -> ONNX: one file, named I/O ``image`` -> ``logits``, checked, simplified, verified.

Two variants: ``model.onnx`` (dynamic batch, for servers) and ``model-fixed.onnx`` (1 x C x S x S,
for mobile converters). The torch.export-based (dynamo) exporter is the default; where its graph
fails the checker or the fp32 gate against PyTorch, the TorchScript exporter is the fallback and
the reason is recorded in the artifact's options. Both are deterministic: exporting the same
checkpoint twice gives byte-identical files.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from lightseg.errors import LightsegError
from lightseg.export.context import MIN_OPSET, ExportContext, artifact, timer
from lightseg.fileio import atomic_path
from lightseg.judge.verdict import compare, load_tolerances
from lightseg.runtimes.ort import run_model

ONNXSIM_VERSION = "0.8.1"  # pinned: onnxsim has regressed between versions


def check_opset(opset: int) -> int:
    """``opset``, or one error unless MIN_OPSET <= opset <= what onnx and torch's exporter know."""
    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise LightsegError(
            f"--opset {opset} is not supported: lightseg exports opset {MIN_OPSET} to {top} "
            "(the most the installed onnx and torch exporter support)"
        )
    return opset


def max_opset() -> int:
    """The highest opset both the installed onnx and torch's TorchScript exporter support."""
    import onnx
    from torch.onnx import _constants

    torch_max = getattr(
        _constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET
    )
    return min(onnx.defs.onnx_opset_version(), torch_max)


def torch_to_onnx(model, channels: int, size: int, opset: int, dynamic_batch: bool):
    """Export with the TorchScript exporter; returns the ModelProto (not yet checked)."""
    import onnx
    import torch

    buf = io.BytesIO()
    x = torch.zeros(1, channels, size, size)
    dyn = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model.eval(),
            (x,),
            buf,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def dynamo_to_onnx(model, channels: int, size: int, opset: int, dynamic_batch: bool):
    """Export with the torch.export-based (dynamo) exporter, PyTorch's default since 2.9.

    One file (no external data), opset down-converted from 18 where ``opset`` is 17; a dynamic
    batch is declared on the example's first dimension. Deterministic: the same checkpoint gives
    byte-identical files.
    """
    import torch

    x = torch.zeros(2 if dynamic_batch else 1, channels, size, size)
    dims = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(), (x,), dynamo=True, input_names=["image"], output_names=["logits"],
            dynamic_shapes=dims, opset_version=opset, external_data=False, optimize=True,
            verbose=False,
        )  # fmt: skip
    return program.model_proto


def exported(ctx: ExportContext, dynamic: bool) -> tuple:
    """(ModelProto, exporter, fallback reason): dynamo when its graph checks and matches the
    PyTorch reference under the fp32 gate on the verification set, else TorchScript."""
    c, s = ctx.pre.channels, ctx.pre.size
    try:
        model = dynamo_to_onnx(ctx.export_model, c, s, ctx.opset, dynamic)
        check(model)
        y = run_model(model.SerializeToString(), ctx.x[:CHECK_N])
        masks = ctx.verify_set.masks[:CHECK_N]
        v = compare(ctx.ref[:CHECK_N], y, masks, load_tolerances(), "fp32")
        if v.status == "pass":
            return model, "dynamo", ""
        reason = f"dynamo graph failed the fp32 gate ({v.reason()})"
    except Exception as e:  # noqa: BLE001 (any exporter failure falls back, with its reason)
        reason = f"dynamo exporter failed: {type(e).__name__}: {str(e).strip()[:200]}"
    return torch_to_onnx(ctx.export_model, c, s, ctx.opset, dynamic), "torchscript", reason


def check(model) -> None:
    """Full checker plus strict shape inference; one clear error if either fails."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0]
        raise LightsegError(f"ONNX model failed validation: {first}") from None


def simplify(model):
    """onnxsim; returns (model, ok)."""
    import onnxsim

    if onnxsim.__version__.lstrip("v") != ONNXSIM_VERSION:
        return model, False
    simplified, ok = onnxsim.simplify(model)
    return simplified, bool(ok)


def save(model, path: Path) -> None:
    """Serialise atomically as ONE file (no external data)."""
    data = model.SerializeToString()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


#: Slices of the verification set used by the exporter's own checks (dynamo vs PyTorch, onnxsim
#: vs its input); every artifact is then judged on the whole set by the export driver.
CHECK_N = 8


def _same_outputs(ctx: ExportContext, a, b) -> bool:
    """Do two ModelProtos give the same outputs on the first verification slices (fp32 gates)?"""
    x, masks = ctx.x[:CHECK_N], ctx.verify_set.masks[:CHECK_N]
    ya, yb = (run_model(m.SerializeToString(), x) for m in (a, b))
    return compare(ya, yb, masks, load_tolerances(), "fp32").status == "pass"


def build(ctx: ExportContext) -> None:
    """Write model.onnx (dynamic batch) and model-fixed.onnx, each checked (and simplified)."""
    import onnx
    import onnxsim
    import torch

    check_opset(ctx.opset)
    tools = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxsim": onnxsim.__version__}
    for name, fname, dynamic in (
        ("onnx-fp32", "model.onnx", True),
        ("onnx-fp32-fixed", "model-fixed.onnx", False),
    ):
        with timer() as t:
            raw, exporter, fallback = exported(ctx, dynamic)
            check(raw)
            simp, ok = simplify(raw)
            note = "onnxsim failed or is not the pinned version; kept the unsimplified model"
            final, simplified = raw, False
            if ok:
                check(simp)
                if _same_outputs(ctx, raw, simp):
                    final, simplified, note = simp, True, "simplified with onnxsim, verified"
                else:
                    note = "onnxsim changed outputs beyond the fp32 gate; kept the unsimplified"
            path = ctx.out / fname
            save(final, path)
        ctx.files[name] = path
        artifact(
            ctx,
            name,
            path,
            t(),
            backend="onnxruntime",
            precision="fp32",
            format="onnx",
            tools=tools,
            options={
                "opset": ctx.opset,
                "dynamic_batch": dynamic,
                "exporter": exporter,
                **({"exporter_fallback_reason": fallback} if fallback else {}),
                "simplified": simplified,
                "nodes": len(final.graph.node),
                "note": note,
                "checker": "full",
                "shape_inference": "strict",
            },
            **ctx.io("batch" if dynamic else 1),
        )
