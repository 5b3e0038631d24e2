"""Readers for real data: DICOM series, NIfTI, VICTRE label volumes, PNG/NPY/NPZ slice pairs.

Every reader returns ``Volume``s: ``hu`` float32 (z, y, x) in HU, ``mask`` uint8 (z, y, x) or
None, ``spacing`` (dz, dy, dx) in mm and the ``source`` file. Bad input raises one
``LightsegError`` line that names the offending file(s); headers are checked (shapes, sizes,
types) before any data is read or allocated, so a hostile file cannot exhaust memory.

Folder conventions (``read_folder``):
- ``*.npz`` with ``hu`` (2D or 3D) and ``mask``;
- image + mask pairs named ``X.ext`` and ``X_mask.ext`` (also ``_label``, ``_seg``), or the same
  names under ``images/`` and ``masks/`` (or ``labels/``); ext is .png, .npy, .nii or .nii.gz.
  PNG grey values g (0..255, first channel) are mapped back to HU with the default window
  (-300..+300 HU): hu = -300 + 600 * g / 255; 16-bit grey PNGs follow DeepLesion's rule
  hu = value - 32768, clipped to -1024..3071 (an image with no value in range is refused);
  palette and 1-bit PNGs are refused as images, and as masks give their indices / 0-1;
- ``*.mhd`` VICTRE label volumes (mass label 200 is the lesion);
- DICOM files (any name): one CT series, optionally with a label volume ``mask.nii[.gz]``
  (or ``label``/``seg``) whose voxel grid (i=column, j=row, k=slice in sorted order) matches.
"""

from __future__ import annotations

import functools
import gzip
import io
import logging
import math
import os
import stat
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError, one_line

MASK_SUFFIXES = ("_mask", "_label", "_seg")
IMAGE_EXTS = (".png", ".npy", ".nii.gz", ".nii")
DICOM_LABEL_STEMS = ("mask", "label", "seg")  # label volume next to a DICOM series

# VICTRE label -> HU (non-contrast dedicated breast CT, see docs/data.md)
VICTRE_LABELS = {"air": 0, "fat": 1, "skin": 2, "glandular": 29, "nipple": 33, "muscle": 40,
                 "ligament": 88, "tdlu": 95, "duct": 125, "artery": 150, "vein": 225,
                 "mass": 200, "calcification": 250}  # fmt: skip
VICTRE_HU = {0: -1000.0, 1: -110.0, 2: 50.0, 29: 40.0, 33: 250.0, 40: -20.0, 88: 40.0,
             95: 40.0, 125: 40.0, 150: 60.0, 225: 55.0, 200: 60.0, 250: 600.0}  # fmt: skip

#: Size bounds, checked against headers before anything is allocated.
MAX_VOXELS = 1 << 30  # one volume (a VICTRE phantom is ~0.8 G voxels)
MAX_SLICE_SIDE = 4096  # one 2D image (the model input is at most 2048)
MAX_HEADER_BYTES = 1 << 16  # a .mhd header
MAX_IMAGE_FILE_BYTES = 1 << 28  # one PNG file
#: 16-bit PNG rule (DeepLesion's): HU = value - 32768, clipped to the CT range below.
PNG16_OFFSET = 32768
CT_HU_RANGE = (-1024.0, 3071.0)
_NUMERIC_KINDS = "biuf"  # bool, int, uint, float; strings, complex, objects are refused


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


def _check_array(a: np.ndarray, src: str, what: str) -> np.ndarray:
    """A 2D or 3D, non-empty, real numeric array of bounded size; else one clear error."""
    a = np.asarray(a)
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise LightsegError(f"{src}: {what} has dtype {a.dtype}; expected real numbers")
    if a.ndim not in (2, 3):
        raise LightsegError(f"{src}: expected a 2D slice or 3D volume, got {what} shape {a.shape}")
    if 0 in a.shape:
        raise LightsegError(f"{src}: {what} is empty (shape {a.shape})")
    if a.size > MAX_VOXELS:
        raise LightsegError(f"{src}: {what} has {a.size:,} voxels (at most {MAX_VOXELS:,})")
    return a


def _volume(hu, mask, spacing, src: str, msrc: str = "") -> Volume:
    hu = _check_array(hu, src, "image")
    if mask is not None:
        mask = _check_array(mask, msrc or src, "mask")
        if mask.dtype.kind == "f" and not np.isfinite(mask).all():
            raise LightsegError(f"{msrc or src}: mask contains NaN or Inf values")
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: refused
        hu = hu.astype(np.float32, copy=False)
    if hu.ndim == 2:
        hu = hu[None]
        mask = mask[None] if mask is not None and mask.ndim == 2 else mask
    if mask is not None:
        mask = (mask > 0).astype(np.uint8)
    _checked(hu, mask, src, msrc)
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise LightsegError(f"{src}: voxel spacing {sp} must be three positive numbers")
    return Volume(hu, mask, sp, src)


def _quiet(fn):
    """Run a reader with library warnings and nibabel's log output silenced: a bad file ends
    in the reader's one LightsegError line, with nothing printed before it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        loggers = [logging.getLogger(n) for n in ("nibabel", "nibabel.global")]
        before = [lg.disabled for lg in loggers]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for lg in loggers:
                lg.disabled = True
            try:
                return fn(*args, **kwargs)
            finally:
                for lg, b in zip(loggers, before, strict=True):
                    lg.disabled = b

    return wrapper


# --- NPZ / NPY / PNG -------------------------------------------------------------------------


def _npy_header(fh, src: str, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header, refusing what could not be a slice
    or volume."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(fh)
    except Exception as e:  # numpy raises ValueError/SyntaxError/... for a bad header
        raise LightsegError(f"{src}: {what} is not a .npy array ({type(e).__name__})") from None
    if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.shape:
        raise LightsegError(f"{src}: {what} has dtype {dtype}; expected real numbers")
    if len(shape) not in (0, 2, 3):
        raise LightsegError(f"{src}: {what} has shape {shape}; expected a 2D slice or 3D volume")
    if math.prod(shape) > MAX_VOXELS:
        raise LightsegError(f"{src}: {what} has shape {shape}; at most {MAX_VOXELS:,} voxels")
    return tuple(shape), bool(fortran), dtype


def _read_npy(fh, src: str, what: str, size: int) -> np.ndarray:
    """Read one array after checking its header and that ``size`` bytes hold exactly it."""
    shape, fortran, dtype = _npy_header(fh, src, what)
    n = math.prod(shape) * dtype.itemsize
    if fh.tell() + n != size:
        raise LightsegError(f"{src}: {what} holds {size:,} bytes; its header needs another size")
    buf = bytearray(n)
    view, pos = memoryview(buf), 0
    while pos < n:
        k = fh.readinto(view[pos:])
        if not k:
            raise LightsegError(f"{src}: {what} is truncated")
        pos += k
    a = np.frombuffer(buf, dtype=dtype)
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


@_quiet
def read_npz(path: str | Path) -> Volume:
    """``.npz`` with ``hu`` (HU, 2D or 3D), ``mask`` and optionally ``pixel_mm``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in ("hu", "mask", "pixel_mm"):
                if f"{key}.npy" not in names:
                    if key == "pixel_mm":
                        continue
                    raise LightsegError(
                        f"{path}: npz needs arrays 'hu' and 'mask' (missing '{key}')"
                    )
                info = zf.getinfo(f"{key}.npy")
                with zf.open(info) as fh:
                    arrays[key] = _read_npy(fh, str(path), f"'{key}'", info.file_size)
    except LightsegError:
        raise
    except Exception as e:  # zip/CRC/format errors all mean the same to a user
        raise LightsegError(f"{path}: not a readable npz file ({type(e).__name__})") from None
    px = 1.0
    if "pixel_mm" in arrays:
        a = arrays["pixel_mm"]
        px = float(a.reshape(-1)[0]) if a.size == 1 and a.dtype.kind in "iuf" else float("nan")
        if not (math.isfinite(px) and px > 0):
            raise LightsegError(f"{path}: pixel_mm must be one positive number")
    return _volume(arrays["hu"], arrays["mask"], (px, px, px), str(path))


def _read_png(path: Path, role: str) -> np.ndarray:
    """A PNG's values. Images: 8-bit grey (first channel of RGB) or 16-bit grey; palette and
    1-bit images are refused (their values are not intensities). Masks: any of these, palette
    masks give their indices and 1-bit masks 0/1; nonzero = lesion."""
    from PIL import Image

    if path.stat().st_size > MAX_IMAGE_FILE_BYTES:
        raise LightsegError(f"{path}: larger than {MAX_IMAGE_FILE_BYTES >> 20} MiB")
    # from memory: Pillow reads chunk lengths from the file, and a file object would allocate
    # them up front; BytesIO never returns more than the file holds
    data = io.BytesIO(path.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we bound it below
        with Image.open(data) as im:
            if im.format != "PNG":
                raise LightsegError(f"{path}: not a PNG file ({im.format})")
            w, h = im.size
            if not (1 <= w <= MAX_SLICE_SIDE and 1 <= h <= MAX_SLICE_SIDE):
                raise LightsegError(f"{path}: {w}x{h} pixels (1..{MAX_SLICE_SIDE} per side)")
            mode = im.mode
            if role == "image" and mode in ("P", "PA", "1"):
                raise LightsegError(
                    f"{path}: {'palette' if mode != '1' else '1-bit'} PNG refused as an image; "
                    "save the slice as 8-bit or 16-bit greyscale"
                )
            if mode not in (
                "L",
                "LA",
                "RGB",
                "RGBA",
                "I;16",
                "I;16B",
                "I;16L",
                "I",
                "P",
                "PA",
                "1",
            ):
                raise LightsegError(f"{path}: PNG mode {mode} is not supported")
            a = np.asarray(im)
    if a.ndim == 3:
        a = a[..., 0]
    if mode == "I":  # older Pillow reads 16-bit grey as int32
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise LightsegError(f"{path}: values outside 0..65535")
        a = a.astype(np.uint16)
    return a


def _read_image_2d(path: Path, role: str = "image") -> np.ndarray:
    """Raw values of one 2D image file (.png: grey values; .npy: the array)."""
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as fh:
                a = _read_npy(fh, str(path), "array", path.stat().st_size)
        else:
            a = _read_png(path, role)
    except LightsegError:
        raise
    except Exception as e:
        raise LightsegError(f"{path}: not a readable image ({type(e).__name__})") from None
    return a


def png_to_hu(g: np.ndarray, pre: Preprocessing | None = None) -> np.ndarray:
    """Grey values 0..255 -> HU through the (default) window."""
    pre = pre or Preprocessing()
    lo = pre.window_level - pre.window_width / 2
    return (lo + pre.window_width * np.asarray(g, np.float32) / 255.0).astype(np.float32)


def png16_to_hu(v: np.ndarray, src: str = "") -> np.ndarray:
    """16-bit values -> HU by DeepLesion's rule, HU = value - 32768, clipped to -1024..3071.

    An image with no value inside that range was stored another way (e.g. HU + 1024) and is
    refused rather than silently mapped to air.
    """
    hu = np.asarray(v, np.float32) - PNG16_OFFSET
    lo, hi = CT_HU_RANGE
    if not ((hu >= lo) & (hu <= hi)).any():
        raise LightsegError(
            f"{src}: 16-bit PNG values do not follow the HU + {PNG16_OFFSET} rule "
            f"(none in {int(lo + PNG16_OFFSET)}..{int(hi + PNG16_OFFSET)})"
        )
    return np.clip(hu, lo, hi)


@_quiet
def read_pair(image: str | Path, mask: str | Path) -> Volume:
    """One image + mask pair (.png, .npy, .nii, .nii.gz); PNG values become HU (8-bit through
    the default window, 16-bit by :func:`png16_to_hu`)."""
    image, mask = Path(image), Path(mask)
    if _ext(image) in (".nii", ".nii.gz"):
        return read_nifti(image, mask)
    a = _read_image_2d(image, "image")
    if image.suffix == ".png":
        hu = png16_to_hu(a, str(image)) if a.dtype == np.uint16 else png_to_hu(a)
    else:
        hu = a
    m = _read_image_2d(mask, "mask")
    return _volume(hu, m, (1.0, 1.0, 1.0), str(image), str(mask))


# --- NIfTI -----------------------------------------------------------------------------------


def _gz_length_at_least(path: Path, n: int) -> bool:
    """Whether ``path`` decompresses to at least ``n`` bytes (streamed, bounded memory)."""
    got = 0
    with gzip.open(path) as fh:
        while got < n:
            chunk = fh.read(min(1 << 20, n - got))
            if not chunk:
                return False
            got += len(chunk)
    return True


def _nifti_array(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = tuple(int(d) for d in img.shape)
        dtype = np.dtype(img.get_data_dtype())
        offset = int(img.header.get_data_offset())
    except Exception as e:
        raise LightsegError(f"{path}: not a readable NIfTI file ({type(e).__name__})") from None
    if dtype.kind not in _NUMERIC_KINDS:
        raise LightsegError(f"{path}: NIfTI data type {dtype} is not real numbers")
    if len(shape) not in (2, 3) or 0 in shape or math.prod(shape) > MAX_VOXELS:
        raise LightsegError(f"{path}: expected a non-empty 2D/3D NIfTI volume, got shape {shape}")
    need = offset + math.prod(shape) * dtype.itemsize
    try:
        if path.name.endswith(".gz"):
            enough = _gz_length_at_least(path, need)
        else:
            enough = path.stat().st_size >= need
        if not enough:
            raise LightsegError(f"{path}: NIfTI data is shorter than its header says")
        a = np.asarray(img.dataobj, dtype=np.float32)
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    except LightsegError:
        raise
    except Exception as e:
        raise LightsegError(f"{path}: not a readable NIfTI file ({type(e).__name__})") from None
    if a.ndim == 2:
        a, zooms = a[..., None], (*zooms[:2], 1.0)
    if a.ndim != 3:
        raise LightsegError(f"{path}: expected a 3D NIfTI volume, got shape {a.shape}")
    return a.transpose(2, 1, 0), (zooms[2], zooms[1], zooms[0])  # (i,j,k) -> (z,y,x)


@_quiet
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
        if path.stat().st_size > MAX_HEADER_BYTES:
            raise LightsegError(f"{path}: .mhd header larger than {MAX_HEADER_BYTES} bytes")
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LightsegError(f"{path}: cannot read the .mhd header ({type(e).__name__})") from None
    hdr = {}
    for line in lines:
        if "=" in line:
            k, v = line.split("=", 1)
            hdr[k.strip()] = v.strip()
    return hdr


def _victre_data_file(mhd: Path, name: str) -> Path:
    """The label data file: a regular file inside the .mhd's folder (``.gz`` tried too)."""
    folder = mhd.parent.resolve()
    if not name or name.upper() == "LOCAL" or "\x00" in name:
        raise LightsegError(f"{mhd}: ElementDataFile {name!r} is not a file name")
    for cand in (mhd.parent / name, mhd.parent / (name + ".gz")):
        real = cand.resolve()
        if real != folder and folder not in real.parents:
            raise LightsegError(f"{mhd}: ElementDataFile {name!r} points outside {mhd.parent}")
        if os.path.lexists(cand):
            try:
                regular = stat.S_ISREG(os.stat(real).st_mode)
            except OSError:
                regular = False
            if not regular:
                raise LightsegError(f"{cand}: not a regular file")
            return cand
    raise LightsegError(f"{mhd}: ElementDataFile {name!r} not found")


@_quiet
def read_victre(mhd: str | Path, hu_map: dict[int, float] | None = None) -> Volume:
    """VICTRE label volume (.mhd + .raw/.raw.gz, 8-bit labels) -> HU volume + mass mask (200).

    The header is checked before reading: 3 positive sizes (at most :data:`MAX_VOXELS`), 3
    positive spacings, MET_UCHAR, a data file inside the folder whose size matches.
    """
    mhd = Path(mhd)
    hdr = _parse_mhd(mhd)
    try:
        dims = [int(v) for v in hdr["DimSize"].split()]
        spacing = [float(v) for v in hdr.get("ElementSpacing", "1 1 1").split()]
        name = hdr["ElementDataFile"]
    except KeyError as e:
        raise LightsegError(f"{mhd}: bad .mhd header (no {e})") from None
    except ValueError:
        raise LightsegError(
            f"{mhd}: bad .mhd header (DimSize/ElementSpacing not numbers)"
        ) from None
    if hdr.get("ElementType", "MET_UCHAR") != "MET_UCHAR" or len(dims) != 3:
        raise LightsegError(f"{mhd}: expected a 3D MET_UCHAR label volume")
    if hdr.get("NDims", "3") != "3" or hdr.get("CompressedData", "False").lower() == "true":
        raise LightsegError(f"{mhd}: expected NDims = 3 and uncompressed (or .gz) data")
    if min(dims) < 1 or math.prod(dims) > MAX_VOXELS:
        raise LightsegError(
            f"{mhd}: DimSize {dims} must be positive, at most {MAX_VOXELS:,} voxels"
        )
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise LightsegError(f"{mhd}: ElementSpacing must be 3 positive numbers, got {spacing}")
    raw = _victre_data_file(mhd, name)
    n = math.prod(dims)
    try:
        if raw.name.endswith(".gz"):
            with gzip.open(raw) as fh:
                data = fh.read(n + 1)  # bounded: one byte more tells a too-long stream
        else:
            size = raw.stat().st_size
            if size != n:
                raise LightsegError(f"{raw}: {size} bytes, the header {mhd.name} needs {n}")
            data = raw.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise LightsegError(f"{raw}: cannot read label data ({type(e).__name__})") from None
    if len(data) != n:
        more = "more than" if len(data) > n else f"{len(data)} bytes,"
        raise LightsegError(f"{raw}: {more} the header {mhd.name} needs {n}")
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


def _dicom_numbers(ds, f: Path, name: str, n: int, default: list[float]) -> list[float]:
    """``n`` finite numbers from a DICOM attribute (``default`` when absent)."""
    try:
        v = ds.get(name, None)
        v = getattr(v, "value", v)
    except Exception:
        raise LightsegError(f"{f}: {name} is unreadable") from None
    if v is None or (isinstance(v, (str, bytes)) and not v.strip()):
        return list(default)
    vals = [v] if isinstance(v, (str, bytes, int, float)) else list(v)
    try:
        out = [float(x) for x in vals]
    except (TypeError, ValueError):
        raise LightsegError(f"{f}: {name} is not numeric ({one_line(repr(v), 60)})") from None
    if len(out) != n or not all(math.isfinite(x) for x in out):
        raise LightsegError(f"{f}: {name} needs {n} finite number(s), got {one_line(repr(v), 60)}")
    return out


def _check_pixel_data(ds, f: Path) -> None:
    """One grey frame of at most MAX_SLICE_SIDE per side whose (uncompressed) bytes are all
    there: checked before pydicom allocates the image from Rows x Columns."""
    (rows,) = _dicom_numbers(ds, f, "Rows", 1, [0])
    (cols,) = _dicom_numbers(ds, f, "Columns", 1, [0])
    (bits,) = _dicom_numbers(ds, f, "BitsAllocated", 1, [0])
    (spp,) = _dicom_numbers(ds, f, "SamplesPerPixel", 1, [1])
    (frames,) = _dicom_numbers(ds, f, "NumberOfFrames", 1, [1])
    if not (1 <= rows <= MAX_SLICE_SIDE and 1 <= cols <= MAX_SLICE_SIDE):
        raise LightsegError(f"{f}: {rows:g}x{cols:g} pixels (1..{MAX_SLICE_SIDE} per side)")
    if spp != 1 or frames != 1 or bits not in (8, 16, 32):
        raise LightsegError(f"{f}: expected one grey frame of 8, 16 or 32 bits per pixel")
    data = ds.get("PixelData", None)
    if not isinstance(data, bytes):
        raise LightsegError(f"{f}: no pixel data")
    try:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        compressed = bool(getattr(syntax, "is_compressed", False))
    except Exception:  # pydicom raises ValueError for a UID that is no transfer syntax
        raise LightsegError(f"{f}: unknown transfer syntax") from None
    if not compressed and len(data) < rows * cols * bits // 8:
        raise LightsegError(f"{f}: pixel data truncated ({len(data)} bytes for {rows:g}x{cols:g})")


def _dicom_slice(f: Path) -> tuple[object, np.ndarray, dict]:
    """One CT file: (dataset, HU slice, geometry), every header value checked. pydicom parses
    elements lazily, so any access may raise: all of it ends in one LightsegError."""
    import pydicom

    try:
        # from memory: pydicom reads element lengths from the file and a file object would
        # allocate them up front; BytesIO never returns more than the file holds
        ds = pydicom.dcmread(io.BytesIO(f.read_bytes()))
        return _dicom_checked(ds, f)
    except LightsegError:
        raise
    except Exception as e:  # pydicom raises many types for damaged files
        raise LightsegError(f"{f}: not a readable DICOM file ({type(e).__name__})") from None


def _dicom_checked(ds, f: Path) -> tuple[object, np.ndarray, dict]:
    modality = str(ds.get("Modality", "") or "")
    if modality != "CT":
        raise LightsegError(f"{f}: modality {modality or 'missing'!r}, expected CT")
    _check_pixel_data(ds, f)
    try:
        px = np.asarray(ds.pixel_array)
    except Exception as e:
        raise LightsegError(
            f"{f}: pixel data unreadable or truncated ({one_line(e, 120)})"
        ) from None
    if px.ndim != 2 or 0 in px.shape or px.dtype.kind not in "iuf":
        raise LightsegError(f"{f}: expected one grey slice, got pixel data {px.shape} {px.dtype}")
    (slope,) = _dicom_numbers(ds, f, "RescaleSlope", 1, [1.0])
    (intercept,) = _dicom_numbers(ds, f, "RescaleIntercept", 1, [0.0])
    ipp = "ImagePositionPatient" in ds
    geo = {
        "orient": _dicom_numbers(ds, f, "ImageOrientationPatient", 6, [1, 0, 0, 0, 1, 0]),
        "ipp": _dicom_numbers(ds, f, "ImagePositionPatient", 3, []) if ipp else None,
        "instance": _dicom_numbers(ds, f, "InstanceNumber", 1, [0.0])[0],
        "spacing": _dicom_numbers(ds, f, "PixelSpacing", 2, [1.0, 1.0]),
        "thickness": _dicom_numbers(ds, f, "SliceThickness", 1, [1.0])[0],
        "series": str(ds.get("SeriesInstanceUID", "") or ""),
    }
    if not all(s > 0 for s in geo["spacing"]):
        raise LightsegError(f"{f}: PixelSpacing must be positive, got {geo['spacing']}")
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN results are refused later
        hu = px.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return ds, hu, geo


@_quiet
def read_dicom_series(folder: str | Path, label: str | Path | None = None) -> Volume:
    """One CT series: HU = pixel * RescaleSlope + RescaleIntercept, slices sorted along the
    slice normal by ImagePositionPatient, spacing kept; an optional NIfTI label volume."""
    folder = Path(folder)
    files = _dicom_files(folder)
    if not files:
        raise LightsegError(f"{folder}: no DICOM files")
    items = []
    for f in files:
        _, hu, geo = _dicom_slice(f)
        items.append((f, geo, hu))
    series = {geo["series"] for _, geo, _ in items}
    if len(series) > 1:
        first = {}
        for f, geo, _ in items:
            first.setdefault(geo["series"], f.name)
        raise LightsegError(
            f"{folder}: mixed series ({len(series)} SeriesInstanceUIDs, e.g. "
            + ", ".join(sorted(first.values()))
            + ")"
        )
    shapes = {hu.shape for _, _, hu in items}
    if len(shapes) > 1:
        odd = [f.name for f, _, hu in items if hu.shape != items[0][2].shape]
        raise LightsegError(f"{folder}: slices of different sizes ({', '.join(odd)})")
    f0, geo0, _ = items[0]
    orient = np.array(geo0["orient"], float)
    normal = np.cross(orient[:3], orient[3:])
    if np.linalg.norm(normal) < 1e-3:
        raise LightsegError(f"{f0}: ImageOrientationPatient {geo0['orient']} is degenerate")

    def pos(item) -> float:
        ipp = item[1]["ipp"]
        if ipp is None:
            return float(item[1]["instance"])
        return float(np.dot(normal, np.array(ipp, float)))

    items.sort(key=pos)
    z = [pos(it) for it in items]
    dz = float(np.median(np.diff(z))) if len(z) > 1 else geo0["thickness"]
    if len(z) > 1 and dz == 0:
        raise LightsegError(f"{folder}: slices share one ImagePositionPatient (duplicates?)")
    dy, dx = geo0["spacing"]
    hu = np.stack([hu for _, _, hu in items])
    mask = None
    if label is not None:
        mask, _ = _nifti_array(Path(label))
    return _volume(hu, mask, (abs(dz) or 1.0, dy, dx), str(folder), str(label or ""))


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
