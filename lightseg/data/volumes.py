"""A user's scan with its geometry: DICOM (series folder, single or multi-frame file), NIfTI, PNG.

:func:`read_scan` returns a :class:`Scan`: ``hu`` float32 (z, y, x) = (slice, row, column) in HU
and ``affine``, the 4 x 4 map from voxel (column, row, slice) to RAS+ millimetres (NIfTI's
convention; DICOM's LPS patient coordinates are flipped in x and y). Slices are in order along
the slice normal.

- DICOM: CT only (HU = stored * RescaleSlope + RescaleIntercept, per frame for enhanced
  multi-frame files); geometry from ImagePositionPatient, ImageOrientationPatient, PixelSpacing
  (per-frame functional groups in multi-frame files). A folder must hold one series, or the
  series to read is named by its SeriesInstanceUID.
- NIfTI: 3D (or 4D with one volume), values taken as HU, the header kept for the mask.
- PNG: grey values 0..255 mapped to HU through the model's window, 1 mm pixels assumed.

Bad or unsupported input raises one :class:`~lightseg.errors.LightsegError` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.readers import _dicom_files, _read_image_2d, png_to_hu
from lightseg.errors import LightsegError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Scan:
    """One volume in HU with the geometry needed to write its mask back in place."""

    hu: np.ndarray  # float32 (z, y, x)
    affine: np.ndarray  # 4 x 4: voxel (column, row, slice) -> RAS+ mm
    kind: str  # "dicom", "nifti" or "png"
    source: str
    modality: str = ""
    series_uid: str = ""
    files: list[Path] = field(default_factory=list)  # DICOM: the source file of each slice
    frames: list[int] = field(default_factory=list)  # DICOM multi-frame: source frame (1-based)
    nifti_header: object = None  # NIfTI input: its nibabel header, copied into the mask
    notes: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in mm: the lengths of the affine's slice, row and column steps."""
        n = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(n[2]), float(n[1]), float(n[0])

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


def read_scan(
    path: str | Path, series: str | None = None, pre: Preprocessing | None = None
) -> Scan:
    """Read a DICOM folder or file, a NIfTI (.nii, .nii.gz) or a PNG (window of ``pre``)."""
    path = Path(path)
    if not path.exists():
        raise LightsegError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_dicom_folder(path, series)
    if series:
        raise LightsegError("--series picks a series in a DICOM folder; the input is one file")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_scan(path)
    if name.endswith(".png"):
        return read_png_scan(path, pre)
    return read_dicom_file(path)


# --- NIfTI / PNG -----------------------------------------------------------------------------


def read_nifti_scan(path: str | Path) -> Scan:
    """A 3D NIfTI volume (a 4D one only if it holds a single volume); values are taken as HU."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        shape = img.shape
        if len(shape) > 3 and int(np.prod(shape[3:])) > 1:
            raise LightsegError(
                f"{path}: {len(shape)}D NIfTI of shape {shape}; give one 3D volume "
                "(e.g. nibabel.funcs.four_to_three)"
            )
        data = np.asarray(img.dataobj[(...,) + (0,) * (len(shape) - 3)], dtype=np.float32)
    except LightsegError:
        raise
    except Exception as e:
        raise LightsegError(f"{path}: not a readable NIfTI file ({type(e).__name__})") from None
    if data.ndim == 2:
        data = data[..., None]
    hu = np.ascontiguousarray(data.transpose(2, 1, 0))  # (i, j, k) -> (z, y, x)
    _finite(hu, path)
    notes = []
    lo, hi = float(hu.min()), float(hu.max())
    if lo > -500 or hi > 5000:
        notes.append(f"values {lo:g}..{hi:g} do not look like CT in HU; mask may be meaningless")
    affine = np.asarray(img.affine, float)
    return Scan(hu, affine, "nifti", str(path), nifti_header=img.header, notes=notes)


def read_png_scan(path: str | Path, pre: Preprocessing | None = None) -> Scan:
    """An 8-bit PNG slice; grey 0..255 becomes HU through ``pre``'s window."""
    path = Path(path)
    a = _read_image_2d(path)
    if a.dtype != np.uint8:
        raise LightsegError(f"{path}: {a.dtype} PNG; expected 8-bit grey values 0..255")
    notes = ["PNG: no pixel spacing, 1 mm pixels assumed (volume in mL is nominal)"]
    return Scan(png_to_hu(a, pre)[None], np.eye(4), "png", str(path), notes=notes)


def _finite(hu: np.ndarray, where: Path) -> None:
    if not np.isfinite(hu).all():
        raise LightsegError(f"{where}: image contains NaN or Inf voxels")


# --- DICOM -----------------------------------------------------------------------------------


def _dcmread(path: Path, header_only: bool, non_dicom_ok: bool = False):
    """The dataset; ``None`` for a file that is not DICOM at all when ``non_dicom_ok``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except InvalidDicomError:
        if non_dicom_ok:
            return None
        raise LightsegError(f"{path}: not a DICOM, NIfTI or PNG file") from None
    except Exception as e:
        raise LightsegError(f"{path}: not a readable DICOM file ({type(e).__name__})") from None


def _check_ct(ds, where: Path) -> None:
    modality = str(ds.get("Modality", "")) or "missing"
    if modality != "CT":
        raise LightsegError(
            f"{where}: modality {modality}; lightseg segments CT only (the model was trained on "
            "breast CT in HU)"
        )


def _check_decoder(ds, where: Path) -> None:
    """One clear line when the pixel data is compressed and pydicom has no decoder installed."""
    from pydicom.pixels import get_decoder

    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise LightsegError(f"{where}: {ts.name} pixel data, which pydicom cannot decode") from None
    if not decoder.is_available:
        options = [m.split(" requires ", 1)[-1] for m in decoder.missing_dependencies]
        raise LightsegError(
            f"{where}: pixel data is {ts.name} compressed and no decoder is installed "
            f"(install one of: {'; '.join(options)})"
        )


def _pixels(ds, where: Path) -> np.ndarray:
    try:
        return np.asarray(ds.pixel_array)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LightsegError(f"{where}: pixel data unreadable ({first})") from None


def _rescale(item) -> tuple[float, float]:
    return float(item.get("RescaleSlope", 1.0) or 1.0), float(item.get("RescaleIntercept", 0.0))


def read_dicom_file(path: str | Path) -> Scan:
    """One CT file: a single slice, or every frame of a multi-frame (enhanced) CT."""
    path = Path(path)
    ds = _dcmread(path, header_only=True)
    _check_ct(ds, path)
    _check_decoder(ds, path)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return _read_multiframe(path)
    return _read_series([path], path)


def read_dicom_folder(folder: str | Path, series: str | None = None) -> Scan:
    """The CT series in ``folder`` (or the one whose SeriesInstanceUID is ``series``)."""
    folder = Path(folder)
    groups: dict[str, list[tuple[Path, object]]] = {}
    skipped = 0
    for f in _dicom_files(folder):
        ds = _dcmread(f, header_only=True, non_dicom_ok=True)
        if ds is None:
            skipped += 1
        elif "Rows" in ds:  # an image (DICOMDIR and other non-image objects are skipped)
            groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    if not groups:
        raise LightsegError(
            f"{folder}: no DICOM images in this folder (give a NIfTI or PNG file by its path)"
        )
    if series is not None:
        if series not in groups:
            raise LightsegError(f"{folder}: no series {series} here ({_series_list(groups)})")
        uid = series
    elif len(groups) > 1:
        raise LightsegError(
            f"{folder}: {len(groups)} series ({_series_list(groups)}); none was read: pass "
            "--series UID to pick one"
        )
    else:
        uid = next(iter(groups))
    members = groups[uid]
    for f, ds in members:
        _check_ct(ds, f)
        _check_decoder(ds, f)
    multi = [f for f, ds in members if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        if len(members) > 1:
            raise LightsegError(
                f"{folder}: series {uid} mixes {len(multi)} multi-frame file(s) with other files; "
                "give the multi-frame file itself"
            )
        return _read_multiframe(multi[0])
    scan = _read_series([f for f, _ in members], folder)
    if skipped:
        scan.notes.append(f"{skipped} non-DICOM file(s) in {folder} ignored")
    return scan


def _series_list(groups: dict) -> str:
    parts = [
        f"{uid or '(no UID)'}: {str(m[0][1].get('Modality', '?'))}, {len(m)} file(s)"
        for uid, m in groups.items()
    ]
    return "; ".join(parts[:5]) + ("; ..." if len(parts) > 5 else "")


def _read_series(files: list[Path], where: Path) -> Scan:
    """Single-frame CT files of one series, sorted along the slice normal."""
    items = []
    for f in files:
        ds = _dcmread(f, header_only=False)
        px = _pixels(ds, f)
        if px.ndim != 2:
            raise LightsegError(f"{f}: pixel data of shape {px.shape}; expected one grey slice")
        slope, intercept = _rescale(ds)
        items.append((f, ds, px.astype(np.float32) * np.float32(slope) + np.float32(intercept)))
    shapes = {hu.shape for _, _, hu in items}
    if len(shapes) > 1:
        raise LightsegError(f"{where}: slices of different sizes {sorted(shapes)}")
    ds0 = items[0][1]
    planes = [_plane(ds, ds, f) for f, ds, _ in items]
    order, affine, notes = _geometry(planes, ds0, where)
    hu = np.stack([items[i][2] for i in order])
    _finite(hu, where)
    uid = str(ds0.get("SeriesInstanceUID", ""))
    files = [items[i][0] for i in order]
    return Scan(hu, affine, "dicom", str(where), "CT", uid, files=files, notes=notes)


def _group(ds, frame: int | None, seq: str):
    """The functional-group item ``seq`` for ``frame`` (per-frame first, then shared), or None."""
    for top in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(top)
        if not groups:
            continue
        item = groups[frame if top.startswith("PerFrame") and frame is not None else 0]
        if seq in item and len(item[seq].value):
            return item[seq][0]
    return None


def _plane(ds, source, where: Path, frame: int | None = None) -> dict:
    """Position, orientation and pixel spacing of one slice (``frame`` of a multi-frame file)."""
    pos = _group(ds, frame, "PlanePositionSequence") or source
    ori = _group(ds, frame, "PlaneOrientationSequence") or source
    meas = _group(ds, frame, "PixelMeasuresSequence") or source
    ipp = pos.get("ImagePositionPatient") or ds.get("ImagePositionPatient")
    iop = ori.get("ImageOrientationPatient") or ds.get("ImageOrientationPatient")
    ps = meas.get("PixelSpacing") or ds.get("PixelSpacing")
    thick = meas.get("SliceThickness") or ds.get("SliceThickness")
    return {
        "ipp": None if ipp is None else np.array(ipp, float),
        "iop": None if iop is None else np.array(iop, float),
        "ps": None if ps is None else np.array(ps, float),
        "thickness": None if thick in (None, "") else float(thick),
        "instance": frame if frame is not None else int(ds.get("InstanceNumber") or 0),
        "where": where,
    }


def _geometry(planes: list[dict], ds0, where: Path) -> tuple[list[int], np.ndarray, list[str]]:
    """Slice order along the normal, the RAS affine and notes on assumptions made."""
    notes: list[str] = []
    iop = planes[0]["iop"]
    if iop is None or len(iop) != 6:
        notes.append("no ImageOrientationPatient: axial orientation assumed")
        iop = np.array([1.0, 0, 0, 0, 1, 0])
    for p in planes:
        if p["iop"] is not None and not np.allclose(p["iop"], iop, atol=1e-4):
            raise LightsegError(
                f"{p['where']}: slice orientation {p['iop'].round(4).tolist()} differs from "
                f"{iop.round(4).tolist()} (a localizer in the series?)"
            )
    ps = planes[0]["ps"]
    if ps is None or len(ps) != 2:
        notes.append("no PixelSpacing: 1 mm pixels assumed")
        ps = np.array([1.0, 1.0])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    n = len(planes)
    if any(p["ipp"] is None for p in planes):
        if planes[0]["ipp"] is None:
            notes.append("no ImagePositionPatient: origin at 0")
        if n > 1:
            notes.append("slice positions missing: slices in instance order, one thickness apart")
        order = sorted(range(n), key=lambda i: planes[i]["instance"])
        origin = planes[order[0]]["ipp"]
        origin = np.zeros(3) if origin is None else origin
        step = normal * _thickness(planes, ds0, notes)
    else:
        d = np.array([float(normal @ p["ipp"]) for p in planes])
        order = [int(i) for i in np.argsort(d, kind="stable")]
        origin = planes[order[0]]["ipp"]
        if n == 1:
            step = normal * _thickness(planes, ds0, notes)
        else:
            gaps = np.diff(d[order])
            if gaps.min() < 1e-3:
                raise LightsegError(
                    f"{where}: {int((gaps < 1e-3).sum()) + 1} slices share a position "
                    "(duplicates, or several acquisitions in one series)"
                )
            if gaps.max() - gaps.min() > 0.01 * float(np.median(gaps)):
                notes.append(
                    f"uneven slice spacing ({gaps.min():.3g}..{gaps.max():.3g} mm): the affine "
                    "uses the mean step"
                )
            step = (planes[order[-1]]["ipp"] - origin) / (n - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]  # along a row: column index i, spacing between columns
    lps[:3, 1] = col_dir * ps[0]  # down a column: row index j, spacing between rows
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return order, LPS_TO_RAS @ lps, notes


def _thickness(planes: list[dict], ds0, notes: list[str]) -> float:
    for v in (ds0.get("SpacingBetweenSlices"), planes[0]["thickness"]):
        if v not in (None, "") and float(v) > 0:
            return float(v)
    notes.append("no slice thickness: 1 mm assumed")
    return 1.0


def _read_multiframe(path: Path) -> Scan:
    """Every frame of a multi-frame CT, placed by its per-frame plane position."""
    ds = _dcmread(path, header_only=False)
    px = _pixels(ds, path)
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    if px.ndim == 2 and nf == 1:
        px = px[None]
    if px.ndim != 3 or px.shape[0] != nf:
        raise LightsegError(f"{path}: pixel data of shape {px.shape}; expected {nf} grey frames")
    hu = np.empty(px.shape, np.float32)
    planes = []
    for i in range(nf):
        tf = _group(ds, i, "PixelValueTransformationSequence") or ds
        slope, intercept = _rescale(tf)
        hu[i] = px[i].astype(np.float32) * np.float32(slope) + np.float32(intercept)
        planes.append(_plane(ds, ds, path, frame=i))
    if nf > 1 and any(_group(ds, i, "PlanePositionSequence") is None for i in range(nf)):
        for p in planes[1:]:  # no per-frame positions: frames stacked from the first one
            p["ipp"] = None
    order, affine, notes = _geometry(planes, ds, path)
    hu = hu[order]
    _finite(hu, path)
    uid = str(ds.get("SeriesInstanceUID", ""))
    frames = [i + 1 for i in order]
    return Scan(hu, affine, "dicom", str(path), "CT", uid, files=[path], frames=frames, notes=notes)
