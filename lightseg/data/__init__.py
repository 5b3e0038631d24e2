"""Breast-CT data: preprocessing, synthetic phantoms, readers for real data."""

from __future__ import annotations

import numpy as np

from lightseg.data.phantom import PhantomConfig, Slice, synth_slices
from lightseg.data.preprocessing import Preprocessing

__all__ = ["PhantomConfig", "Preprocessing", "Slice", "lesion_inputs", "synth_slices"]


def lesion_inputs(pre: Preprocessing, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n phantom slices that contain lesions, preprocessed: (float32 [n,C,S,S], int64 [n,S,S]).

    At most two slices come from one patient volume, so the set spans many lesions.
    """
    slices = synth_slices(
        n, seed, size=pre.size, lesion=True, config=PhantomConfig(slices_per_volume=2)
    )
    x = np.stack([pre(s.hu) for s in slices]).astype(np.float32)
    y = np.stack([pre.mask(s.mask) for s in slices]).astype(np.int64)
    return x, y
