"""Montage pictures of slices with the lesion mask overlaid (for data cards and `data show`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing


def overlay(hu: np.ndarray, mask: np.ndarray, pre: Preprocessing | None = None) -> np.ndarray:
    """uint8 RGB picture of a windowed HU slice: lesion tinted red with a yellow outline."""
    from scipy.ndimage import binary_erosion

    g = (pre or Preprocessing()).window(hu)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    m = np.asarray(mask) > 0
    if m.any():
        rgb[m] = 0.65 * rgb[m] + 0.35 * np.array([1.0, 0.0, 0.0], np.float32)
        edge = m & ~binary_erosion(m)
        rgb[edge] = [1.0, 1.0, 0.0]
    return (rgb * 255 + 0.5).astype(np.uint8)


def montage(
    pairs: list[tuple[np.ndarray, np.ndarray]], cols: int = 4, tile: int | None = None
) -> np.ndarray:
    """Grid of overlays (uint8 RGB); tiles are resized to ``tile`` px when given."""
    from PIL import Image

    tiles = []
    for hu, mask in pairs:
        im = overlay(hu, mask)
        if tile and im.shape[:2] != (tile, tile):
            im = np.asarray(Image.fromarray(im).resize((tile, tile), Image.BILINEAR))
        tiles.append(im)
    if not tiles:
        return np.zeros((8, 8, 3), np.uint8)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    out = np.zeros((rows * h, min(cols, len(tiles)) * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h : r * h + t.shape[0], c * w : c * w + t.shape[1]] = t
    return out


def save_png(img: np.ndarray, path: str | Path, colors: int | None = None) -> Path:
    """Write a PNG atomically; ``colors`` quantises to a palette to keep the file small."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img)
    if colors:
        im = im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        im.save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def phantom_card(path: str | Path, size: int = 256, tile: int = 200) -> Path:
    """The data-card montage: one slice per lesion kind, then lesion-free slices."""
    from lightseg.data.phantom import LESION_KINDS, PhantomConfig, synth_slices

    pairs = []
    for i, kind in enumerate(LESION_KINDS):
        cfg = PhantomConfig(lesion_kinds=(kind,), calcification_probability=1.0)
        s = synth_slices(8, 100 + i, size=size, config=cfg)
        best = max(s, key=lambda x: int(x.mask.sum()))
        pairs.append((best.hu, best.mask))
    pairs += [(s.hu, s.mask) for s in synth_slices(64, 5, size=size, lesion=False)[::16]]
    return save_png(montage(pairs, cols=4, tile=tile), path, colors=128)
