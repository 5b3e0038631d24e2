"""Model registry: ``create_model("unet" | "lightunet", **overrides)``."""

from __future__ import annotations

from lightseg.models.blocks import ACTIVATIONS, NORMS, Swish
from lightseg.models.fold import fold_batchnorm, fold_swish_beta
from lightseg.models.unet import UNet, UNetConfig

#: Named architectures; every field of :class:`UNetConfig` can be overridden.
MODELS: dict[str, dict] = {
    # milesial/Pytorch-UNet UNet(3, 2, bilinear=False), conv bias on: 31,043,586 parameters.
    "unet": {"base": 64, "depth": 4, "mid_ratio": 1.0, "activation": "relu"},
    # The paper's lightweight model: 3 levels, mid = out/2, learnable-beta Swish: 4,198,000
    # parameters (4,197,986 under torchstat's leaf-module convention).
    "lightunet": {"base": 64, "depth": 3, "mid_ratio": 0.5, "activation": "swish-learnable"},
}


def model_config(name: str, **overrides) -> UNetConfig:
    """The :class:`UNetConfig` of a registered architecture with ``overrides`` applied."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return UNetConfig(**{**MODELS[name], **overrides})


def create_model(name: str, **overrides) -> UNet:
    """Build a registered architecture, e.g. ``create_model("lightunet", base=8)``."""
    return UNet(model_config(name, **overrides))


__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "NORMS",
    "Swish",
    "UNet",
    "UNetConfig",
    "create_model",
    "fold_batchnorm",
    "fold_swish_beta",
    "model_config",
]
