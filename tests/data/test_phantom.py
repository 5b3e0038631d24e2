"""Synthetic phantom: API, determinism, realism measured against published breast-CT numbers."""

from __future__ import annotations

import numpy as np
import pytest

from lightseg.data import Preprocessing, lesion_inputs
from lightseg.data.phantom import LESION_KINDS, NIPPLE, PhantomConfig, make_lesion, synth_slices
from lightseg.data.realism import FAT, GLAND, glandular_fraction, power_law_beta, tissue_hu
from lightseg.errors import LightsegError


@pytest.fixture(scope="module")
def healthy() -> list:
    cfg = PhantomConfig(keep_tissue=True, glandular_fraction=0.25)
    return synth_slices(24, 7, size=256, lesion=False, config=cfg)


def test_api_types_and_lesion_modes() -> None:
    les = synth_slices(5, 0, size=64)
    assert len(les) == 5
    for s in les:
        assert s.hu.dtype == np.float32 and s.hu.shape == (64, 64)
        assert s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 1}
        assert s.mask.sum() > 0 and s.meta["lesions"]
        assert 0.3 < s.pixel_mm * 64 / 256 < 0.7
    assert all(s.mask.sum() == 0 for s in synth_slices(5, 0, size=64, lesion=False))
    mixed = synth_slices(60, 3, size=64, lesion=None)
    with_lesion = np.mean([s.mask.any() for s in mixed])
    assert 0.1 < with_lesion < 0.9


def test_deterministic_by_seed_and_prefix_stable() -> None:
    a = synth_slices(6, 11, size=64)
    b = synth_slices(9, 11, size=64)
    c = synth_slices(6, 12, size=64)
    for x, y in zip(a, b[:6], strict=True):
        np.testing.assert_array_equal(x.hu, y.hu)
        np.testing.assert_array_equal(x.mask, y.mask)
    assert not np.array_equal(a[0].hu, c[0].hu)


def test_air_outside_and_lesion_inside_breast() -> None:
    s = synth_slices(4, 5, size=128)
    for x in s:
        assert abs(np.median(x.hu[:4, :4]) + 1000) < 50  # corner is air
        assert (x.hu[x.mask > 0] > -500).all()  # the lesion lies in tissue


def test_power_law_beta_in_published_range(healthy: list) -> None:
    beta = power_law_beta(healthy)
    assert 1.6 <= beta <= 2.1, beta  # Chen et al. 2012: 1.75-1.85 on coronal bCT slices


def test_beta_follows_the_field_exponent() -> None:
    cfg = PhantomConfig(keep_tissue=True, glandular_fraction=0.3, spectrum_exponent=2.0)
    flat = power_law_beta(synth_slices(8, 7, size=256, lesion=False, config=cfg))
    assert flat < 1.6  # a whiter field is measured as whiter: the metric can fail


def test_tissue_hu_in_published_ranges(healthy: list) -> None:
    fat = [tissue_hu(s, FAT) for s in healthy]
    gland = [tissue_hu(s, GLAND, erode=1) for s in healthy]
    fat_mean = np.mean([v.mean() for v in fat if v.size])
    gland_mean = np.mean([v.mean() for v in gland if v.size])
    assert -190 <= fat_mean <= -64 and -12 <= gland_mean <= 199
    for v in fat:
        lo, hi = np.percentile(v, [10, 90])
        assert lo >= -190 and hi <= -64
    assert gland_mean - fat_mean > 100


def test_nipple_hu_in_published_range() -> None:
    cfg = PhantomConfig(keep_tissue=True)
    vals = [
        s.hu[s.meta["tissue"] == NIPPLE]
        for s in synth_slices(120, 2, size=128, lesion=False, config=cfg)
    ]
    vals = np.concatenate([v for v in vals if v.size])
    assert vals.size > 0 and 176 <= np.median(vals) <= 334


@pytest.mark.parametrize("gf", [0.08, 0.19, 0.45])
def test_glandular_fraction_as_requested(gf: float) -> None:
    cfg = PhantomConfig(keep_tissue=True, glandular_fraction=gf)
    s = synth_slices(32, 1, size=128, lesion=False, config=cfg)
    measured = glandular_fraction(s)
    assert abs(measured - gf) <= 0.03, measured


def test_default_glandular_fraction_around_19_percent() -> None:
    gfs = [s.meta["glandular_fraction"] for s in synth_slices(200, 0, size=32, lesion=False)]
    assert 0.12 < np.mean(np.unique(gfs)) < 0.26 and max(gfs) <= 0.6


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_lesion_size_as_requested(kind: str) -> None:
    rng = np.random.default_rng(0)
    for d in (8.0, 30.0):
        box = make_lesion(kind, d, rng)
        d_eq = (6 * box.sum() / np.pi) ** (1 / 3)
        assert abs(d_eq - d) / d < 0.1, (kind, d, d_eq)


def test_lesion_diameters_in_requested_range_and_visible() -> None:
    cfg = PhantomConfig(lesion_diameter_mm=(10.0, 14.0), contrast_enhanced=True)
    s = synth_slices(20, 4, size=256, config=cfg)
    for x in s:
        for les in x.meta["lesions"]:
            assert 9.0 <= les["equivalent_diameter_mm"] <= 15.4
        # the widest cross-section of a 10-14 mm lesion is at most ~14 mm across (+ spicules)
        area_mm2 = x.mask.sum() * x.pixel_mm**2
        assert 2.0 < area_mm2 < np.pi * 11**2
        inner = x.hu[x.mask > 0].mean()
        assert inner - x.meta["tissue_hu"]["gland"] > 30  # contrast-enhanced


def test_noncontrast_lesion_is_close_to_gland() -> None:
    cfg = PhantomConfig(contrast_enhanced=False)
    for x in synth_slices(6, 4, size=128, config=cfg):
        for les in x.meta["lesions"]:
            assert 5 <= les["hu"] - x.meta["tissue_hu"]["gland"] <= 25


def test_noise_is_correlated_not_white() -> None:
    from lightseg.data.phantom import ct_noise

    n = ct_noise(128, 15.0, np.random.default_rng(0))
    assert abs(n.std() - 15.0) < 0.5
    lag1 = np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]
    assert abs(lag1) > 0.2  # white noise gives ~0
    nps = np.abs(np.fft.fft2(n)) ** 2
    assert nps[:3, :3].mean() < 0.05 * nps[20:40, 20:40].mean()  # ramp: no power near DC


def test_lesion_inputs_preprocessed() -> None:
    pre = Preprocessing(size=64)
    x, y = lesion_inputs(pre, 3, 0)
    assert x.shape == (3, 3, 64, 64) and x.dtype == np.float32
    assert y.shape == (3, 64, 64) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0 and (y.reshape(3, -1).sum(1) > 0).all()


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(LightsegError, match="lesion kinds"):
        PhantomConfig(lesion_kinds=("square",))
    with pytest.raises(LightsegError, match="glandular_fraction"):
        PhantomConfig(glandular_fraction=1.5)
