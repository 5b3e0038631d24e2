"""Inputs for parity and latency: a named input set (lightseg.data.sets) or a user's .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import SETS, input_set
from lightseg.errors import LightsegError


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


def load_inputs(data: str, pre: Preprocessing, n: int | None = None):
    """A named input set (``verification`` = ``synth``, ``evaluation``) or an .npz path.

    Returns (inputs, masks or None, description). ``n`` defaults to the set's own size, so
    ``lightseg parity`` judges on exactly the slices export verification used.
    """
    if n is not None and n < 1:
        raise LightsegError(f"--n must be at least 1, got {n}")
    name = "verification" if data == "synth" else data
    if name in SETS:
        s = input_set(name, pre, n)
        return s.x, s.masks, s.label()
    return from_file(Path(data), pre, n or 1 << 30)
