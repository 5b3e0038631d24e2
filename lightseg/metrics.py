"""Segmentation metrics, one implementation used by training, eval and the parity harness."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two binary masks; both empty counts as 1."""
    p, r = pred.astype(bool), ref.astype(bool)
    s = p.sum() + r.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(p, r).sum() / s)


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union; both empty counts as 1."""
    p, r = pred.astype(bool), ref.astype(bool)
    u = np.logical_or(p, r).sum()
    return 1.0 if u == 0 else float(np.logical_and(p, r).sum() / u)


def pixel_accuracy(pred: np.ndarray, ref: np.ndarray) -> float:
    return float((pred.astype(bool) == ref.astype(bool)).mean())


def lesions_detected(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int]:
    """(reference lesions touched by the prediction, reference lesions) via connected components."""
    labels, n = ndimage.label(ref.astype(bool))
    if n == 0:
        return 0, 0
    hit = np.unique(labels[pred.astype(bool) & (labels > 0)])
    return int(hit.size), int(n)


def case_metrics(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Per-slice metrics for a predicted and a reference lesion mask (H x W)."""
    found, total = lesions_detected(pred, ref)
    return {
        "has_lesion": bool(ref.any()),
        "dice": dice(pred, ref),
        "iou": iou(pred, ref),
        "pixel_accuracy": pixel_accuracy(pred, ref),
        "lesions": total,
        "lesions_found": found,
        "false_positive_pixels": int(np.logical_and(pred.astype(bool), ~ref.astype(bool)).sum()),
        "predicted_pixels": int(pred.astype(bool).sum()),
    }


def summarize(cases: list[dict]) -> dict:
    """Aggregate per-case metrics: lesion Dice over lesion slices (mean, 95% CI), FP rate, ..."""
    les = [c for c in cases if c["has_lesion"]]
    free = [c for c in cases if not c["has_lesion"]]
    d = np.array([c["dice"] for c in les]) if les else np.array([])
    out = {
        "n_cases": len(cases),
        "n_lesion_cases": len(les),
        "n_lesion_free_cases": len(free),
        "lesion_dice": float(d.mean()) if d.size else float("nan"),
        "lesion_dice_ci95": _ci95(d),
        "lesion_iou": float(np.mean([c["iou"] for c in les])) if les else float("nan"),
        "pixel_accuracy": float(np.mean([c["pixel_accuracy"] for c in cases])) if cases else 0.0,
        "lesion_detection_rate": (
            sum(c["lesions_found"] for c in les) / max(1, sum(c["lesions"] for c in les))
        ),
        # share of lesion-free slices where any lesion pixel is predicted
        "false_positive_slice_rate": (
            float(np.mean([c["predicted_pixels"] > 0 for c in free])) if free else float("nan")
        ),
    }
    return out


def _ci95(x: np.ndarray) -> list[float]:
    """Normal-approximation 95% confidence interval of the mean."""
    if x.size < 2:
        return [float("nan"), float("nan")]
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    return [float(x.mean() - half), float(x.mean() + half)]
