"""ExecuTorch ``.pte`` with the XNNPACK delegate: fp32, and int8 via PT2E (XNNPACKQuantizer).

A non-delegated ``.pte`` runs ~15 s per image: the export refuses a program in which XNNPACK
took no part, and records which ops (if any) stay outside the delegate.
"""

from __future__ import annotations

import numpy as np

from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.fileio import atomic_path

#: PT2E calibration uses histogram observers (~3 s per 256 px image): at most this many images.
PT2E_CALIB_MAX = 8
INSTALL = "ExecuTorch export needs: pip install 'lightseg[executorch]' (executorch==1.5.1)"


def _check_installed() -> None:
    try:
        import executorch.exir  # noqa: F401
    except ImportError:
        raise BackendUnavailable(INSTALL) from None


def _quantize(model, example: tuple, calib: np.ndarray, ranges: dict | None = None):
    """PT2E static int8 (symmetric per-channel weights) calibrated on ``calib``; with
    ``ranges`` (a QAT checkpoint's trained ones) every activation observer is pinned instead."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True)
    )
    graph = torch.export.export(model, example).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():  # pinned ranges: one pass only feeds the weight observers
        for i in range(1 if ranges else len(calib)):
            prepared(torch.from_numpy(calib[i : i + 1]))
    if ranges:
        _pin_ranges(prepared, ranges)
    return convert_pt2e(prepared)


def _qat_key(node) -> str | None:
    """The QAT quantization point (:class:`lightseg.qat.QuantSim` key) an observed activation
    of the PT2E graph is: the image, a DoubleConv's conv/SiLU outputs (conv0, mid, conv1, out),
    an Up's ConvTranspose (up) and concat (cat), the logits; max-pool keeps its input's grid."""
    op = getattr(node.target, "__name__", str(node.target)).split(".")[0]
    if node.op == "placeholder":
        return "image"
    if op == "max_pool2d":
        return _qat_key(node.args[0])
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    path = stack[-1][0] if stack else ""
    *owner, idx = path.split(".") if path else ("",)
    base = "_".join(owner[:-1])  # "inc.double_conv.3" -> "inc"
    if op == "conv2d" and path.startswith("outc"):
        return "logits"
    if owner and owner[-1] == "double_conv" and op in ("conv2d", "silu"):
        return f"{base}_" + {"0": "conv0", "2": "mid", "3": "conv1", "5": "out"}.get(idx, "?")
    if op == "conv_transpose2d" and idx == "up":
        return "_".join(owner) + "_up"
    if op == "cat" and path:
        return path.replace(".", "_") + "_cat"
    return None


def _pin_ranges(prepared, ranges: dict[str, list[float]]) -> None:
    """Replace every activation observer by a min/max one holding the trained range of the
    tensors it observes (XNNPACK shares one observer across a concat's inputs and output: it
    gets their union, i.e. the concat's). Any unmatched observer refuses the ranges."""
    import torch
    from torchao.quantization.pt2e import MinMaxObserver

    from lightseg.data.preprocessing import INPUT_RANGE

    shared: dict[int, tuple[list[str], set]] = {}  # one observer object may hold many names
    for n in prepared.graph.nodes:
        if n.op == "call_module" and n.target.startswith("activation_post_process"):
            src = n.args[0]
            if src.op == "get_attr":
                continue  # a weight: per-channel min/max of the weights themselves
            names, ks = shared.setdefault(id(getattr(prepared, n.target)), ([], set()))
            names.append(n.target)
            ks.add(_qat_key(src))
    for names, ks in shared.values():
        if None in ks or not ks <= set(ranges):
            seen = ", ".join(sorted(map(str, ks)))
            raise LightsegError(f"executorch: the trained ranges do not cover {names[0]} ({seen})")
        lo = min(INPUT_RANGE[0] if k == "image" else ranges[k][0] for k in ks)
        hi = max(INPUT_RANGE[1] if k == "image" else ranges[k][1] for k in ks)
        old = getattr(prepared, names[0])
        new = MinMaxObserver(dtype=old.dtype, qscheme=old.qscheme, quant_min=old.quant_min,
                             quant_max=old.quant_max, eps=float(old.eps))  # fmt: skip
        new.min_val.copy_(torch.tensor(min(lo, 0.0)))
        new.max_val.copy_(torch.tensor(max(hi, 0.0)))
        for name in names:
            setattr(prepared, name, new)


def lower(ctx: ExportContext, precision: str) -> tuple[bytes, dict]:
    """The .pte bytes and a delegation summary."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    example = (torch.zeros(*ctx.shape),)
    model = ctx.export_model.eval()
    if precision == "int8":
        calib = ctx.calib
        model = _quantize(model, example, calib[:PT2E_CALIB_MAX], ctx.activation_ranges)
    ep = torch.export.export(model, example)
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    graph = edge.exported_program().graph
    calls = [n for n in graph.nodes if n.op == "call_function"]
    delegated = [n for n in calls if "executorch_call_delegate" in str(n.target)]
    names = {getattr(n.target, "__name__", str(n.target)) for n in calls if n not in delegated}
    outside = sorted(n for n in names if "getitem" not in n)
    if not delegated:
        raise LightsegError(
            f"XNNPACK took no part of the {precision} program; refusing a slow .pte"
        )
    info = {"delegate": "XnnpackBackend", "partitions": len(delegated), "outside_delegate": outside}
    return edge.to_executorch().buffer, info


def build(ctx: ExportContext, precision: str) -> None:
    """executorch/model-<precision>.pte with the XNNPACK delegate."""
    _check_installed()
    import executorch
    import torch

    with timer() as t:
        data, info = lower(ctx, precision)
        path = ctx.out / "executorch" / f"model-{precision}.pte"
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    version = getattr(executorch, "__version__", "unknown")
    n_calib = 0 if ctx.activation_ranges else min(PT2E_CALIB_MAX, len(ctx.calib))
    q = precision == "int8"
    ranges = "trained (QAT checkpoint)" if ctx.activation_ranges else "histogram observers"
    artifact(
        ctx,
        f"executorch-{precision}",
        path,
        t(),
        backend="executorch",
        precision=precision,
        format="pte",
        tools={"executorch": version, "torch": torch.__version__},
        options={
            **info,
            "quantization": "PT2E XNNPACKQuantizer, symmetric per-channel" if q else "none",
            "calibration_images": n_calib if q else 0,
            "activation_ranges": ranges if q else "none",
        },
    )
