"""Import a state dict saved by milesial/Pytorch-UNet's code into a lightseg checkpoint."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from lightseg.checkpoint import (
    DEFAULT_CLASSES,
    check_finite,
    check_shapes,
    save_checkpoint,
    sha256_file,
)
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError, one_line
from lightseg.models import UNet, model_config


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` with ``torch.load(weights_only=True)``; drops milesial's ``mask_values``."""
    p = Path(path)
    if p.is_dir():
        raise LightsegError(f"{p}: is a directory, not a .pth file")
    if not p.is_file():
        raise LightsegError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad pickles/zip files
        first = one_line(e, 160) or type(e).__name__
        raise LightsegError(f"{p}: not a loadable PyTorch state dict ({first})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise LightsegError(f"{p}: expected a state dict, found {type(obj).__name__}")
    obj.pop("mask_values", None)
    state = {
        k.removeprefix("module."): v
        for k, v in obj.items()
        if isinstance(k, str) and isinstance(v, torch.Tensor)
    }
    need = ("outc.conv.weight", "inc.double_conv.0.weight", "inc.double_conv.3.weight")
    if any(k not in state or state[k].ndim != 4 for k in need):
        raise LightsegError(f"{p}: not a milesial/Pytorch-UNet state dict (no inc/outc weights)")
    check_finite(state, str(p))
    return state


def infer_config(state: dict[str, torch.Tensor]) -> dict:
    """Read the U-Net config (channels, classes, bias, bilinear, width) off the tensor shapes."""
    w0 = state["inc.double_conv.0.weight"]
    return {
        "n_channels": int(w0.shape[1]),
        "n_classes": int(state["outc.conv.weight"].shape[0]),
        "base": int(state["inc.double_conv.3.weight"].shape[0]),
        "bias": "inc.double_conv.0.bias" in state,
        "bilinear": "up1.up.weight" not in state,
    }


def import_milesial(
    pth: str | os.PathLike, out_dir: str | os.PathLike, preprocessing: Preprocessing | None = None
) -> Path:
    """Convert a milesial ``.pth`` into a checkpoint folder; returns its path."""
    state = read_state_dict(pth)
    cfg = infer_config(state)
    try:
        config = model_config("unet", **cfg)
    except ValueError as e:
        raise LightsegError(f"{pth}: not a U-Net lightseg accepts ({one_line(e, 160)})") from None
    check_shapes({k: tuple(v.shape) for k, v in state.items()}, config, str(pth))
    model = UNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise LightsegError(
            f"{pth}: weights do not match milesial's UNet ({one_line(e, 160)})"
        ) from None
    classes = DEFAULT_CLASSES if cfg["n_classes"] == 2 else ("lesion",)
    return save_checkpoint(
        model,
        out_dir,
        "unet",
        preprocessing or Preprocessing(channels=cfg["n_channels"]),
        classes=classes
        if cfg["n_classes"] <= 2
        else [f"class{i}" for i in range(cfg["n_classes"])],
        provenance={"imported_from": str(pth), "source_sha256": sha256_file(pth)},
    )
