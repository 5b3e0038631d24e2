"""One dataset abstraction yielding (image float32 C x H x W, mask int64 H x W)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg.data.phantom import PhantomConfig, synth_slices
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError


def _folder_pairs(
    path: Path, n: int, seed: int, lesion_fraction: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Slices of every volume in a folder; with n > 0, n of them drawn with ``lesion_fraction``
    lesion slices where the data allows."""
    from lightseg.data.readers import read_folder

    pairs = [p for v in read_folder(path) for p in v.slices()]
    if not pairs:
        raise LightsegError(f"{path}: no slices")
    if n <= 0 or n >= len(pairs):
        return pairs
    rng = np.random.default_rng(seed)
    les = [i for i, (_, m) in enumerate(pairs) if m.any()]
    bg = [i for i, (_, m) in enumerate(pairs) if not m.any()]
    k = min(len(les), int(round(n * lesion_fraction)))
    k = max(k, n - len(bg))
    idx = list(rng.choice(les, k, replace=False)) + list(rng.choice(bg, n - k, replace=False))
    return [pairs[i] for i in sorted(idx)]


def _rng() -> np.random.Generator:
    """A generator seeded from torch, so DataLoader workers augment differently."""
    import torch

    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))


class SliceDataset:
    """Preprocessed slices held in memory (windowed, single channel, ``pre.size`` square)."""

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        pre: Preprocessing,
        augment: bool = False,
        crop: int | None = None,
    ) -> None:
        if crop is not None and not 0 < crop <= pre.size:
            raise LightsegError(f"data: crop must be in 1..{pre.size}, got {crop}")
        self.images, self.masks, self.pre = images, masks, pre
        self.augment, self.crop = augment, crop

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        import torch

        img, mask = self.images[i], self.masks[i]
        rng = _rng() if (self.augment or self.crop) else None
        if self.augment:
            img, mask = augment_pair(img, mask, rng)
        if self.crop:
            img, mask = lesion_crop(img, mask, self.crop, rng)
        x = np.repeat(np.ascontiguousarray(img, np.float32)[None], self.pre.channels, axis=0)
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(mask, np.int64))


def augment_pair(
    img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, max_deg: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Flips, a small rotation and intensity jitter (windowed image in [0, 1])."""
    from scipy.ndimage import rotate

    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        img, mask = img[::-1], mask[::-1]
    angle = float(rng.uniform(-max_deg, max_deg))
    rmask = rotate(mask, angle, reshape=False, order=0, mode="constant", cval=0)
    if rmask.any() or not mask.any():  # a tiny lesion must not vanish: then skip the rotation
        img = rotate(img, angle, reshape=False, order=1, mode="constant", cval=0.0)
        mask = rmask
    img = img * rng.uniform(0.95, 1.05) + rng.uniform(-0.03, 0.03)
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def lesion_crop(
    img: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random crop x crop window; when the slice has a lesion the window holds a lesion pixel."""
    h, w = mask.shape
    pts = np.argwhere(mask > 0)
    if len(pts):
        cy, cx = pts[rng.integers(len(pts))]
        y0 = int(rng.integers(max(0, cy - crop + 1), min(cy, h - crop) + 1))
        x0 = int(rng.integers(max(0, cx - crop + 1), min(cx, w - crop) + 1))
    else:
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return img[y0 : y0 + crop, x0 : x0 + crop], mask[y0 : y0 + crop, x0 : x0 + crop]


def build_dataset(
    source: str,
    pre: Preprocessing,
    n: int,
    seed: int,
    augment: bool = False,
    lesion_fraction: float = 0.7,
    crop: int | None = None,
    per_volume: int = 16,
):
    """Dataset of (image float32 C x H x W, mask int64 H x W) items.

    ``source`` is "synth" (``n`` phantom slices, ``lesion_fraction`` of them with a lesion) or a
    dataset folder read by ``lightseg.data.readers.read_folder`` (n <= 0 takes every slice).
    ``crop`` gives random crop x crop windows biased to contain the lesion (fast CPU training).
    ``per_volume``: at most this many phantom slices per 3D patient volume (16 is fast for
    training; use 2 for validation and evaluation sets that span many patients).
    Returns a torch-compatible map-style dataset.
    """
    if not 0.0 <= lesion_fraction <= 1.0:
        raise LightsegError(f"data: lesion_fraction must be in [0, 1], got {lesion_fraction}")
    if source == "synth":
        if n < 1:
            raise LightsegError(f"data: n must be >= 1 for synthetic data, got {n}")
        n_les = int(round(n * lesion_fraction))
        cfg = PhantomConfig(slices_per_volume=per_volume)
        slices = synth_slices(n_les, seed, size=pre.size, lesion=True, config=cfg)
        slices += synth_slices(n - n_les, seed + 1_000_003, size=pre.size, lesion=False, config=cfg)
        pairs = [(s.hu, s.mask) for s in slices]
    else:
        pairs = _folder_pairs(Path(source), n, seed, lesion_fraction)
    images = np.stack([pre.fit_2d(pre.window(hu)) for hu, _ in pairs]).astype(np.float32)
    masks = np.stack([pre.mask(m) for _, m in pairs]).astype(np.int64)
    return SliceDataset(images, masks, pre, augment=augment, crop=crop)
