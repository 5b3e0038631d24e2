"""Inputs for parity and latency: a named input set (lightseg.data.sets) or a user's .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.scans import is_scan_data
from lightseg.data.sets import SETS, input_set
from lightseg.errors import LightsegError


def _checked_masks(path: Path, m, x: np.ndarray) -> np.ndarray | None:
    """Masks as int64 labels, one S x S mask per image, or a one-line error."""
    if m is None:
        return None
    m = np.asarray(m)
    want = (len(x), *x.shape[2:])
    if m.shape != want:
        raise LightsegError(f"--data {path}: masks shape {m.shape}, expected {want}")
    if not np.issubdtype(m.dtype, np.number) or np.any(~np.isfinite(m)) or np.any(m < 0):
        raise LightsegError(f"--data {path}: masks must hold non-negative class labels")
    if np.any(m != np.round(m)):
        raise LightsegError(f"--data {path}: masks must hold whole class labels, not fractions")
    return m.astype(np.int64)


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
    if not np.issubdtype(x.dtype, np.number):
        raise LightsegError(f"--data {path}: images must be numbers, got {x.dtype}")
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        raise LightsegError(f"--data {path}: images hold {bad} NaN/Inf values")
    masks = _checked_masks(path, m, x)
    x = np.ascontiguousarray(x[:n], np.float32)
    return x, (None if masks is None else masks[:n]), f"{path.name} (n={len(x)})"


def load_set(data: str, pre: Preprocessing, n: int | None = None):
    """(inputs, masks or None, label, record): ``record`` is what a report keeps about the set
    (a named set's :meth:`~lightseg.data.sets.InputSet.describe`; a file's name and size)."""
    if n is not None and n < 1:
        raise LightsegError(f"--n must be at least 1, got {n}")
    name = "verification" if data == "synth" else data
    if name in SETS:
        s = input_set(name, pre, n)
        return s.x, s.masks, s.label(), s.describe()
    if is_scan_data(data):
        from lightseg.benchmarks.realdata import load_scans

        return load_scans(data, pre, n)
    x, m, label = from_file(Path(data), pre, n or 1 << 30)
    return x, m, label, {"name": Path(data).name, "seed": None, "n": len(x), "source": "file"}


def is_named_set(data: str) -> bool:
    """Whether ``data`` names a seeded set that can be drawn larger (``--n auto``)."""
    return data == "synth" or data in SETS


def load_inputs(data: str, pre: Preprocessing, n: int | None = None):
    """A named input set (``verification`` = ``synth``, ``evaluation``) or an .npz path.

    Returns (inputs, masks or None, description). ``n`` defaults to the set's own size, so
    ``lightseg parity`` judges on exactly the slices export verification used.
    """
    return load_set(data, pre, n)[:3]
