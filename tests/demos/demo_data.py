"""Shared data for the demo tests (a module with a unique name, so test files can import it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing

SIZE = 64
PRE = Preprocessing(window_level=0.0, window_width=600.0, channels=3, size=SIZE, fit="pad")


def synthetic_slice(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A breast-like HU slice (air, fat, glandular tissue, one bright lesion) and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
    body = ((yy - cy) / (0.45 * h)) ** 2 + ((xx - cx) / (0.45 * w)) ** 2 < 1
    hu = np.where(body, -100.0, -1000.0).astype(np.float32)
    gland = body & (((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.25 * w)) ** 2 < 1)
    hu[gland] = 20.0
    r = rng.uniform(0.08, 0.14) * min(h, w)
    ly, lx = cy + rng.uniform(-0.15, 0.15) * h, cx + rng.uniform(-0.15, 0.15) * w
    lesion = (yy - ly) ** 2 + (xx - lx) ** 2 < r**2
    hu[lesion] = 120.0
    hu += rng.normal(0, 15, hu.shape).astype(np.float32) * body
    return hu.astype(np.float32), lesion.astype(np.uint8)


FIXTURE = Path(__file__).parent / "fixtures" / "tiny_lightunet"
