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


def _quantize(model, example: tuple, calib: np.ndarray):
    """PT2E static int8 (symmetric, per-channel) calibrated on ``calib``."""
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
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(torch.from_numpy(calib[i : i + 1]))
    return convert_pt2e(prepared)


def lower(ctx: ExportContext, precision: str) -> tuple[bytes, dict]:
    """The .pte bytes and a delegation summary."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    example = (torch.zeros(*ctx.shape),)
    model = ctx.export_model.eval()
    if precision == "int8":
        calib = ctx.calib
        model = _quantize(model, example, calib[:PT2E_CALIB_MAX])
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
    n_calib = min(PT2E_CALIB_MAX, len(ctx.calib))
    q = precision == "int8"
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
        },
    )
