"""Fold the learnable Swish beta into the neighbouring layers, exactly.

For beta > 0, ``x * sigmoid(beta * x) == SiLU(beta * x) / beta``. So each Swish becomes a plain
``nn.SiLU``: the producing BatchNorm's affine weight and bias are multiplied by beta, and the
factor ``1 / beta`` is pushed into every consumer's input-channel weights. On the way it passes
max-pool (commutes with a positive scale), bilinear upsampling (linear, per channel), zero
padding (zero stays zero) and the decoder's concat (only that activation's channel slice of the
conv after the concat is scaled). The consumers are the next 3x3 conv, the transposed conv, the
conv after a concat, and the 1x1 OutConv.

``fold_swish_beta`` does *not* fold BatchNorm into the convs: scaling gamma and beta is exact in
train and eval mode alike, and the state dict keeps milesial's key names. ``fold_batchnorm`` is
the separate eval-mode step (what the ONNX exporter's constant folding does anyway), giving the
``norm="none"`` model that quantization-aware training fine-tunes as the deployed graph.

When every activation folds, the result is a plain ``activation="silu"`` UNet whose state dict
loads into ``create_model(arch, activation="silu", ...)``; its ``config`` says so.
Activations with beta <= 0 (or a beta whose scale would cost fp32 precision) are kept as a
fixed-beta :class:`Swish` and listed in the report.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from lightseg.models.blocks import DoubleConv, Swish
from lightseg.models.unet import UNet

#: Betas outside this range are kept: 1/beta would push weights out of a sane fp32 range.
BETA_RANGE = (1e-6, 1e6)

_Consumer = tuple[str, slice, str]  # (module path, input-channel slice, how the value gets there)


def _dc_paths(m: UNet) -> tuple[list[str], list[str]]:
    """Paths of the encoder DoubleConvs (level 0..depth) and the decoder ones (in run order)."""
    enc = ["inc"] + [f"{n}.maxpool_conv.1" for n in m.down_names]
    dec = [f"{n}.conv" for n in m.up_names]
    return enc, dec


def _width(m: UNet, dc_path: str) -> int:
    return m.get_submodule(dc_path).double_conv[3].out_channels


def _into_up(m: UNet, j: int, skip_width: int) -> _Consumer:
    """Where the input of the j-th Up block's upsampling is consumed."""
    name = m.up_names[j]
    up = m.get_submodule(name).up
    if isinstance(up, nn.ConvTranspose2d):
        return (f"{name}.up", slice(None), "direct")
    if isinstance(up, nn.Upsample) and up.mode in ("bilinear", "nearest"):
        return (f"{name}.conv.double_conv.0", slice(skip_width, None), "upsample+pad+concat")
    raise TypeError(f"{name}.up: cannot pass a scale through {type(up).__name__}")


def _output_consumers(m: UNet) -> dict[str, list[_Consumer]]:
    """For each DoubleConv path, the layers that read its output (through pool/pad/concat)."""
    enc, dec = _dc_paths(m)
    depth = len(m.down_names)
    out: dict[str, list[_Consumer]] = {}
    for k, path in enumerate(enc):
        if k == depth:  # the bottleneck feeds the first Up block
            out[path] = [_into_up(m, 0, _width(m, enc[depth - 1]))]
            continue
        up_name = m.up_names[depth - 1 - k]  # the Up block that takes this level as its skip
        out[path] = [
            (f"{enc[k + 1]}.double_conv.0", slice(None), "maxpool"),
            (f"{up_name}.conv.double_conv.0", slice(0, _width(m, path)), "skip concat"),
        ]
    for j, path in enumerate(dec):
        if j + 1 < len(dec):
            out[path] = [_into_up(m, j + 1, _width(m, enc[depth - 2 - j]))]
        else:
            out[path] = [("outc.conv", slice(None), "direct")]
    return out


def _scale_(t: torch.Tensor, s: float) -> None:
    """In-place ``t *= s`` computed in float64, rounded once."""
    t.copy_((t.double() * s).to(t.dtype))


def _scale_input_(mod: nn.Module, sl: slice, s: float) -> None:
    """Multiply the input-channel slice ``sl`` of a conv's weight by ``s``."""
    if isinstance(mod, nn.ConvTranspose2d) and mod.groups == 1:
        _scale_(mod.weight[sl], s)
    elif isinstance(mod, nn.Conv2d) and mod.groups == 1:
        _scale_(mod.weight[:, sl], s)
    else:
        raise TypeError(f"cannot scale the input of {type(mod).__name__}")


def _keep_reason(beta: float) -> str | None:
    if not math.isfinite(beta):
        return f"beta = {beta} is not finite"
    if beta <= 0:
        return f"beta = {beta:.6g} <= 0: 1/beta must be a positive scale (max-pool)"
    if not BETA_RANGE[0] <= beta <= BETA_RANGE[1]:
        return f"beta = {beta:.6g} outside {BETA_RANGE}: scaling would cost fp32 precision"
    return None


def _fmt(sl: slice) -> str:
    return f"[{'' if sl.start is None else sl.start}:{'' if sl.stop is None else sl.stop}]"


@torch.no_grad()
def fold_swish_beta(model: nn.Module) -> tuple[nn.Module, dict]:
    """Return ``(folded copy in eval mode, report)``; ``model`` itself is not touched.

    The folded model computes the same logits with every foldable Swish replaced by ``nn.SiLU``.
    Report keys: ``folded`` {activation path: beta}, ``kept`` {path: {"beta", "reason"}},
    ``producers`` {path: BN path}, ``consumers`` {path: ["layer[in-channel slice] (via ...)"]},
    ``bn_folded`` (always False), ``config_activation`` (the new config's activation, or None
    when kept activations mean no config describes the model). A model without any Swish comes
    back as an unchanged copy with an empty report ``{}``.
    """
    folded = copy.deepcopy(model).eval()
    if not any(isinstance(m, Swish) for m in folded.modules()):
        return folded, {}
    if not isinstance(folded, UNet):
        raise TypeError(
            f"fold_swish_beta supports lightseg UNet models, got {type(model).__name__}"
        )

    enc, dec = _dc_paths(folded)
    outputs = _output_consumers(folded)
    report: dict = {"folded": {}, "kept": {}, "producers": {}, "consumers": {}, "bn_folded": False}
    for dc_path in enc + dec:
        dc = folded.get_submodule(dc_path)
        assert isinstance(dc, DoubleConv), dc_path
        seq = dc.double_conv
        any_folded = False
        new_acts: dict[int, nn.Module] = {}
        for i, idx in enumerate((2, 5)):
            act = seq[idx]
            if not isinstance(act, Swish):
                continue
            name = f"{dc_path}.double_conv.{idx}"
            beta = float(dc.beta[i]) if dc.beta is not None else float(act.beta)
            reason = _keep_reason(beta)
            if reason is not None:
                report["kept"][name] = {"beta": beta, "reason": reason}
                new_acts[idx] = Swish(beta)  # fixed beta; the DoubleConv may lose its parameter
                continue
            bn = seq[idx - 1]
            if not (isinstance(bn, nn.BatchNorm2d) and bn.affine):
                report["kept"][name] = {"beta": beta, "reason": "producer is not an affine BN"}
                new_acts[idx] = Swish(beta)
                continue
            consumers = (
                [(f"{dc_path}.double_conv.3", slice(None), "direct")]
                if idx == 2
                else outputs[dc_path]
            )
            if beta != 1.0:
                _scale_(bn.weight, beta)
                _scale_(bn.bias, beta)
                for path, sl, _ in consumers:
                    _scale_input_(folded.get_submodule(path), sl, 1.0 / beta)
            new_acts[idx] = nn.SiLU()
            any_folded = True
            report["folded"][name] = beta
            report["producers"][name] = f"{dc_path}.double_conv.{idx - 1}"
            report["consumers"][name] = [f"{p}{_fmt(sl)} (via {how})" for p, sl, how in consumers]
        if any_folded:
            for idx, act in new_acts.items():
                seq[idx] = act
            dc.beta = None  # betas now live in the weights (folded) or in fixed Swish (kept)

    if report["kept"]:
        report["config_activation"] = None
    else:
        folded.config = dataclasses.replace(folded.config, activation="silu")
        report["config_activation"] = "silu"
    return folded.eval(), report


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, dict]:
    """Return ``(copy with every DoubleConv BN folded into its conv, report)``; eval mode.

    Exact in eval mode (up to one fp32 rounding per weight): ``w' = w * g / sqrt(var + eps)``,
    ``b' = (b - mean) * g / sqrt(var + eps) + beta``, computed in float64. The copy's config is
    ``norm="none", bias=True``, so its state dict loads into ``create_model(arch, **config)``.
    Report: ``{"bn_folded": [BN paths]}``; a model without BN comes back unchanged with ``{}``.
    """
    folded = copy.deepcopy(model).eval()
    bns = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return folded, {}
    if not isinstance(folded, UNet):
        raise TypeError(f"fold_batchnorm supports lightseg UNet models, got {type(model).__name__}")
    for dc in (m for m in folded.modules() if isinstance(m, DoubleConv)):
        seq = dc.double_conv
        for ci in (0, 3):
            conv, bn = seq[ci], seq[ci + 1]
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            inv = bn.running_var.double().add(bn.eps).rsqrt()
            g = bn.weight.double() * inv if bn.affine else inv
            shift = bn.bias.double() if bn.affine else torch.zeros_like(g)
            b = conv.bias.double() if conv.bias is not None else torch.zeros_like(g)
            w = conv.weight.double() * g.view(-1, 1, 1, 1)
            new = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, conv.groups, bias=True,
            )  # fmt: skip
            new.weight.copy_(w.to(conv.weight.dtype))
            new.bias.copy_(((b - bn.running_mean.double()) * g + shift).to(conv.weight.dtype))
            seq[ci], seq[ci + 1] = new, nn.Identity()
    folded.config = dataclasses.replace(folded.config, norm="none", bias=True)
    return folded.eval(), {"bn_folded": bns}
