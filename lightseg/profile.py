"""Model profiler: parameters, MACs, FLOPs, activation memory and memory traffic per layer.

Two conventions:

* ``torchstat`` reproduces torchstat 0.0.7's figures (the paper's table) without depending on
  it (it no longer runs on pandas>=2/numpy>=1.24): only leaf modules count; Conv2d, ConvTranspose2d,
  BatchNorm2d, ReLU and MaxPool2d have MAdd/Flops/MemR+W formulas; any other module (Swish, SiLU,
  Upsample) costs 0 but its output still counts in "memory"; ConvTranspose2d counts only in MAdd;
  parameters are those of leaf modules (so betas owned by a DoubleConv are not counted).
  MAdd and Flops print in decimal G, memory in MiB, MemR+W in binary units, as torchstat does.
* ``modern`` counts every trainable parameter and MACs of every conv and transposed conv
  (what torch.utils.flop_counter reports, FLOPs = 2 x MACs), activation memory as the bytes of
  all leaf outputs, and memory traffic the same way as torchstat for comparability.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lightseg.errors import LightsegError

CONVENTIONS = ("torchstat", "modern")

#: The paper's printed figures (torchstat 0.0.7 on 3x256x256, n_classes=2).
PAPER = {
    "unet": {
        "params": 31_043_586,
        "memory_mb": 404.00,
        "madd_g": 96.51,
        "flops_g": 46.16,
        "memrw_mb": 901.04,
    },
    "lightunet": {
        "params": 4_197_986,
        "memory_mb": 296.50,
        "madd_g": 38.48,
        "flops_g": 17.66,
        "memrw_mb": 418.64,
    },
}


@dataclass
class LayerStat:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    memory_bytes: int
    madd: int
    flops: int
    mem_rw_bytes: int
    macs: int


@dataclass
class Profile:
    convention: str
    input_shape: tuple[int, ...]
    layers: list[LayerStat] = field(default_factory=list)
    trainable_params: int = 0

    @property
    def params(self) -> int:
        if self.convention == "torchstat":
            return sum(layer.params for layer in self.layers)
        return self.trainable_params

    def total(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    def summary(self) -> dict:
        """Totals in the units the paper prints (memory MiB, MAdd/Flops decimal G, MemR+W MiB)."""
        return {
            "convention": self.convention,
            "input_shape": list(self.input_shape),
            "params": self.params,
            "trainable_params": self.trainable_params,
            "memory_mb": self.total("memory_bytes") / 2**20,
            "madd_g": self.total("madd") / 1e9,
            "flops_g": self.total("flops") / 1e9,
            "memrw_mb": self.total("mem_rw_bytes") / 2**20,
            "conv_gmacs": self.total("macs") / 1e9,
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "layers": [asdict(layer) for layer in self.layers]}


def _conv_madd(m: nn.Module, spatial: int, cin: int, cout: int) -> int:
    """torchstat's MAdd of a (transposed) conv over ``spatial`` positions."""
    kh, kw = m.kernel_size
    mul = kh * kw * (cin // m.groups)
    add = mul - 1 + (0 if m.bias is None else 1)
    return (mul + add) * spatial * cout


def _layer(name: str, m: nn.Module, x: torch.Tensor, y: torch.Tensor, conv: str) -> LayerStat:
    n_in, n_out = x.numel(), y.numel()
    params = sum(p.numel() for p in m.parameters(recurse=False))
    trainable = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
    madd = flops = rw = macs = 0
    if isinstance(m, nn.ConvTranspose2d):
        cin, h, w = x.shape[1:]
        cout = y.shape[1]
        madd = _conv_madd(m, h * w, cin, cout)
        macs = x.shape[0] * h * w * cin * cout // m.groups * math.prod(m.kernel_size)
    elif isinstance(m, nn.Conv2d):
        cin = x.shape[1]
        cout, oh, ow = y.shape[1:]
        madd = _conv_madd(m, oh * ow, cin, cout)
        macs = y.shape[0] * oh * ow * cout * (cin // m.groups) * math.prod(m.kernel_size)
        flops = macs + (y.shape[0] * cout * oh * ow if m.bias is not None else 0)
        rw = (n_in + trainable) + n_out
    elif isinstance(m, nn.BatchNorm2d):
        madd = 4 * n_in
        flops = n_in * (2 if m.affine else 1)
        rw = (n_in + 2 * x.shape[1]) + n_in
    elif isinstance(m, nn.ReLU):
        madd = flops = n_in
        rw = 2 * n_in
    elif isinstance(m, nn.MaxPool2d):
        k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
        madd = (k[0] * k[1] - 1) * n_out
        flops = n_in
        rw = n_in + n_out
    if conv == "modern":
        madd, flops = 2 * macs, 2 * macs
    return LayerStat(
        name=name,
        kind=type(m).__name__,
        out_shape=tuple(y.shape),
        params=params,
        memory_bytes=4 * n_out // y.shape[0],
        madd=madd,
        flops=flops,
        mem_rw_bytes=4 * rw,
        macs=macs,
    )


MAX_SIDE = 2048  # largest H or W profiled (the largest model input size)


def _check_input(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Refuse a shape that is not (C, H, W) with 1 <= H, W <= MAX_SIDE and the model's C."""
    if len(shape) != 3 or any(not isinstance(d, int) or isinstance(d, bool) for d in shape):
        raise LightsegError(f"profile: input shape must be (C, H, W) integers, got {shape!r}")
    c, h, w = shape
    if min(shape) < 1 or max(h, w) > MAX_SIDE:
        raise LightsegError(f"profile: H and W must be 1..{MAX_SIDE}, got {c}x{h}x{w}")
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != c:
        raise LightsegError(f"profile: the model takes {first.in_channels} channels, not {c}")


@torch.no_grad()
def profile_model(
    model: nn.Module, input_shape: tuple[int, ...] = (3, 256, 256), convention: str = "torchstat"
) -> Profile:
    """Profile ``model`` on one input of ``input_shape`` (C, H, W): the paper's by default."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}")
    _check_input(model, input_shape)
    prof = Profile(convention=convention, input_shape=tuple(input_shape))
    prof.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    hooks = []
    for name, m in model.named_modules():
        if next(iter(m.children()), None) is None:
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out, name=name: prof.layers.append(
                        _layer(name, mod, inp[0], out, convention)
                    )
                )
            )
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return prof
