"""Real scans as a parity input set: every DICOM series / NIfTI scan under a path.

``load_set`` sends a folder or a DICOM/NIfTI file here; the slices are cut to the model grid as
``lightseg predict`` does (:mod:`lightseg.data.scans`). Without masks ``masks`` is None and the
Dice-vs-ground-truth gates are absent.
"""

from __future__ import annotations

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.scans import describe, find_scans, label, scan_slices


def load_scans(data: str, pre: Preprocessing, n: int | None = None):
    """(inputs, masks or None, label, record) of every scan under ``data`` (first ``n``)."""
    items = find_scans(data)
    parts = [scan_slices(i, pre) for i in items]
    x, m = stack(parts)
    record = describe(data, items, parts)
    return x[:n], None if m is None else m[:n], label(record), record


def stack(parts) -> tuple[np.ndarray, np.ndarray | None]:
    """The scans' inputs in order, and their masks (None unless every scan has one)."""
    x = np.concatenate([p.x for p in parts])
    if any(p.masks is None for p in parts):
        return x, None
    return x, np.concatenate([p.masks for p in parts])
