"""Parity metrics on logits, probabilities and masks: one implementation for every backend.

Masks are ``argmax`` over classes; "foreground" is every class > 0. Conventions: Dice/IoU of
two empty masks is 1; HD95 of two empty masks is 0 and of one empty mask is the image diagonal;
PSNR of identical probabilities is capped at ``PSNR_CAP`` dB.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lightseg.metrics import dice, iou

PSNR_CAP = 200.0


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    z = logits.astype(np.float64) - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def structure_errors(ref: np.ndarray, cand: np.ndarray) -> list[str]:
    """Shape, dtype and finiteness problems of ``cand`` against ``ref`` (empty = fine)."""
    errors = []
    if cand.dtype != np.float32:
        errors.append(f"dtype {cand.dtype} != float32")
    if cand.shape != ref.shape:
        errors.append(f"shape {tuple(cand.shape)} != reference {tuple(ref.shape)}")
    bad = int(np.size(cand) - np.isfinite(cand).sum()) if np.size(cand) else 0
    if bad:
        errors.append(f"{bad} NaN/Inf values")
    return errors


def prob_errors(p_ref: np.ndarray, p_cand: np.ndarray) -> dict:
    """Max and p99 absolute error, PSNR (peak 1) and cosine similarity of probabilities."""
    d = np.abs(p_ref - p_cand).ravel()
    mse = float(np.mean(d**2))
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(1.0 / mse))
    a, b = p_ref.ravel(), p_cand.ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
    return {
        "prob_abs_max": float(d.max()),
        "prob_abs_p99": float(np.quantile(d, 0.99)),
        "psnr_db": float(psnr),
        "cosine": cos,
    }


def boundary_distance(labels: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest pixel whose 3x3 neighbourhood changes label."""
    edge = ndimage.grey_dilation(labels, size=3) != ndimage.grey_erosion(labels, size=3)
    if not edge.any():
        return np.full(labels.shape, np.inf)
    return ndimage.distance_transform_edt(~edge)


def confident_flips(
    ref_labels: np.ndarray, cand_labels: np.ndarray, ref_prob: np.ndarray, band: float, k: float
) -> np.ndarray:
    """Flipped pixels where the reference was confident (top-2 margin/2 > band) AND more than
    ``k`` px from the reference boundary. ``ref_prob`` is K x H x W."""
    top = np.sort(ref_prob, axis=0)
    margin = (top[-1] - top[-2]) / 2  # |p - 0.5| for two classes
    flips = ref_labels != cand_labels
    return flips & (margin > band) & (boundary_distance(ref_labels) > k)


def _surface(m: np.ndarray) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m, border_value=0)


def hd95(a: np.ndarray, b: np.ndarray) -> float:
    """95th percentile symmetric surface distance (px) between two foreground masks."""
    a, b = a > 0, b > 0
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float(np.hypot(*a.shape))
    sa, sb = _surface(a), _surface(b)
    d_ab = ndimage.distance_transform_edt(~sb)[sa]
    d_ba = ndimage.distance_transform_edt(~sa)[sb]
    return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))


def boundary_max(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance (px, chessboard: one ring of 8-neighbours is 1 px) between the boundaries
    of two foreground masks, both ways (Hausdorff). Both empty: 0; one empty: the image size."""
    a, b = a > 0, b > 0
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float(max(a.shape))
    sa, sb = _surface(a), _surface(b)
    d_ab = ndimage.distance_transform_cdt(~sb, metric="chessboard")[sa]
    d_ba = ndimage.distance_transform_cdt(~sa, metric="chessboard")[sb]
    return float(max(d_ab.max(), d_ba.max()))


def components(m: np.ndarray) -> int:
    """Number of 8-connected foreground components."""
    return int(ndimage.label(m > 0, structure=np.ones((3, 3)))[1])


def mask_metrics(
    ref_labels: np.ndarray, cand_labels: np.ndarray, ref_prob: np.ndarray, band: float, k: float
) -> dict:
    """Per-image mask agreement of a candidate with the reference (H x W labels)."""
    flips = ref_labels != cand_labels
    conf = confident_flips(ref_labels, cand_labels, ref_prob, band, k)
    vol_ref, vol_cand = int((ref_labels > 0).sum()), int((cand_labels > 0).sum())
    return {
        "dice": dice(ref_labels, cand_labels),
        "iou": iou(ref_labels, cand_labels),
        "flips": int(flips.sum()),
        "confident_flips": int(conf.sum()),
        "hd95": hd95(ref_labels, cand_labels),
        "boundary_max": boundary_max(ref_labels, cand_labels),
        "ref_pixels": vol_ref,
        "cand_pixels": vol_cand,
        "component_diff": abs(components(ref_labels) - components(cand_labels)),
        "volume_diff": abs(vol_cand - vol_ref) / max(vol_ref, 1),
    }
