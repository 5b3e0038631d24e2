"""The one preprocessing used by training, calibration, parity and the demos.

HU -> window [level - width/2, level + width/2] -> [0, 1] -> replicate to ``channels`` ->
pad (centred, with the value 0 = below the window) or resize to ``size`` x ``size``.
Java (android_demo) and JavaScript (web demo) implement the same numbers from the JSON form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from lightseg.errors import LightsegError

MIN_SIZE, MAX_SIZE = 16, 2048  # model input size bounds (a larger one is refused unread)
MAX_CHANNELS = 4
MAX_HU = 100_000.0  # |window level| and window width bound


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: Every model input lies in this range: the window maps HU onto it and clips.
INPUT_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Preprocessing:
    """Serialisable preprocessing spec. Defaults to a breast-CT window of -300..+300 HU."""

    window_level: float = 0.0
    window_width: float = 600.0
    channels: int = 3
    size: int = 256
    fit: str = "pad"  # "pad": centre-pad/crop to size; "resize": bilinear resize to size

    def __post_init__(self) -> None:
        for name in ("window_level", "window_width"):
            v = getattr(self, name)
            if not _is_number(v) or abs(v) > MAX_HU or not math.isfinite(v):
                raise LightsegError(f"preprocessing: {name} must be a finite number, got {v!r}")
        for name in ("channels", "size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise LightsegError(f"preprocessing: {name} must be an integer, got {v!r}")
        if self.window_width <= 0:
            raise LightsegError("preprocessing: window_width must be positive")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise LightsegError(f"preprocessing: channels must be 1..{MAX_CHANNELS}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise LightsegError(
                f"preprocessing: size must be {MIN_SIZE}..{MAX_SIZE}, got {self.size}"
            )
        if self.fit not in ("pad", "resize"):
            raise LightsegError(f"preprocessing: fit must be 'pad' or 'resize', got {self.fit!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        if not isinstance(d, dict):
            raise LightsegError("preprocessing: expected an object")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            names = sorted(str(k)[:40] for k in unknown)[:5]
            raise LightsegError(f"preprocessing: unknown fields {names}")
        return cls(**d)

    def window(self, hu: np.ndarray) -> np.ndarray:
        """Map HU to INPUT_RANGE = [0, 1] float32 with the window; NaN is refused."""
        hu = np.asarray(hu, dtype=np.float32)
        if not np.isfinite(hu).all():
            raise LightsegError("preprocessing: image contains NaN or Inf values")
        lo = self.window_level - self.window_width / 2
        return np.clip((hu - lo) / self.window_width, *INPUT_RANGE).astype(np.float32)

    def fit_2d(self, a: np.ndarray, order: int = 1) -> np.ndarray:
        """Bring an H x W array to size x size (centre pad/crop, or resize with ``order``)."""
        s = self.size
        if self.fit == "resize":
            if a.shape == (s, s):
                return a
            from scipy.ndimage import zoom

            return zoom(a, (s / a.shape[0], s / a.shape[1]), order=order).astype(a.dtype)[:s, :s]
        out = np.zeros((s, s), dtype=a.dtype)
        h, w = a.shape
        sy, sx = max(0, (h - s) // 2), max(0, (w - s) // 2)  # source crop start
        dy, dx = max(0, (s - h) // 2), max(0, (s - w) // 2)  # destination start
        ch, cw = min(h, s), min(w, s)
        out[dy : dy + ch, dx : dx + cw] = a[sy : sy + ch, sx : sx + cw]
        return out

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        """HU slice (H x W) -> model input (channels x size x size) float32."""
        if np.ndim(hu) != 2:
            raise LightsegError(f"preprocessing: expected an H x W slice, got shape {np.shape(hu)}")
        x = self.fit_2d(self.window(hu))
        return np.repeat(x[None], self.channels, axis=0)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """Bring a label mask (H x W) to the model's grid (nearest neighbour), int64."""
        return self.fit_2d(np.asarray(mask).astype(np.int64), order=0)
