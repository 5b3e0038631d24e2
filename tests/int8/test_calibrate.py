"""The MSE range search: clips outliers, keeps a range without them, always contains zero."""

from __future__ import annotations

import numpy as np

from lightseg.export.calibrate import mse_range


def _hist(values: np.ndarray, bins: int = 2048):
    lo, hi = min(values.min(), 0.0), max(values.max(), 0.0)
    return np.histogram(values, bins=bins, range=(lo, hi))


def _qdq_mse(values: np.ndarray, lo: float, hi: float) -> float:
    step = (hi - lo) / 255
    q = np.clip(np.round((values - lo) / step), 0, 255) * step + lo
    return float(np.mean((q - values) ** 2))


def test_a_heavy_tail_is_clipped_below_the_max_for_less_error():
    values = np.random.default_rng(0).standard_t(3, 200_000)  # outliers in both tails
    lo, hi = mse_range(*_hist(values))
    assert values.min() < lo < 0.0 < hi < values.max()
    assert hi < 0.8 * values.max() and lo > 0.8 * values.min()
    minmax = _qdq_mse(values, values.min(), values.max())
    assert _qdq_mse(values, lo, hi) < 0.8 * minmax


def test_a_range_without_outliers_is_kept_nearly_whole():
    values = np.random.default_rng(1).uniform(-1.0, 3.0, 200_000)
    lo, hi = mse_range(*_hist(values))
    assert hi > 0.97 * 3.0 and lo < 0.97 * -1.0


def test_a_silu_like_tail_clips_only_the_top():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.exponential(0.5, 200_000), rng.pareto(2.5, 2000) * 2])
    lo, hi = mse_range(*_hist(values))
    assert lo == 0.0 and hi < 0.9 * values.max()
    assert _qdq_mse(values, lo, hi) < 0.9 * _qdq_mse(values, 0.0, values.max())


def test_an_empty_or_constant_histogram_gives_its_edges():
    edges = np.linspace(0.0, 1.0, 9)
    assert mse_range(np.zeros(8, np.int64), edges) == (0.0, 1.0)
