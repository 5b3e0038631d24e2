"""Equalise each decoder concat: shrink the upsampled channels toward the skip's range, exactly.

An Up block concatenates its skip (an encoder SiLU output, measured about [-0.3, 9] on the
shipped model) with its transposed conv's output, which has no activation (up to [-88, 84]).
One per-tensor uint8 scale then covers the transposed conv's range and leaves the skip ~15 of
256 levels. Scaling output channel ``c`` of the transposed conv (its weights ``[:, c]`` and bias
``c``) by ``s_c`` and the matching input column of the conv after the concat by ``1 / s_c`` is
exact in fp32: only zero padding and the concat lie between them.

``s_c = min(1, frac * R / max|a_c|)``: ``R`` is the skip's maximum and ``a_c`` channel ``c`` of
the transposed conv's output, both over the calibration images; channels already inside stay as
they are. ``frac = 0.5`` is the measured best (the concat's range becomes about [-R/2, R]).
Blocks that upsample without weights (bilinear) have nothing to scale and are reported as such.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lightseg.models.fold import _dc_paths
from lightseg.models.unet import UNet

#: The measured best share of the skip's range given to the upsampled channels.
FRACTION = 0.5


@torch.no_grad()
def concat_ranges(model: UNet, x: np.ndarray, batch: int = 4) -> dict[str, dict]:
    """Per Up block: the skip's max and the per-channel max |value| of its upsampled input."""
    enc, _ = _dc_paths(model)
    depth = len(model.down_names)
    stats: dict[str, torch.Tensor] = {}

    def keep_max(key: str, value: torch.Tensor) -> None:
        stats[key] = torch.maximum(stats[key], value) if key in stats else value

    hooks = []
    for j, name in enumerate(model.up_names):
        hooks += [
            model.get_submodule(enc[depth - 1 - j]).register_forward_hook(
                lambda m, i, o, k=f"{name}.skip": keep_max(k, o.max().double())
            ),
            model.get_submodule(f"{name}.up").register_forward_hook(
                lambda m, i, o, k=f"{name}.up": keep_max(k, o.abs().amax((0, 2, 3)).double())
            ),
        ]
    try:
        for i in range(0, len(x), batch):
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return {n: {"skip_max": stats[f"{n}.skip"], "up_abs": stats[f"{n}.up"]} for n in model.up_names}


@torch.no_grad()
def equalize_concats(
    model: nn.Module, x: np.ndarray, frac: float = FRACTION
) -> tuple[nn.Module, dict]:
    """Return ``(equalised copy in eval mode, report)``; ``model`` itself is not touched.

    Report per Up block: ``skip_max``, ``up_abs_max`` before and after, and the smallest scale;
    or ``{"skipped": reason}``. Computed in float64, rounded once per weight.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"equalize_concats supports lightseg UNet, got {type(model).__name__}")
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    eq = copy.deepcopy(model).eval()
    ranges = concat_ranges(eq, x)
    report: dict = {"fraction": frac, "images": len(x), "blocks": {}}
    for name in eq.up_names:
        up = eq.get_submodule(f"{name}.up")
        if not isinstance(up, nn.ConvTranspose2d) or up.groups != 1:
            report["blocks"][name] = {"skipped": f"{type(up).__name__} has no weights to scale"}
            continue
        r = ranges[name]
        a = r["up_abs"].clamp_min(torch.finfo(torch.float32).tiny)
        s = (frac * r["skip_max"].clamp_min(0) / a).clamp(max=1.0)
        s = torch.where(s > 0, s, torch.ones_like(s))  # a skip that never goes positive: keep
        up.weight.copy_((up.weight.double() * s.view(1, -1, 1, 1)).to(up.weight.dtype))
        if up.bias is not None:
            up.bias.copy_((up.bias.double() * s).to(up.bias.dtype))
        conv = eq.get_submodule(f"{name}.conv.double_conv.0")
        skip_w = conv.in_channels - up.out_channels
        w = conv.weight[:, skip_w:]
        w.copy_((w.double() / s.view(1, -1, 1, 1)).to(w.dtype))
        report["blocks"][name] = {
            "skip_max": round(float(r["skip_max"]), 4),
            "up_abs_max": round(float(a.max()), 4),
            "up_abs_max_after": round(float((a * s).max()), 4),
            "scaled_channels": int((s < 1).sum()),
            "min_scale": round(float(s.min()), 6),
        }
    return eq, report
