"""Inputs for parity and latency: phantom slices with lesions, or a user's .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError


def _discs(pre: Preprocessing, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs on soft tissue with their masks: easy data for tiny test models."""
    rng = np.random.default_rng(seed)
    s = pre.size
    yy, xx = np.mgrid[:s, :s]
    images, masks = [], []
    for _ in range(n):
        hu = rng.normal(-100.0, 30.0, (s, s))
        m = np.zeros((s, s), np.int64)
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(0.25 * s, 0.75 * s, 2)
            r = rng.uniform(0.06 * s, 0.15 * s)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            hu[disc] += 180.0
            m[disc] = 1
        images.append(pre(hu))
        masks.append(m)
    return np.stack(images).astype(np.float32), np.stack(masks)


def synth(pre: Preprocessing, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` preprocessed phantom slices with lesions, their masks, and where they came from."""
    from lightseg.data import lesion_inputs

    x, m = lesion_inputs(pre, n, seed)
    return np.ascontiguousarray(x, np.float32), np.asarray(m), f"phantom lesions (n={n})"


def from_file(path: Path, pre: Preprocessing, n: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A .npz with ``images`` (float32 N x C x S x S, preprocessed) and optional ``masks``."""
    if not path.is_file():
        raise LightsegError(f"--data {path}: no such file (use synth or an .npz)")
    try:
        with np.load(path) as z:
            x = z["images"]
            m = z.get("masks")
    except (OSError, ValueError, KeyError) as e:
        raise LightsegError(f"--data {path}: needs an .npz with 'images' ({e})") from None
    want = (pre.channels, pre.size, pre.size)
    if x.ndim != 4 or x.shape[1:] != want:
        raise LightsegError(f"--data {path}: images shape {x.shape}, expected N x {want}")
    x = np.ascontiguousarray(x[:n], np.float32)
    return x, (None if m is None else np.asarray(m[:n])), f"{path.name} (n={len(x)})"


def load_inputs(data: str, pre: Preprocessing, n: int):
    """``synth`` or a path to an .npz -> (inputs, masks or None, description)."""
    if n < 1:
        raise LightsegError(f"--n must be at least 1, got {n}")
    if data == "synth":
        return synth(pre, n)
    return from_file(Path(data), pre, n)
