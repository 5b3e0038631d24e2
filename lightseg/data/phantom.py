"""Synthetic dedicated breast-CT phantoms: coronal slices with 3D lesions and exact masks.

One 3D "patient" volume is generated at a time and many coronal slices are cut from it:

- breast outline: a hemi-ellipsoid (pendant breast) whose elliptical cross-section shrinks toward
  the nipple, a skin layer, a subcutaneous fat layer, air (-1000 HU) outside;
- fibroglandular tissue: a 3D Gaussian random field with power spectrum 1/f^3 (made by FFT),
  thresholded to the requested glandular fraction (a two-phase fat/gland medium); Cooper's
  ligaments as thin sheets (zero crossings of a second, independent field);
- lesions: round, oval, lobulated or spiculated 3D masses, optional calcification specks;
- a small Gaussian blur (system MTF / partial volume) and ramp-filtered (correlated) CT noise.

Axes: a volume is (z, y, x) with z the chest-wall -> nipple axis, so ``vol[z]`` is coronal.
Voxels are isotropic with ``pixel_mm = fov_mm / size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter, zoom

from lightseg.errors import LightsegError

LESION_KINDS = ("round", "oval", "lobulated", "spiculated")

# Tissue labels in Slice.meta["tissue"] (when PhantomConfig.keep_tissue is set).
AIR, FAT, GLAND, SKIN, NIPPLE, LIGAMENT, LESION, CALCIFICATION = range(8)


@dataclass(frozen=True)
class PhantomConfig:
    """Every phantom parameter. Ranges are (low, high), drawn uniformly per patient or lesion.

    Defaults describe contrast-enhanced dedicated breast CT binned to ``size`` px
    (pixel about 0.4-0.6 mm at 256 px), HU values inside the published ranges.
    """

    size: int = 256  # slice matrix (pixels); overridden by synth_slices(size=...)
    fov_mm_range: tuple[float, float] = (110.0, 150.0)  # field of view; pixel_mm = fov/size
    depth: int = 64  # coronal slices per generated volume (isotropic voxels)
    slices_per_volume: int = 16  # at most this many slices are taken from one volume
    slice_step: int = 2  # minimum spacing (voxels) between slices taken from one volume
    # breast shape
    breast_diameter_frac: tuple[float, float] = (0.70, 0.92)  # chest-wall diameter / FOV
    breast_ellipticity: tuple[float, float] = (0.80, 1.0)  # minor / major axis
    breast_length_ratio: tuple[float, float] = (0.8, 1.2)  # chest-wall-to-nipple / radius
    skin_mm: float = 1.5
    subcutaneous_fat_mm: tuple[float, float] = (1.0, 4.0)
    nipple_diameter_mm: tuple[float, float] = (8.0, 12.0)
    nipple_length_mm: float = 6.0
    # composition and texture
    glandular_fraction: float | None = None  # None: drawn from glandular_fraction_dist
    glandular_fraction_dist: tuple[float, float, float, float] = (0.19, 0.10, 0.05, 0.60)
    #   (mean, sd, min, max) of a clipped normal; published mean ~19%, rarely above 50%
    spectrum_exponent: float = 3.0  # 3D field power spectrum 1/f^exponent
    central_gland_bias: float = 0.6  # >0 puts gland centrally, fat toward the skin
    ligaments: bool = True
    ligament_mm: float = 0.4  # sheet thickness
    blur_px: float = 0.6  # Gaussian sigma of the system blur (pixels)
    noise_hu: float = 15.0  # sd of the ramp-filtered CT noise
    # HU per tissue (published non-contrast ranges: fat -190..-64, fibroglandular -12..199,
    # nipple 176..334; see docs/data.md)
    fat_hu: tuple[float, float] = (-140.0, -90.0)
    gland_hu: tuple[float, float] = (20.0, 70.0)
    skin_hu: tuple[float, float] = (40.0, 90.0)
    nipple_hu: tuple[float, float] = (200.0, 300.0)
    calcification_hu: tuple[float, float] = (400.0, 900.0)
    # lesions
    lesion_kinds: tuple[str, ...] = LESION_KINDS
    lesion_diameter_mm: tuple[float, float] = (5.0, 30.0)  # equivalent-sphere diameter
    lesion_probability: float = 0.5  # share of patients with lesions when lesion=None
    max_lesions: int = 3  # per volume, placed at different depths
    contrast_enhanced: bool = True
    enhancement_hu: tuple[float, float] = (44.0, 65.0)  # lesion over gland, contrast-enhanced
    noncontrast_lesion_hu: tuple[float, float] = (5.0, 25.0)  # lesion over gland, no contrast
    min_lesion_area_frac: float = 0.3  # slice kept as "lesion" if area >= frac * max area
    calcification_probability: float = 0.3
    keep_tissue: bool = False  # store the tissue label map in Slice.meta["tissue"]

    def __post_init__(self) -> None:
        bad = [k for k in self.lesion_kinds if k not in LESION_KINDS]
        if bad or not self.lesion_kinds:
            raise LightsegError(f"phantom: lesion kinds must be among {LESION_KINDS}, got {bad}")
        if self.size < 16 or self.depth < 8:
            raise LightsegError("phantom: size must be >= 16 and depth >= 8")
        gf = self.glandular_fraction
        if gf is not None and not 0.0 < gf < 1.0:
            raise LightsegError(f"phantom: glandular_fraction must be in (0, 1), got {gf}")
        if not 0.0 <= self.lesion_probability <= 1.0:
            raise LightsegError("phantom: lesion_probability must be in [0, 1]")


@dataclass
class Slice:
    """One coronal slice: HU image, lesion mask, pixel size and provenance."""

    hu: np.ndarray  # float32 H x W (HU)
    mask: np.ndarray  # uint8 H x W (1 = lesion)
    pixel_mm: float
    meta: dict = field(default_factory=dict)


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


@lru_cache(maxsize=4)
def _power_law_amplitude(shape: tuple[int, ...], exponent: float) -> np.ndarray:
    freqs = np.meshgrid(*[sfft.fftfreq(n).astype(np.float32) for n in shape], indexing="ij")
    f2 = sum(f * f for f in freqs)
    f2.flat[0] = np.inf
    amp = (f2 ** np.float32(-exponent / 4)).astype(np.float32)  # sqrt(1/f^exponent)
    # E[real(ifftn)^2] = sum(amp^2) / N^2 for unit complex normal coefficients: normalise to sd 1
    return amp * np.float32(amp.size / np.sqrt(np.sum(amp.astype(np.float64) ** 2)))


def power_law_field(
    shape: tuple[int, ...], exponent: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two independent zero-mean, (expected) unit-sd Gaussian fields, spectrum 1/f^exponent."""
    spec = np.empty(shape, dtype=np.complex64)
    spec.real = rng.standard_normal(shape, dtype=np.float32)
    spec.imag = rng.standard_normal(shape, dtype=np.float32)
    spec *= _power_law_amplitude(tuple(shape), float(exponent))
    out = sfft.ifftn(spec, workers=1, overwrite_x=True)
    return out.real, out.imag  # the DC term is 0, so both have mean 0


def _ramp_filter(size: int) -> np.ndarray:
    """|f| x Hann apodisation, for correlated CT noise (rfft2 layout)."""
    fy = sfft.fftfreq(size)[:, None]
    fx = sfft.rfftfreq(size)[None, :]
    f = np.sqrt(fy * fy + fx * fx) / 0.5
    filt = np.where(f <= 1, f * 0.5 * (1 + np.cos(np.pi * np.minimum(f, 1))), 0.0)
    return (filt / np.sqrt((filt**2).mean())).astype(np.float32)


def ct_noise(size: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Ramp-filtered (spatially correlated) noise with standard deviation ``sd``."""
    w = rng.standard_normal((size, size), dtype=np.float32)
    n = sfft.irfft2(sfft.rfft2(w, workers=1) * _ramp_filter(size), s=(size, size), workers=1)
    return (n * (sd / max(float(n.std()), 1e-6))).astype(np.float32)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


_MAX_R = 14.0


def _lesion_shape(kind: str, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean 3D lesion of nominal radius ``radius`` voxels, cropped to its bounding box."""
    ext = int(np.ceil(radius * (2.05 if kind == "spiculated" else 1.55))) + 1
    g = np.arange(-ext, ext + 1, dtype=np.float32)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    p = np.stack([zz, yy, xx], axis=-1)
    if kind != "spiculated":  # spiculated strands are laid out in the coronal frame
        p = p @ _rotation(rng).T.astype(np.float32)
    r = np.sqrt((p**2).sum(-1))
    if kind == "round":
        m = r <= radius
    elif kind == "oval":
        ax = radius * np.array([1.0, rng.uniform(0.55, 0.85), rng.uniform(0.55, 0.85)])
        ax = ax / np.prod(ax / radius) ** (1 / 3)  # keep the volume of the sphere
        m = ((p / ax.astype(np.float32)) ** 2).sum(-1) <= 1
    elif kind == "lobulated":
        m = r <= 0.7 * radius
        for _ in range(int(rng.integers(3, 7))):
            d = rng.standard_normal(3)
            c = (d / np.linalg.norm(d) * rng.uniform(0.35, 0.55) * radius).astype(np.float32)
            m |= np.sqrt(((p - c) ** 2).sum(-1)) <= rng.uniform(0.45, 0.65) * radius
    else:  # spiculated: core plus tapering strands radiating from the margin, mostly in-plane
        m = r <= radius
        thick = max(1.0, 0.12 * radius)
        for _ in range(int(rng.integers(24, 40))):
            zs = rng.uniform(-0.75, 0.75) * radius
            phi = rng.uniform(0, 2 * np.pi)
            u = np.array([rng.normal(0, 0.15), np.sin(phi), np.cos(phi)], np.float32)
            u /= np.linalg.norm(u)
            rs = np.sqrt(radius**2 - zs**2)
            start = np.array([zs, 0.8 * rs * np.sin(phi), 0.8 * rs * np.cos(phi)], np.float32)
            length = rng.uniform(0.5, 1.2) * radius
            end = start + length * u
            lo = np.maximum(np.floor(np.minimum(start, end) - thick - 1).astype(int) + ext, 0)
            hi = np.ceil(np.maximum(start, end) + thick + 2).astype(int) + ext
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            w = p[box] - start  # only the voxels near this strand
            wu = w @ u
            t = np.clip(wu, 0.0, length)
            dist2 = (w**2).sum(-1) - 2 * t * wu + t * t
            m[box] |= dist2 <= (0.5 + thick * (1.0 - 0.75 * t / length)) ** 2
    idx = np.argwhere(m)
    if len(idx) == 0:
        return np.ones((1, 1, 1), dtype=bool)
    lo, hi = idx.min(0), idx.max(0) + 1
    return m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


def make_lesion(kind: str, diameter_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Lesion whose equivalent-sphere diameter is ``diameter_vox`` (one rescale pass).

    Large lesions are drawn on a grid at most ``_MAX_R`` voxels in radius and upsampled.
    """
    scale = max(1.0, diameter_vox / 2 / _MAX_R)
    if scale > 1.0:
        small = make_lesion(kind, diameter_vox / scale, rng).astype(np.float32)
        return zoom(small, scale, order=1) >= 0.5
    radius = diameter_vox / 2
    if kind in ("round", "oval"):  # volume-preserving by construction
        return _lesion_shape(kind, radius, rng)
    state = rng.bit_generator.state
    box = _lesion_shape(kind, radius, rng)
    d_eq = (6 * box.sum() / np.pi) ** (1 / 3)
    rng.bit_generator.state = state  # same random shape parameters, corrected size
    return _lesion_shape(kind, radius * diameter_vox / max(d_eq, 1e-6), rng)


class _Patient:
    """One 3D breast volume, sliced lazily."""

    def __init__(self, cfg: PhantomConfig, size: int, seed: int, n_lesions: int) -> None:
        rng = np.random.default_rng(seed)
        self.cfg, self.size, self.seed, self.rng = cfg, size, seed, rng
        self.pixel_mm = _u(rng, cfg.fov_mm_range) / size
        d, s, px = cfg.depth, size, self.pixel_mm
        # breast geometry (mm): hemi-ellipsoid r(z) = R sqrt(1 - (z/L)^2), z from the chest wall
        self.radius_mm = _u(rng, cfg.breast_diameter_frac) * size * px / 2
        self.ellipticity = _u(rng, cfg.breast_ellipticity)
        self.length_mm = _u(rng, cfg.breast_length_ratio) * self.radius_mm
        self.angle = float(rng.uniform(0, np.pi))
        span = d * px
        self.z0_mm = float(rng.uniform(0.0, max(0.0, self.length_mm - 0.75 * span)))
        self.nipple_r_mm = _u(rng, cfg.nipple_diameter_mm) / 2
        self.subcut_mm = _u(rng, cfg.subcutaneous_fat_mm)
        self.hu = {
            "fat": _u(rng, cfg.fat_hu),
            "gland": _u(rng, cfg.gland_hu),
            "skin": _u(rng, cfg.skin_hu),
            "nipple": _u(rng, cfg.nipple_hu),
        }
        if cfg.glandular_fraction is None:
            m, sd, lo, hi = cfg.glandular_fraction_dist
            self.gf = float(np.clip(rng.normal(m, sd), lo, hi))
        else:
            self.gf = float(cfg.glandular_fraction)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) - (s - 1) / 2
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        self._u_mm = ((ca * xx + sa * yy) * px).astype(np.float32)
        self._v_mm = ((-sa * xx + ca * yy) * px).astype(np.float32)
        # texture: 1/f^3 field thresholded so that fibroglandular tissue (gland + ligaments, kept
        # off the subcutaneous fat layer) is the fraction gf of the breast below the skin
        gland_f, lig_f = power_law_field((d, s, s), cfg.spectrum_exponent, rng)
        rho, depth_mm = self._rho_volume()
        inside = rho < 1.0
        breast = inside & (depth_mm > cfg.skin_mm)
        interior = breast & (depth_mm > cfg.skin_mm + self.subcut_mm)
        self.lig = None
        if cfg.ligaments:
            self.lig = (np.abs(lig_f) < np.float32(0.05 * cfg.ligament_mm / px)) & interior
            gland_f[self.lig] = np.inf
        gland_f -= np.float32(cfg.central_gland_bias) * rho**2
        n_breast, n_interior = int(breast.sum()), int(interior.sum())
        vals = gland_f[interior][::5]  # a subsample is enough for the threshold
        q = 1.0 - min(1.0, self.gf * n_breast / max(n_interior, 1))
        threshold = float(np.quantile(vals, q)) if vals.size else np.inf
        self.gland = (gland_f > threshold) & interior
        self.measured_gf = float(self.gland.sum() / max(n_breast, 1))
        self.rho, self.depth_mm = rho, depth_mm
        self.lesions = self._place_lesions(n_lesions)
        self.calcs = self._calcifications()

    def _rho_volume(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised elliptical radius and approximate depth below the skin (mm), per voxel."""
        zmm = self.z0_mm + np.arange(self.cfg.depth) * self.pixel_mm
        a = self.radius_mm * np.sqrt(np.maximum(0.0, 1.0 - (zmm / self.length_mm) ** 2))
        a = np.maximum(a, 1e-3 * self.pixel_mm).astype(np.float32)[:, None, None]
        b = a * np.float32(self.ellipticity)
        rho = np.sqrt(np.square(self._u_mm[None] / a) + np.square(self._v_mm[None] / b))
        return rho, (1.0 - rho) * b

    def _place_lesions(self, n: int) -> list[dict]:
        cfg, rng, px, d = self.cfg, self.rng, self.pixel_mm, self.cfg.depth
        lesions: list[dict] = []
        cursor = 0.0
        for _ in range(n):
            kind = str(rng.choice(cfg.lesion_kinds))
            diam = _u(rng, cfg.lesion_diameter_mm)
            box = make_lesion(kind, diam / px, rng)
            bz = box.shape[0]
            zc = cursor + bz / 2 if lesions else rng.uniform(0, max(0.0, d - bz)) * 0.3 + bz / 2
            if lesions and zc + 0.2 * bz > d:
                break
            zc = int(min(zc, d - 1))
            # in-plane position: inside the breast interior, deep enough for the lesion
            need = max(box.shape[1:]) * px / 2 + self.cfg.skin_mm + 1.0
            ok = np.argwhere(self.depth_mm[zc] > need)
            if len(ok) == 0:
                ok = np.argwhere(self.depth_mm[zc] > self.cfg.skin_mm + 1.0)
                if len(ok) == 0:
                    break
            gl = ok[self.gland[zc][ok[:, 0], ok[:, 1]]]
            pool = gl if len(gl) and rng.random() < 0.8 else ok
            yc, xc = pool[rng.integers(len(pool))]
            offset = "enhancement_hu" if cfg.contrast_enhanced else "noncontrast_lesion_hu"
            hu = self.hu["gland"] + _u(rng, getattr(cfg, offset))
            eq = float((6 * box.sum() / np.pi) ** (1 / 3) * px)
            org = (zc - bz // 2, int(yc) - box.shape[1] // 2, int(xc) - box.shape[2] // 2)
            lesions.append(
                {"kind": kind, "diameter_mm": diam, "equivalent_diameter_mm": eq, "hu": hu,
                 "origin": org, "box": box}
            )  # fmt: skip
            cursor = zc + bz / 2 + rng.integers(2, 6)
        return lesions

    def _calcifications(self) -> list[tuple[int, int, int, float]]:
        cfg, rng = self.cfg, self.rng
        if rng.random() >= cfg.calcification_probability:
            return []
        pts = np.argwhere(self.gland[:: max(1, cfg.depth // 8)])
        if len(pts) == 0:
            return []
        c = pts[rng.integers(len(pts))] * [max(1, cfg.depth // 8), 1, 1]
        out = []
        for _ in range(int(rng.integers(3, 12))):
            z, y, x = (c + rng.normal(0, 4.0 / self.pixel_mm, 3)).astype(int)
            inside = 0 <= z < cfg.depth and 0 <= y < self.size and 0 <= x < self.size
            if inside and self.depth_mm[z, y, x] > cfg.skin_mm:
                out.append((int(z), int(y), int(x), _u(rng, cfg.calcification_hu)))
        return out

    def lesion_mask(self, z: int) -> np.ndarray:
        m = np.zeros((self.size, self.size), dtype=bool)
        for les in self.lesions:
            oz, oy, ox = les["origin"]
            box = les["box"]
            if not oz <= z < oz + box.shape[0]:
                continue
            sl = box[z - oz]
            y0, x0 = max(oy, 0), max(ox, 0)
            y1, x1 = min(oy + sl.shape[0], self.size), min(ox + sl.shape[1], self.size)
            if y1 > y0 and x1 > x0:
                m[y0:y1, x0:x1] |= sl[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        return m

    def slice(self, z: int, rng: np.random.Generator) -> Slice:
        cfg, px, hu_t = self.cfg, self.pixel_mm, self.hu
        rho, depth = self.rho[z], self.depth_mm[z]
        inside = rho < 1.0
        tissue = np.full((self.size, self.size), AIR, dtype=np.uint8)
        tissue[inside] = FAT
        tissue[self.gland[z]] = GLAND
        if self.lig is not None:
            tissue[self.lig[z]] = LIGAMENT
        tissue[inside & (depth <= cfg.skin_mm)] = SKIN
        zmm = self.z0_mm + z * px
        if self._has_nipple(z):
            tissue[np.hypot(self._u_mm, self._v_mm) <= self.nipple_r_mm] = NIPPLE
        mask = self.lesion_mask(z) & (tissue != AIR)
        tissue[mask] = LESION
        img = np.full(tissue.shape, -1000.0, dtype=np.float32)
        img[tissue == FAT] = hu_t["fat"]
        img[(tissue == GLAND) | (tissue == LIGAMENT)] = hu_t["gland"]
        img[tissue == SKIN] = hu_t["skin"]
        img[tissue == NIPPLE] = hu_t["nipple"]
        for les in self.lesions:
            img[mask & self._in_box(les, z)] = les["hu"]
        for cz, cy, cx, chu in self.calcs:
            if cz == z:
                img[cy, cx] = chu
                tissue[cy, cx] = CALCIFICATION if tissue[cy, cx] != LESION else LESION
        if cfg.blur_px > 0:
            img = gaussian_filter(img, cfg.blur_px, mode="nearest")
        img += ct_noise(self.size, cfg.noise_hu, rng)
        meta = {
            "patient_seed": self.seed,
            "z": z,
            "z_mm": zmm,
            "glandular_fraction": self.gf,
            "contrast_enhanced": cfg.contrast_enhanced,
            "tissue_hu": dict(hu_t),
            "lesions": [
                {k: les[k] for k in ("kind", "diameter_mm", "equivalent_diameter_mm", "hu")}
                for les in self.lesions
                if self._in_box(les, z).any() and (mask & self._in_box(les, z)).any()
            ],
        }
        if cfg.keep_tissue:
            meta["tissue"] = tissue
        return Slice(hu=img.astype(np.float32), mask=mask.astype(np.uint8), pixel_mm=px, meta=meta)

    def _visible(self, z: int) -> bool:
        """Slice z shows lesion pixels inside the breast."""
        return bool((self.lesion_mask(z) & (self.rho[z] < 1.0)).any())

    def _has_nipple(self, z: int) -> bool:
        zmm = self.z0_mm + z * self.pixel_mm
        return self.length_mm - 2.0 < zmm < self.length_mm + self.cfg.nipple_length_mm

    def _in_box(self, les: dict, z: int) -> np.ndarray:
        m = np.zeros((self.size, self.size), dtype=bool)
        oz, oy, ox = les["origin"]
        bz, by, bx = les["box"].shape
        if oz <= z < oz + bz:
            m[max(oy, 0) : max(oy + by, 0), max(ox, 0) : max(ox + bx, 0)] = True
        return m

    def candidate_slices(self, lesion: bool) -> list[int]:
        """Slices to cut: lesion slices (area >= frac of the lesion's max) or breast slices."""
        cfg = self.cfg
        if lesion:
            zs: list[int] = []
            for les in self.lesions:
                areas = les["box"].sum(axis=(1, 2))
                oz = les["origin"][0]
                keep = np.nonzero(areas >= cfg.min_lesion_area_frac * areas.max())[0] + oz
                zs += [int(z) for z in keep if 0 <= z < cfg.depth and self._visible(z)]
            zs = sorted(set(zs))
        else:
            area = (self.rho < 1.0).reshape(cfg.depth, -1).mean(1)
            zs = [z for z in range(cfg.depth) if area[z] > 0.02 or self._has_nipple(z)]
        return zs[:: max(1, cfg.slice_step)]


def synth_slices(
    n: int,
    seed: int,
    size: int = 256,
    lesion: bool | None = True,
    config: PhantomConfig | None = None,
) -> list[Slice]:
    """``n`` synthetic coronal breast-CT slices, deterministic in (n, seed, size, config).

    lesion=True: every slice contains a lesion; False: none; None: mixed, a patient has lesions
    with the config's ``lesion_probability``. Slices come from successive 3D patient volumes,
    at most ``config.slices_per_volume`` from each; the first k of n are the same for any n >= k.
    """
    if n < 0:
        raise LightsegError(f"phantom: n must be >= 0, got {n}")
    cfg = config or PhantomConfig()
    if size != cfg.size:
        cfg = PhantomConfig(**{**cfg.__dict__, "size": size})
    rng = np.random.default_rng(seed)
    out: list[Slice] = []
    patient = misses = 0
    while len(out) < n:
        pseed = int(rng.integers(2**62))
        has = lesion if lesion is not None else bool(rng.random() < cfg.lesion_probability)
        n_les = int(rng.integers(1, cfg.max_lesions + 1)) if has else 0
        p = _Patient(cfg, size, pseed, n_les)
        zs = p.candidate_slices(has)
        if not zs:
            misses += 1
            if misses > 50:
                raise LightsegError("phantom: config yields no usable slices (lesions too big?)")
            continue
        prng = np.random.default_rng(pseed + 1)
        take = min(len(zs), cfg.slices_per_volume)
        chosen = sorted(prng.choice(zs, size=take, replace=False).tolist())
        for z in chosen[: n - len(out)]:
            s = p.slice(z, prng)
            s.meta["patient"] = patient
            s.meta["volume_seed"] = pseed
            out.append(s)
        patient += 1
    return out
