"""Realism measurements for breast-CT slices: power-law texture exponent, tissue statistics."""

from __future__ import annotations

import numpy as np

from lightseg.data.phantom import FAT, GLAND, LIGAMENT, SKIN, Slice


def radial_power_spectrum(roi: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a square ROI (mean removed, Hann window).

    Returns (frequency in cycles/mm, power), without the DC bin.
    """
    n = roi.shape[0]
    w = np.hanning(n)[:, None] * np.hanning(n)[None, :]
    p = np.abs(np.fft.fft2((roi - roi.mean()) * w)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    k = np.round(f * n).astype(int)
    counts = np.bincount(k.ravel())
    power = np.bincount(k.ravel(), p.ravel()) / np.maximum(counts, 1)
    kmax = n // 2
    return np.arange(1, kmax) / (n * pixel_mm), power[1:kmax]


def breast_rois(s: Slice, roi: int) -> list[np.ndarray]:
    """Non-overlapping roi x roi squares fully inside the breast, away from skin and lesion."""
    inside = s.hu > -500
    if s.mask.any():
        inside = inside & ~_dilate(s.mask > 0, 4)
    out = []
    h, w = s.hu.shape
    margin = max(2, int(round(3.0 / s.pixel_mm)))
    taken = np.zeros_like(inside)
    step = max(1, roi // 4)
    for y in range(margin, h - roi - margin + 1, step):
        for x in range(margin, w - roi - margin + 1, step):
            box = (slice(y, y + roi), slice(x, x + roi))
            ok = inside[y - margin : y + roi + margin, x - margin : x + roi + margin].all()
            if ok and not taken[box].any():
                taken[box] = True
                out.append(s.hu[box])
    return out


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(m, iterations=r)


def power_law_beta(
    slices: list[Slice], roi: int = 64, band_mm: tuple[float, float] = (0.1, 0.4)
) -> float:
    """Exponent beta of P(f) ~ 1/f^beta, fitted (log-log) on the mean ROI spectrum in ``band_mm``
    (cycles/mm) over breast ROIs of all slices."""
    spectra, freq = [], None
    for s in slices:
        for r in breast_rois(s, roi):
            freq, p = radial_power_spectrum(r.astype(np.float64), s.pixel_mm)
            spectra.append(p)
    if not spectra:
        raise ValueError("no breast ROI of that size in these slices")
    power = np.mean(spectra, axis=0)
    sel = (freq >= band_mm[0]) & (freq <= band_mm[1])
    slope = np.polyfit(np.log(freq[sel]), np.log(power[sel]), 1)[0]
    return float(-slope)


def tissue_hu(s: Slice, label: int, erode: int = 2) -> np.ndarray:
    """HU values of one tissue (needs ``meta['tissue']``), eroded away from boundaries."""
    from scipy.ndimage import binary_erosion

    m = s.meta["tissue"] == label
    if erode:
        m = binary_erosion(m, iterations=erode)
    return s.hu[m]


def glandular_fraction(slices: list[Slice]) -> float:
    """Fibroglandular share of the breast below the skin, pooled over slices (needs
    ``meta['tissue']``): gland + ligament pixels over gland + ligament + fat pixels."""
    fg = total = 0
    for s in slices:
        t = s.meta["tissue"]
        fg += int(np.isin(t, (GLAND, LIGAMENT)).sum())
        total += int(np.isin(t, (GLAND, LIGAMENT, FAT)).sum())
    return fg / max(total, 1)


__all__ = [
    "FAT",
    "GLAND",
    "SKIN",
    "breast_rois",
    "glandular_fraction",
    "power_law_beta",
    "radial_power_spectrum",
    "tissue_hu",
]
