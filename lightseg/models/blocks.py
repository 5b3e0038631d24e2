"""Building blocks shared by the baseline and lightweight U-Nets.

Module and attribute names follow milesial/Pytorch-UNet so that state dicts are interchangeable:
``double_conv`` is a Sequential of (conv, BN, act, conv, BN, act) at indices 0..5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "swish-learnable", "swish-fixed", "silu")
#: "batch": conv -> BatchNorm2d (milesial); "none": conv with bias only (BN folded, see fold.py).
NORMS = ("batch", "none")


class Swish(nn.Module):
    """Swish f(x) = x * sigmoid(beta * x).

    The module itself owns no parameter: with ``activation="swish-learnable"`` the beta is a
    parameter of the enclosing :class:`DoubleConv` and passed in at call time (so torchstat's
    leaf-module parameter count stays 4,197,986 while beta still trains). Without a beta argument
    it uses the fixed ``beta`` given at construction. Defaults to beta = 1 (which is SiLU).
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        b = self.beta if beta is None else beta
        return x * torch.sigmoid(b * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def make_activation(name: str) -> nn.Module:
    """Return the activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name in ("swish-learnable", "swish-fixed"):
        return Swish()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class DoubleConv(nn.Module):
    """(conv3x3 -> BN -> act) x 2; the first conv has ``mid`` output channels.

    ``norm="none"`` puts an ``nn.Identity`` where the BNs were, so the conv keys keep their
    indices (0 and 3) and a BN-folded model loads without renaming.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        mid: int | None = None,
        bias: bool = True,
        activation: str = "relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        mid = mid or cout

        def bn(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "batch" else nn.Identity()

        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=bias),
            bn(mid),
            make_activation(activation),
            nn.Conv2d(mid, cout, 3, padding=1, bias=bias),
            bn(cout),
            make_activation(activation),
        )
        self.beta = nn.Parameter(torch.ones(2)) if activation == "swish-learnable" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.double_conv
        for i, start in enumerate((0, 3)):
            x = seq[start + 1](seq[start](x))
            x = seq[start + 2](x) if self.beta is None else seq[start + 2](x, self.beta[i])
        return x


class Down(nn.Module):
    """MaxPool2d(2) then DoubleConv."""

    def __init__(self, cin: int, cout: int, mid: int | None = None, **kw) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout, mid, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upsample, pad to the skip's size, concat [skip, up], DoubleConv.

    ``bilinear=False`` uses ConvTranspose2d(cin, cin // 2, 2, stride 2) as milesial does; with
    ``bilinear=True`` the upsampling is bilinear and the DoubleConv takes cin channels.
    """

    def __init__(
        self, cin: int, cout: int, mid: int | None = None, bilinear: bool = False, **kw
    ) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout, mid, **kw)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy = x2.size(2) - x1.size(2)
        dx = x2.size(3) - x1.size(3)
        if dy or dx:
            x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    """1x1 convolution to class logits."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
