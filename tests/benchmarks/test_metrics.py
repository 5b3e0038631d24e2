"""Metrics equal hand-computed values on crafted masks."""

import numpy as np
import pytest

from lightseg.benchmarks.latency import LatencyStats
from lightseg.judge import metrics as M
from lightseg.judge.verdict import compare, load_tolerances


def square(n=16, y0=4, x0=4, s=6):
    m = np.zeros((n, n), np.int64)
    m[y0 : y0 + s, x0 : x0 + s] = 1
    return m


def test_dice_iou_empty_and_partial():
    empty = np.zeros((8, 8), np.int64)
    assert M.dice(empty, empty) == 1.0 and M.iou(empty, empty) == 1.0
    assert M.dice(square(8, 1, 1, 2), empty) == 0.0
    a, b = square(16, 4, 4, 6), square(16, 4, 7, 6)  # 36 px each, overlap 6 x 3 = 18
    assert M.dice(a, b) == pytest.approx(2 * 18 / 72)
    assert M.iou(a, b) == pytest.approx(18 / 54)


def test_hd95_shifted_square_and_empty():
    a, b = square(16, 4, 4, 6), square(16, 4, 6, 6)  # shifted 2 px right
    d = M.hd95(a, b)
    assert 1.0 <= d <= 2.0
    assert M.hd95(a, a) == 0.0
    empty = np.zeros_like(a)
    assert M.hd95(empty, empty) == 0.0
    assert M.hd95(a, empty) == pytest.approx(np.hypot(16, 16))


def test_confident_flips_respect_band_and_boundary():
    ref = square(16, 4, 4, 6)
    prob = np.stack([1.0 - ref * 0.95, ref * 0.95]).astype(np.float64)  # p=0.95 / 0.05
    cand = ref.copy()
    cand[4, 4] = 0  # on the boundary: tolerated
    cand[14, 14] = 1  # far from it, confident: a defect
    cand[0, 0] = 1  # far, but the reference was uncertain there
    prob[:, 0, 0] = [0.55, 0.45]
    conf = M.confident_flips(ref, cand, prob, band=0.1, k=1.0)
    assert conf.sum() == 1 and conf[14, 14]
    mm = M.mask_metrics(ref, cand, prob, 0.1, 1.0)
    assert mm["flips"] == 3 and mm["confident_flips"] == 1
    assert mm["component_diff"] == 2  # two isolated new pixels
    assert mm["volume_diff"] == pytest.approx(1 / 36)


def test_prob_errors_known_values():
    a = np.zeros((1, 2, 4, 4))
    b = a.copy()
    b[0, 0, 0, 0] = 0.1
    e = M.prob_errors(a + 0.5, b + 0.5)
    assert e["prob_abs_max"] == pytest.approx(0.1)
    assert e["psnr_db"] == pytest.approx(10 * np.log10(1 / (0.01 / 32)))
    assert M.prob_errors(a + 0.5, a + 0.5)["psnr_db"] == M.PSNR_CAP


def test_compare_structure_and_gates():
    tol = load_tolerances()
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 2, 16, 16)).astype(np.float32) * 4
    assert compare(ref, ref.copy(), None, tol).status == "pass"
    nan = ref.copy()
    nan[0, 0, 0, 0] = np.nan
    v = compare(ref, nan, None, tol)
    assert v.status == "fail" and "NaN" in v.message
    assert compare(ref, ref[:, :, :8], None, tol).failures()[0].metric == "structure"
    v = compare(ref, ref + np.float32(1e-2), None, tol, precision="fp32")
    assert v.status == "pass"  # a constant logit shift leaves softmax unchanged
    bad = ref.copy()
    bad[:, 1] += 3
    v = compare(ref, bad, None, tol, precision="fp16")
    assert v.status == "fail" and v.failures()[0].metric == "prob_abs_max"


def test_gt_dice_ratio():
    tol = load_tolerances()
    gt = np.stack([square(16), square(16)])
    ref = np.stack([1 - gt, gt], 1).astype(np.float32) * 8
    worse = ref.copy()
    worse[0, :, 4, 4:10] = [[8], [0]]  # drop a row of the first lesion: Dice 60/66
    v = compare(ref, worse, gt, tol, precision="int8")
    assert v.metrics["gt_dice_ref"] == 1.0
    assert v.metrics["gt_dice"] == pytest.approx((1 + 60 / 66) / 2)
    ratio = next(c for c in v.checks if c.metric == "gt_dice_ratio")
    assert ratio.status == "undecided"  # two slices: the interval reaches above 0.995
    assert ratio.ci[0] < ratio.value < 0.995 < ratio.ci[1]
    # the same loss on every one of 8 slices: the interval is a point below the limit
    v = compare(np.repeat(ref[:1], 8, 0), np.repeat(worse[:1], 8, 0), np.repeat(gt[:1], 8, 0), tol,
                precision="int8")  # fmt: skip
    ratio = next(c for c in v.checks if c.metric == "gt_dice_ratio")
    assert ratio.status == "fail" and ratio.ci == pytest.approx((60 / 66, 60 / 66))


def test_latency_stats_from_known_samples():
    s = LatencyStats("x", samples_ms=[float(v) for v in range(1, 101)]).fill()
    assert (s.min, s.max, s.mean) == (1.0, 100.0, 50.5)
    assert s.p50 == pytest.approx(50.5) and s.p90 == pytest.approx(90.1)
    assert s.p99 == pytest.approx(99.01)
    assert s.cv == pytest.approx(np.std(np.arange(1, 101)) / 50.5)
