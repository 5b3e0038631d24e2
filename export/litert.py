"""LiteRT (TFLite) ``.tflite`` via litert-torch (fp32). Not installed by default (~2 GB, jax).

Written against litert-torch 0.10's ``convert(model, args).export(path)`` API; verification runs
the converted model (TFLite interpreter) against PyTorch. int8 (ai-edge-quantizer, int8 I/O) is
not implemented yet.
"""

from __future__ import annotations

from lightseg.errors import BackendUnavailable
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.fileio import atomic_path

INSTALL = "LiteRT export needs: pip install 'lightseg[litert]'"


def build(ctx: ExportContext, precision: str = "fp32") -> None:
    """litert/model-fp32.tflite."""
    try:
        import litert_torch
    except ImportError:
        raise BackendUnavailable(INSTALL) from None
    import torch

    if precision != "fp32":
        raise BackendUnavailable(f"LiteRT {precision} export is not implemented; use fp32")
    with timer() as t:
        edge = litert_torch.convert(ctx.export_model.eval(), (torch.zeros(*ctx.shape),))
        path = ctx.out / "litert" / "model-fp32.tflite"
        with atomic_path(path) as tmp:
            edge.export(str(tmp))
    artifact(
        ctx,
        "litert-fp32",
        path,
        t(),
        backend="litert",
        precision="fp32",
        format="tflite",
        tools={"litert_torch": getattr(litert_torch, "__version__", "unknown")},
    )
