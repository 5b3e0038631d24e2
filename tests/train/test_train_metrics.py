"""Metrics equal hand-computed values on crafted masks."""

import numpy as np
import pytest

from lightseg.metrics import case_metrics, dice, iou, lesions_detected, summarize


def test_both_empty_is_perfect():
    z = np.zeros((8, 8), np.uint8)
    assert dice(z, z) == 1.0 and iou(z, z) == 1.0


def test_one_empty_is_zero():
    a = np.zeros((8, 8), np.uint8)
    b = a.copy()
    b[2:4, 2:4] = 1
    assert dice(a, b) == 0.0 and iou(b, a) == 0.0


def test_partial_overlap():
    a = np.zeros((10, 10), np.uint8)
    b = np.zeros((10, 10), np.uint8)
    a[0:4, 0:4] = 1  # 16 px
    b[2:6, 0:4] = 1  # 16 px, overlap 8
    assert dice(a, b) == pytest.approx(2 * 8 / 32)
    assert iou(a, b) == pytest.approx(8 / 24)
    m = case_metrics(a, b)
    assert m["pixel_accuracy"] == pytest.approx(1 - 16 / 100)
    assert m["false_positive_pixels"] == 8


def test_lesion_detection_counts_components():
    ref = np.zeros((20, 20), np.uint8)
    ref[1:4, 1:4] = 1
    ref[10:14, 10:14] = 1
    pred = np.zeros_like(ref)
    pred[11, 11] = 1
    assert lesions_detected(pred, ref) == (1, 2)


def test_summary_fp_rate_and_ci():
    les = np.zeros((8, 8), np.uint8)
    les[2:5, 2:5] = 1
    free = np.zeros((8, 8), np.uint8)
    fp = free.copy()
    fp[0, 0] = 1
    half = les.copy()
    half[2:5, 2:4] = 0  # 3 of 9 px predicted -> dice 0.5
    cases = [case_metrics(les, les), case_metrics(half, les), case_metrics(fp, free),
             case_metrics(free, free)]  # fmt: skip
    s = summarize(cases)
    assert s["lesion_dice"] == pytest.approx(0.75)
    assert s["false_positive_slice_rate"] == 0.5
    lo, hi = s["lesion_dice_ci95"]
    assert lo < 0.75 < hi


def test_loss_of_a_lesion_free_batch_is_cross_entropy_alone():
    import torch
    import torch.nn.functional as F

    from lightseg.train import loss_fn

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 64, 64, generator=g)
    empty = torch.zeros(2, 64, 64, dtype=torch.long)
    assert loss_fn(logits, empty).item() == F.cross_entropy(logits, empty).item()
    # with a lesion pixel the soft Dice term is back, and it is large for random logits
    one = empty.clone()
    one[0, 10, 10] = 1
    assert loss_fn(logits, one).item() > F.cross_entropy(logits, one).item() + 0.9
