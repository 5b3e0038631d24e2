"""The one preprocessing used by training, calibration, parity and the demos.

HU -> window [level - width/2, level + width/2] -> [0, 1] -> replicate to ``channels`` ->
pad (centred, with the value 0 = below the window) or resize to ``size`` x ``size``.
Java (android_demo) and JavaScript (web demo) implement the same numbers from the JSON form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lightseg.errors import LightsegError


@dataclass(frozen=True)
class Preprocessing:
    """Serialisable preprocessing spec. Defaults to a breast-CT window of -300..+300 HU."""

    window_level: float = 0.0
    window_width: float = 600.0
    channels: int = 3
    size: int = 256
    fit: str = "pad"  # "pad": centre-pad/crop to size; "resize": bilinear resize to size

    def __post_init__(self) -> None:
        if self.window_width <= 0 or self.channels < 1 or self.size < 1:
            raise LightsegError("preprocessing: window_width, channels and size must be positive")
        if self.fit not in ("pad", "resize"):
            raise LightsegError(f"preprocessing: fit must be 'pad' or 'resize', got {self.fit!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise LightsegError(f"preprocessing: unknown fields {sorted(unknown)}")
        return cls(**d)

    def window(self, hu: np.ndarray) -> np.ndarray:
        """Map HU to [0, 1] float32 with the window; NaN is refused."""
        hu = np.asarray(hu, dtype=np.float32)
        if not np.isfinite(hu).all():
            raise LightsegError("preprocessing: image contains NaN or Inf values")
        lo = self.window_level - self.window_width / 2
        return np.clip((hu - lo) / self.window_width, 0.0, 1.0).astype(np.float32)

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
