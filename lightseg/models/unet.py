"""One configurable U-Net that is exactly milesial's baseline or the paper's lightweight model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightseg.models.blocks import ACTIVATIONS, NORMS, DoubleConv, Down, OutConv, Up

MAX_DEPTH = 4
MAX_MID_RATIO = 4.0
#: Bounds on an architecture read from an untrusted model.json (checked before allocating).
LIMITS = {"base": (2, 256), "n_channels": (1, 4), "n_classes": (1, 64)}


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net.

    Widths are ``base * 2**level`` for level 0..depth. ``mid_ratio`` sets each DoubleConv's first
    conv to ``out * mid_ratio`` channels. Up blocks are named up{5-depth}..up4 so a 4-level net has
    milesial's up1..up4 and the 3-level lightweight net the paper's up2..up4. ``norm="none"``
    (conv bias required) is the BatchNorm-free form that ``fold_batchnorm`` produces.
    """

    n_channels: int = 3
    n_classes: int = 2
    base: int = 64
    depth: int = 4
    mid_ratio: float = 1.0
    bias: bool = True
    bilinear: bool = False
    activation: str = "relu"
    norm: str = "batch"

    def __post_init__(self) -> None:
        ints = ("n_channels", "n_classes", "base", "depth")
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        for name in ("bias", "bilinear"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        r = self.mid_ratio
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 < r <= MAX_MID_RATIO:
            raise ValueError(f"mid_ratio must be a number in (0, {MAX_MID_RATIO}], got {r!r}")
        if not 1 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"depth must be 1..{MAX_DEPTH}, got {self.depth}")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        if not isinstance(self.norm, str) or self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}")
        if self.norm == "none" and not self.bias:
            raise ValueError("norm 'none' needs conv bias (bias true): nothing else shifts")
        for name, (lo, hi) in LIMITS.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be {lo}..{hi}, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


class UNet(nn.Module):
    """U-Net with milesial/Pytorch-UNet state-dict names (inc, downK, upK, outc).

    Input sizes that are not multiples of ``2**depth`` are zero-padded at the bottom/right to the
    next multiple, run, and the logits cropped back: any H x W works and gives H x W logits.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        kw = {"bias": c.bias, "activation": c.activation, "norm": c.norm}
        widths = [c.base * 2**i for i in range(c.depth + 1)]
        factor = 2 if c.bilinear else 1

        def mid(cin: int, cout: int, up: bool = False) -> int:
            if c.mid_ratio != 1.0:
                return max(1, int(cout * c.mid_ratio))
            return cin // 2 if (up and c.bilinear) else cout  # milesial's bilinear Up rule

        self.inc = DoubleConv(c.n_channels, widths[0], mid(c.n_channels, widths[0]), **kw)
        self.down_names: list[str] = []
        for k in range(1, c.depth + 1):
            cout = widths[k] // (factor if k == c.depth else 1)
            self.add_module(f"down{k}", Down(widths[k - 1], cout, mid(widths[k - 1], cout), **kw))
            self.down_names.append(f"down{k}")
        self.up_names: list[str] = []
        first = MAX_DEPTH + 1 - c.depth
        for i, k in enumerate(range(c.depth, 0, -1)):
            cout = widths[k - 1] // (factor if k > 1 else 1)
            name = f"up{first + i}"
            self.add_module(
                name, Up(widths[k], cout, mid(widths[k], cout, up=True), c.bilinear, **kw)
            )
            self.up_names.append(name)
        self.outc = OutConv(widths[0], c.n_classes)

    @property
    def multiple(self) -> int:
        """Input sizes that are a multiple of this need no padding."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, [0, pw, 0, ph])
        skips = [self.inc(x)]
        for name in self.down_names:
            skips.append(getattr(self, name)(skips[-1]))
        y = skips.pop()
        for name in self.up_names:
            y = getattr(self, name)(y, skips.pop())
        y = self.outc(y)
        return y[..., :h, :w] if (ph or pw) else y
