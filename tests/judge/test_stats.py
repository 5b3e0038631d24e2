"""Intervals and the decision rule against hand-computed values."""

import math

import pytest

from lightseg.judge.stats import mean_interval, ratio_interval
from lightseg.judge.verdict import decide

T3, T1 = 3.182446, 12.706205  # Student t, 97.5% quantile, 3 and 1 degrees of freedom (tables)


def test_mean_interval_by_hand():
    # mean 0.955; squared deviations sum 0.0053 -> s = sqrt(0.0053 / 3) = 0.0420317
    lo, hi = mean_interval([0.9, 1.0, 0.95, 0.97])
    half = T3 * math.sqrt(0.0053 / 3) / 2
    assert (lo, hi) == pytest.approx((0.955 - half, 0.955 + half), abs=1e-6)
    assert lo == pytest.approx(0.888119, abs=1e-6)
    assert mean_interval([0.9, 1.0, 0.95, 0.97], bounds=(0.0, 1.0))[1] == 1.0  # clipped


def test_ratio_interval_by_hand():
    # R = 0.85 / 1.0; a - R b = [-0.05, 0.05], s = 0.0707107; half = t1 * s / (sqrt 2 * 1.0)
    lo, hi = ratio_interval([0.8, 0.9], [1.0, 1.0])
    assert (lo, hi) == pytest.approx((0.85 - T1 * 0.05, 0.85 + T1 * 0.05), abs=1e-6)
    assert ratio_interval([0.495, 0.693], [0.5, 0.7]) == pytest.approx((0.99, 0.99))  # exact


def test_one_slice_has_no_interval_and_constant_values_no_width():
    assert all(math.isnan(b) for b in mean_interval([0.99]))
    assert mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("op", "value", "ci", "limit", "ci_limit", "want"),
    [
        (">=", 0.995, (0.985, 1.0), 0.99, 0.98, "pass"),
        (">=", 0.995, (0.975, 1.0), 0.99, 0.98, "undecided"),  # mean clears, interval too wide
        (">=", 0.985, (0.975, 0.995), 0.99, 0.98, "undecided"),  # could still be >= 0.99
        (">=", 0.985, (0.980, 0.989), 0.99, 0.98, "fail"),  # wholly below the limit
        ("<=", 1e-5, (0.0, 9e-5), 1e-4, 1e-4, "pass"),
        ("<=", 5e-5, (0.0, 2e-4), 1e-4, 1e-4, "undecided"),
        ("<=", 3e-4, (2e-4, 4e-4), 1e-4, 1e-4, "fail"),
        (">=", 1.0, (math.nan, math.nan), 0.99, 0.98, "undecided"),  # one slice decides nothing
    ],
)
def test_decision_rule(op, value, ci, limit, ci_limit, want):
    assert decide(op, value, ci, limit, ci_limit) == want
