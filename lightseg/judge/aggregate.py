"""Per-slice parity metrics -> the aggregates the gates read, each mean with its interval.

Slices whose reference lesion is smaller than ``small_lesion_px`` are kept apart: one ring of
boundary pixels moves their Dice by ~25%, so their Dice is reported but judged by boundary
distance and pooled volume instead; the Dice gates read the other ("large") slices only.
"""

from __future__ import annotations

import numpy as np

from lightseg.judge.stats import mean_interval, ratio_interval

UNIT = (0.0, 1.0)


def _small(per_image: list[dict]) -> dict:
    small = [r for r in per_image if r["small"]]
    out: dict = {"small_slices": len(small)}
    if small:
        ref = sum(r["ref_pixels"] for r in small)
        cand = sum(r["cand_pixels"] for r in small)
        out["small_boundary_max"] = max(r["boundary_max"] for r in small)
        out["small_volume_bias"] = abs(cand - ref) / max(ref, 1)
        out["small_dice_min"] = min(r["dice"] for r in small)
    return out


def _large(per_image: list[dict], level: float) -> tuple[dict, dict]:
    dice = [r["dice"] for r in per_image if not r["small"]]
    if not dice:
        return {"large_slices": 0}, {}
    m = {"large_slices": len(dice), "large_dice_mean": float(np.mean(dice))}
    m["large_dice_min"] = min(dice)
    return m, {"large_dice_mean": mean_interval(dice, level, UNIT)}


def _task(per_image: list[dict], level: float) -> tuple[dict, dict]:
    """Dice vs ground truth, candidate against the reference on the same slices (paired)."""
    ref = np.array([r["gt_dice_ref"] for r in per_image])
    cand = np.array([r["gt_dice"] for r in per_image])
    m = {
        "gt_dice_ref": float(ref.mean()),
        "gt_dice": float(cand.mean()),
        "gt_dice_diff": float((cand - ref).mean()),
    }
    ci = {"gt_dice_diff": mean_interval(cand - ref, level)}
    if ref.mean() == 0:  # the reference finds nothing: nothing to lose
        m["gt_dice_ratio"], ci["gt_dice_ratio"] = 1.0, (1.0, 1.0)
    else:
        m["gt_dice_ratio"] = float(cand.mean() / ref.mean())
        ci["gt_dice_ratio"] = ratio_interval(cand, ref, level)
    return m, ci


def aggregates(per_image: list[dict], pixels: int, level: float) -> tuple[dict, dict]:
    """(metrics, intervals) over slices; ``pixels`` per slice; ``level`` e.g. 0.95."""
    dice = [r["dice"] for r in per_image]
    flip = [r["flips"] / pixels for r in per_image]
    n_pix = pixels * len(per_image)
    m = {
        "slices": len(per_image),
        "ref_lesion_pixels": int(sum(r["ref_pixels"] for r in per_image)),
        "dice_ref_min": min(dice),
        "dice_ref_mean": float(np.mean(dice)),
        "iou_ref_min": min(r["iou"] for r in per_image),
        "flip_rate": float(np.mean(flip)),
        "confident_flip_rate": sum(r["confident_flips"] for r in per_image) / n_pix,
        "confident_flips": sum(r["confident_flips"] for r in per_image),
        "hd95_max": max(r["hd95"] for r in per_image),
        "component_diff_max": max(r["component_diff"] for r in per_image),
        "volume_diff_max": max(r["volume_diff"] for r in per_image),
    }
    ci = {
        "dice_ref_mean": mean_interval(dice, level, UNIT),
        "flip_rate": mean_interval(flip, level, UNIT),
    }
    large, large_ci = _large(per_image, level)
    m |= large | _small(per_image)
    ci |= large_ci
    if per_image and "gt_dice" in per_image[0]:
        task, task_ci = _task(per_image, level)
        m |= task
        ci |= task_ci
    return m, ci
