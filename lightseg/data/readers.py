"""Readers for real data: DICOM series, NIfTI, VICTRE label volumes, PNG/NPY/NPZ slice pairs.

Every reader returns ``Volume``s: ``hu`` float32 (z, y, x) in HU, ``mask`` uint8 (z, y, x) or
None, ``spacing`` (dz, dy, dx) in mm and the ``source`` file. Bad input raises one
``LightsegError`` line that names the offending file(s).

Folder conventions (``read_folder``):
- ``*.npz`` with ``hu`` (2D or 3D) and ``mask``;
- image + mask pairs named ``X.ext`` and ``X_mask.ext`` (also ``_label``, ``_seg``), or the same
  names under ``images/`` and ``masks/`` (or ``labels/``); ext is .png, .npy, .nii or .nii.gz.
  PNG grey values g (0..255, first channel) are mapped back to HU with the default window
  (-300..+300 HU): hu = -300 + 600 * g / 255;
- ``*.mhd`` VICTRE label volumes (mass label 200 is the lesion);
- DICOM files (any name): one CT series, optionally with a label volume ``mask.nii[.gz]``
  (or ``label``/``seg``) whose voxel grid (i=column, j=row, k=slice in sorted order) matches.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError

MASK_SUFFIXES = ("_mask", "_label", "_seg")
IMAGE_EXTS = (".png", ".npy", ".nii.gz", ".nii")
DICOM_LABEL_STEMS = ("mask", "label", "seg")  # label volume next to a DICOM series

# VICTRE label -> HU (non-contrast dedicated breast CT, see docs/data.md)
VICTRE_LABELS = {"air": 0, "fat": 1, "skin": 2, "glandular": 29, "nipple": 33, "muscle": 40,
                 "ligament": 88, "tdlu": 95, "duct": 125, "artery": 150, "vein": 225,
                 "mass": 200, "calcification": 250}  # fmt: skip
VICTRE_HU = {0: -1000.0, 1: -110.0, 2: 50.0, 29: 40.0, 33: 250.0, 40: -20.0, 88: 40.0,
             95: 40.0, 125: 40.0, 150: 60.0, 225: 55.0, 200: 60.0, 250: 600.0}  # fmt: skip


@dataclass
class Volume:
    """A CT volume in HU with an optional lesion mask."""

    hu: np.ndarray  # float32 (z, y, x)
    mask: np.ndarray | None  # uint8 (z, y, x), 1 = lesion
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    source: str

    def slices(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(HU slice, mask slice) pairs along z; a missing mask reads as empty."""
        mask = self.mask if self.mask is not None else np.zeros(self.hu.shape, np.uint8)
        return [(self.hu[z], mask[z]) for z in range(self.hu.shape[0])]


def _checked(hu: np.ndarray, mask: np.ndarray | None, src: str, msrc: str = "") -> None:
    if not np.isfinite(hu).all():
        raise LightsegError(f"{src}: image contains NaN or Inf voxels")
    if mask is not None and mask.shape != hu.shape:
        raise LightsegError(
            f"{src} and {msrc or src}: image shape {hu.shape} != mask shape {mask.shape}"
        )


def _volume(hu, mask, spacing, src: str, msrc: str = "") -> Volume:
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim == 2:
        hu = hu[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if hu.ndim != 3:
        raise LightsegError(f"{src}: expected a 2D slice or 3D volume, got shape {hu.shape}")
    if mask is not None:
        mask = (np.asarray(mask) > 0).astype(np.uint8)
    _checked(hu, mask, src, msrc)
    return Volume(hu, mask, tuple(float(s) for s in spacing), src)


# --- NPZ / NPY / PNG -------------------------------------------------------------------------


def read_npz(path: str | Path) -> Volume:
    """``.npz`` with ``hu`` (HU, 2D or 3D), ``mask`` and optionally ``pixel_mm``."""
    path = Path(path)
    try:
        with np.load(path) as z:
            hu, mask = np.asarray(z["hu"]), np.asarray(z["mask"])
            px = float(z["pixel_mm"]) if "pixel_mm" in z else 1.0
    except KeyError as e:
        raise LightsegError(f"{path}: npz needs arrays 'hu' and 'mask' (missing {e})") from None
    except Exception as e:  # zip/pickle/format errors all mean the same to a user
        raise LightsegError(f"{path}: not a readable npz file ({type(e).__name__})") from None
    return _volume(hu, mask, (px, px, px), str(path))


def _read_image_2d(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False))
        from PIL import Image

        with Image.open(path) as im:
            a = np.asarray(im)
    except Exception as e:
        raise LightsegError(f"{path}: not a readable image ({type(e).__name__})") from None
    return a[..., 0] if a.ndim == 3 else a


def png_to_hu(g: np.ndarray, pre: Preprocessing | None = None) -> np.ndarray:
    """Grey values 0..255 -> HU through the (default) window."""
    pre = pre or Preprocessing()
    lo = pre.window_level - pre.window_width / 2
    return (lo + pre.window_width * np.asarray(g, np.float32) / 255.0).astype(np.float32)


def read_pair(image: str | Path, mask: str | Path) -> Volume:
    """One image + mask pair (.png, .npy, .nii, .nii.gz); PNG grey values become HU."""
    image, mask = Path(image), Path(mask)
    if _ext(image) in (".nii", ".nii.gz"):
        return read_nifti(image, mask)
    a = _read_image_2d(image)
    hu = png_to_hu(a) if image.suffix == ".png" else a
    m = _read_image_2d(mask)
    return _volume(hu, m, (1.0, 1.0, 1.0), str(image), str(mask))


# --- NIfTI -----------------------------------------------------------------------------------


def _nifti_array(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        a = np.asarray(img.dataobj, dtype=np.float32)
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    except Exception as e:
        raise LightsegError(f"{path}: not a readable NIfTI file ({type(e).__name__})") from None
    if a.ndim == 2:
        a, zooms = a[..., None], (*zooms[:2], 1.0)
    if a.ndim != 3:
        raise LightsegError(f"{path}: expected a 3D NIfTI volume, got shape {a.shape}")
    return a.transpose(2, 1, 0), (zooms[2], zooms[1], zooms[0])  # (i,j,k) -> (z,y,x)


def read_nifti(image: str | Path, label: str | Path | None = None) -> Volume:
    """NIfTI image in HU and an optional label volume (nonzero = lesion) on the same grid."""
    image = Path(image)
    hu, spacing = _nifti_array(image)
    mask = None
    if label is not None:
        mask, _ = _nifti_array(Path(label))
    return _volume(hu, mask, spacing, str(image), str(label or ""))


# --- VICTRE ----------------------------------------------------------------------------------


def _parse_mhd(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LightsegError(f"{path}: cannot read the .mhd header ({type(e).__name__})") from None
    hdr = {}
    for line in lines:
        if "=" in line:
            k, v = line.split("=", 1)
            hdr[k.strip()] = v.strip()
    return hdr


def read_victre(mhd: str | Path, hu_map: dict[int, float] | None = None) -> Volume:
    """VICTRE label volume (.mhd + .raw/.raw.gz, 8-bit labels) -> HU volume + mass mask (200)."""
    mhd = Path(mhd)
    hdr = _parse_mhd(mhd)
    try:
        dims = [int(v) for v in hdr["DimSize"].split()]
        spacing = [float(v) for v in hdr.get("ElementSpacing", "1 1 1").split()]
        raw = mhd.parent / hdr["ElementDataFile"]
    except (KeyError, ValueError) as e:
        raise LightsegError(f"{mhd}: bad .mhd header ({e})") from None
    if hdr.get("ElementType", "MET_UCHAR") != "MET_UCHAR" or len(dims) != 3:
        raise LightsegError(f"{mhd}: expected a 3D MET_UCHAR label volume")
    if not raw.exists() and raw.with_name(raw.name + ".gz").exists():
        raw = raw.with_name(raw.name + ".gz")
    try:
        if raw.suffix == ".gz":
            with gzip.open(raw) as fh:
                data = fh.read()
        else:
            data = raw.read_bytes()
    except (OSError, EOFError) as e:
        raise LightsegError(f"{raw}: cannot read label data ({type(e).__name__})") from None
    n = dims[0] * dims[1] * dims[2]
    if len(data) != n:
        raise LightsegError(f"{raw}: {len(data)} bytes, the header {mhd.name} needs {n}")
    labels = np.frombuffer(data, np.uint8).reshape(dims[2], dims[1], dims[0])
    table = np.full(256, -1000.0, np.float32)
    for lab, hu in (hu_map or VICTRE_HU).items():
        table[lab] = hu
    return _volume(table[labels], labels == VICTRE_LABELS["mass"],
                   (spacing[2], spacing[1], spacing[0]), str(mhd))  # fmt: skip


# --- DICOM -----------------------------------------------------------------------------------


def _dicom_files(folder: Path) -> list[Path]:
    skip = (".nii", ".gz", ".png", ".npy", ".npz", ".mhd", ".raw", ".json", ".txt", ".md")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.endswith(skip)
        and not p.name.startswith(".")
    )  # fmt: skip


def read_dicom_series(folder: str | Path, label: str | Path | None = None) -> Volume:
    """One CT series: HU = pixel * RescaleSlope + RescaleIntercept, slices sorted along the
    slice normal by ImagePositionPatient, spacing kept; an optional NIfTI label volume."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    files = _dicom_files(folder)
    if not files:
        raise LightsegError(f"{folder}: no DICOM files")
    items = []
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except (InvalidDicomError, OSError, EOFError, ValueError) as e:
            raise LightsegError(f"{f}: not a readable DICOM file ({type(e).__name__})") from None
        modality = str(getattr(ds, "Modality", ""))
        if modality != "CT":
            raise LightsegError(f"{f}: modality {modality or 'missing'!r}, expected CT")
        try:
            px = ds.pixel_array.astype(np.float32)
        except Exception as e:
            raise LightsegError(f"{f}: pixel data unreadable or truncated ({e})") from None
        hu = px * float(getattr(ds, "RescaleSlope", 1.0)) + float(
            getattr(ds, "RescaleIntercept", 0.0)
        )
        items.append((f, ds, hu))
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds, _ in items}
    if len(series) > 1:
        first = {}
        for f, ds, _ in items:
            first.setdefault(str(ds.SeriesInstanceUID), f.name)
        raise LightsegError(
            f"{folder}: mixed series ({len(series)} SeriesInstanceUIDs, e.g. "
            + ", ".join(sorted(first.values()))
            + ")"
        )
    shapes = {hu.shape for _, _, hu in items}
    if len(shapes) > 1:
        odd = [f.name for f, _, hu in items if hu.shape != items[0][2].shape]
        raise LightsegError(f"{folder}: slices of different sizes ({', '.join(odd)})")
    ds0 = items[0][1]
    orient = np.array(getattr(ds0, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    normal = np.cross(orient[:3], orient[3:])

    def pos(item) -> float:
        ipp = getattr(item[1], "ImagePositionPatient", None)
        if ipp is None:
            return float(getattr(item[1], "InstanceNumber", 0))
        return float(np.dot(normal, np.array(ipp, float)))

    items.sort(key=pos)
    z = [pos(it) for it in items]
    dz = float(np.median(np.diff(z))) if len(z) > 1 else float(
        getattr(ds0, "SliceThickness", 1.0)
    )  # fmt: skip
    if len(z) > 1 and dz == 0:
        raise LightsegError(f"{folder}: slices share one ImagePositionPatient (duplicates?)")
    dy, dx = (float(v) for v in getattr(ds0, "PixelSpacing", [1.0, 1.0]))
    hu = np.stack([hu for _, _, hu in items])
    mask = None
    if label is not None:
        mask, _ = _nifti_array(Path(label))
    return _volume(hu, mask, (abs(dz), dy, dx), str(folder), str(label or ""))


# --- folders ---------------------------------------------------------------------------------


def _ext(p: Path) -> str:
    return ".nii.gz" if p.name.endswith(".nii.gz") else p.suffix


def _stem(p: Path) -> str:
    return p.name[: -len(_ext(p))]


def _pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """Image files with their masks (None when a mask is missing)."""
    out = []
    for sub_img, sub_mask in (("images", "masks"), ("images", "labels")):
        if (folder / sub_img).is_dir() and (folder / sub_mask).is_dir():
            for img in sorted((folder / sub_img).iterdir()):
                if _ext(img) in IMAGE_EXTS:
                    m = folder / sub_mask / img.name
                    out.append((img, m if m.exists() else None))
            return out
    files = sorted(p for p in folder.iterdir() if p.is_file() and _ext(p) in IMAGE_EXTS)
    masks = {_stem(p): p for p in files if _stem(p).endswith(MASK_SUFFIXES)}
    for img in files:
        if _stem(img).endswith(MASK_SUFFIXES) or _stem(img) in (*DICOM_LABEL_STEMS, "montage"):
            continue
        m = next(
            (masks.get(_stem(img) + s) for s in MASK_SUFFIXES if _stem(img) + s in masks), None
        )
        out.append((img, m))
    return out


def _read_folder(folder: Path, problems: list[str] | None) -> list[Volume]:
    """All volumes in a folder. With ``problems`` given, errors are collected, not raised."""

    def attempt(fn, *args) -> None:
        try:
            vols.append(fn(*args))
        except LightsegError as e:
            if problems is None:
                raise
            problems.append(str(e))

    if not folder.is_dir():
        raise LightsegError(f"{folder}: not a folder")
    vols: list[Volume] = []
    for f in sorted(folder.glob("*.npz")):
        attempt(read_npz, f)
    for f in sorted(folder.glob("*.mhd")):
        attempt(read_victre, f)
    for img, m in _pairs(folder):
        if m is None:
            if problems is None:
                raise LightsegError(f"{img}: no mask (expected {_stem(img)}_mask{_ext(img)})")
            problems.append(f"{img}: no mask (expected {_stem(img)}_mask{_ext(img)})")
            continue
        attempt(read_pair, img, m)
    dicoms = _dicom_files(folder)
    if dicoms and not vols:
        labels = [p for p in sorted(folder.iterdir()) if _stem(p) in DICOM_LABEL_STEMS]
        attempt(read_dicom_series, folder, labels[0] if labels else None)
    if not vols and (problems is None or not problems):
        msg = f"{folder}: no readable data (npz, png/npy/nifti pairs, VICTRE .mhd or DICOM)"
        if problems is None:
            raise LightsegError(msg)
        problems.append(msg)
    return vols


def read_folder(folder: str | Path) -> list[Volume]:
    """Every volume in a dataset folder (see the module docstring for the layouts)."""
    return _read_folder(Path(folder), None)


def check_folder(folder: str | Path) -> list[str]:
    """Every problem in a dataset folder, one line each naming its file; [] when all is fine."""
    problems: list[str] = []
    try:
        _read_folder(Path(folder), problems)
    except LightsegError as e:
        problems.append(str(e))
    return problems
