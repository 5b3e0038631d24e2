"""The demo overlay, pixel for pixel what android_demo's Overlay.java and the web demo draw.

Grey g = floor(v * 255 + 0.5) of the windowed slice in [0, 1]; a pixel of class m > 0 is blended
with PALETTE[m]: channel = (g * (255 - A) + colour * A + 127) // 255, integers only.
"""

from __future__ import annotations

import numpy as np

#: RGB per class; class 0 (background) is never blended, class 1 (lesion) is red.
PALETTE = (0x000000, 0xFF3030, 0x30FF30, 0x3080FF, 0xFFD030)
ALPHA = 128


def overlay_argb(grey: np.ndarray, mask: np.ndarray, alpha: int = ALPHA) -> np.ndarray:
    """Opaque ARGB uint32 pixels of ``grey`` (H x W in [0, 1]) with ``mask`` (H x W labels)."""
    v = np.clip(np.asarray(grey, np.float32), 0, 1)
    g = np.floor(v * np.float32(255) + np.float32(0.5)).astype(np.int64)
    m = np.asarray(mask).astype(np.int64).reshape(g.shape)
    pal = np.array(PALETTE, np.int64)
    col = np.where(m > 0, pal[1 + (np.maximum(m, 1) - 1) % (len(PALETTE) - 1)], 0)
    out = np.zeros(g.shape, np.int64)
    for shift in (16, 8, 0):
        c = (col >> shift) & 0xFF
        ch = np.where(m > 0, (g * (255 - alpha) + c * alpha + 127) // 255, g)
        out |= ch << shift
    return (out | 0xFF000000).astype(np.uint32)


def overlay_rgb(grey: np.ndarray, mask: np.ndarray, alpha: int = ALPHA) -> np.ndarray:
    """The overlay as an H x W x 3 uint8 image (for PNG previews)."""
    argb = overlay_argb(grey, mask, alpha)
    return np.stack([(argb >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(np.uint8)
