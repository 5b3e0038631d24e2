"""Synthetic reference logits with soft boundaries, and seeded perturbations of them."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SIZE = 64


def disc(r: float, cy: float = 32, cx: float = 32, size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.int64)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """+d inside, -d outside (px): the boundary rings are at +-1."""
    m = mask.astype(bool)
    return ndimage.distance_transform_edt(m) - ndimage.distance_transform_edt(~m)


def logits(masks: np.ndarray) -> np.ndarray:
    """Two-class logits whose confidence grows with the distance to the boundary."""
    sd = np.stack([signed_distance(m) for m in masks])
    return np.stack([-sd / 2, sd / 2], 1).astype(np.float32)


def flip_ring(ref: np.ndarray, masks: np.ndarray, fractions, seed: int) -> np.ndarray:
    """A candidate: in slice i, ``fractions[i]`` of the pixels on the two boundary rings
    (|signed distance| = 1, within 1 px of the boundary) change class."""
    rng = np.random.default_rng(seed)
    out = ref.copy()
    for i, f in enumerate(fractions):
        ring = np.flatnonzero(np.abs(signed_distance(masks[i])) == 1)
        pick = rng.choice(ring, int(round(f * ring.size)), replace=False)
        yy, xx = np.unravel_index(pick, masks[i].shape)
        out[i, :, yy, xx] = out[i, ::-1, yy, xx]
    return out
