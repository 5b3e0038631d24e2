"""Real scans as model inputs: find the scans under a path, cut each into model-grid slices.

:func:`find_scans` lists every scan under a DICOM/NIfTI folder (or one file): each NIfTI file
(masks named ``X_mask``/``X_seg``/``X_label`` beside it, or ``X`` under ``labels/``/``masks/``)
and each DICOM series (mask: ``mask``/``seg``/``label`` .nii[.gz] in a one-series folder).
:func:`scan_slices` reads one with :func:`~lightseg.data.volumes.read_scan` and maps every slice
to the model grid the way ``lightseg predict`` does: a slice up to ``size`` px is centre-padded,
a larger one (``fit="pad"``) becomes predict's overlapping ``size`` x ``size`` tiles, and
``fit="resize"`` resizes. :func:`volume_map` gives the map that runs one function per scan:
the built-in ``map`` or, with ``--ray``, the one the composition root registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError

NIFTI_EXTS = (".nii.gz", ".nii")
MASK_SUFFIXES = ("_mask", "_seg", "_label")
MASK_DIRS = ("labels", "masks")
DICOM_MASK_STEMS = ("mask", "seg", "label")
OTHER_DATA = ("*.npz", "*.mhd", "*.png", "*.npy")  # dataset folders read by data.readers
RAY_HINT = "--ray needs Ray: pip install 'lightseg[ray]'"

_ray_mapper: Callable[[str | None], Callable] | None = None


@dataclass(frozen=True)
class ScanItem:
    """One scan to read: a NIfTI/DICOM file or a DICOM folder (+ series), and its mask file."""

    path: str
    series: str | None = None
    mask: str | None = None


@dataclass
class ScanSlices:
    """A scan's model inputs (N x C x S x S), masks (N x S x S) or None, and where each came
    from: (slice index, row, column) of its window on the scan's own grid."""

    x: np.ndarray
    masks: np.ndarray | None
    where: list[tuple[int, int, int]]
    slices: int


def _stem(p: Path) -> str:
    for ext in NIFTI_EXTS:
        if p.name.endswith(ext):
            return p.name[: -len(ext)]
    return p.name


def _is_nifti(p: Path) -> bool:
    return p.is_file() and p.name.endswith(NIFTI_EXTS)


def _is_dicom_file(p: Path) -> bool:
    if p.suffix.lower() == ".dcm":
        return True
    try:
        with p.open("rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_scan_data(data: str) -> bool:
    """Whether ``--data`` is a DICOM/NIfTI file or a folder of scans (not an .npz, a named set,
    or a dataset folder of npz/mhd/png/npy files)."""
    p = Path(data)
    if p.is_dir():
        return not any(next(p.glob(g), None) for g in OTHER_DATA)
    return p.is_file() and (_is_nifti(p) or _is_dicom_file(p))


def _nifti_mask(img: Path) -> str | None:
    stem = _stem(img)
    names = [stem + s + ext for s in MASK_SUFFIXES for ext in NIFTI_EXTS]
    folders = [img.parent / d for d in MASK_DIRS]
    if img.parent.name == "images":
        folders += [img.parent.parent / d for d in MASK_DIRS]
    cands = [img.parent / n for n in names] + [f / (stem + e) for f in folders for e in NIFTI_EXTS]
    return next((str(c) for c in cands if c.is_file()), None)


def dicom_series(folder: Path) -> list[str]:
    """SeriesInstanceUIDs of the DICOM images directly in ``folder`` (sorted)."""
    from lightseg.data.readers import _dicom_files
    from lightseg.data.volumes import _dcmread

    uids = set()
    for f in _dicom_files(folder):
        ds = _dcmread(f, header_only=True, non_dicom_ok=True)
        if ds is not None and "Rows" in ds:
            uids.add(str(ds.get("SeriesInstanceUID", "")))
    return sorted(uids)


def _folder_items(folder: Path) -> list[ScanItem]:
    items = [
        ScanItem(str(f), None, _nifti_mask(f))
        for f in sorted(folder.iterdir())
        if _is_nifti(f) and not _stem(f).endswith(MASK_SUFFIXES)
        and _stem(f) not in DICOM_MASK_STEMS
    ]  # fmt: skip
    uids = dicom_series(folder)
    mask = None
    if len(uids) == 1:
        found = [folder / (s + e) for s in DICOM_MASK_STEMS for e in NIFTI_EXTS]
        mask = next((str(m) for m in found if m.is_file()), None)
    items += [ScanItem(str(folder), u if len(uids) > 1 else None, mask) for u in uids]
    return items


def find_scans(path: str | Path) -> list[ScanItem]:
    """Every scan under ``path`` (a file, or a folder searched with its subfolders)."""
    p = Path(path)
    if not p.exists():
        raise LightsegError(f"--data {p}: no such file or folder")
    if p.is_file():
        return [ScanItem(str(p), None, _nifti_mask(p) if _is_nifti(p) else None)]
    folders = [p] + sorted(
        d for d in p.rglob("*") if d.is_dir() and not set(d.relative_to(p).parts) & set(MASK_DIRS)
    )
    items = [i for d in folders for i in _folder_items(d)]
    if not items:
        raise LightsegError(f"--data {p}: no DICOM series or NIfTI scans here")
    return items


def _read_mask(item: ScanItem, shape: tuple[int, ...]) -> np.ndarray:
    """The label volume (z, y, x) of ``item`` on the scan's voxel grid."""
    from lightseg.data.volumes import read_nifti_scan

    m = read_nifti_scan(item.mask).hu
    if m.shape != shape:
        raise LightsegError(f"{item.mask}: mask shape {m.shape} (z, y, x), scan has {shape}")
    if np.any(m < 0) or np.any(m != np.round(m)):
        raise LightsegError(f"{item.mask}: masks must hold whole, non-negative class labels")
    return m.astype(np.int64)


def tile_starts(n: int, size: int) -> list[int]:
    """Offsets of windows of ``size`` covering ``n`` > ``size`` px, overlapping >= size/8."""
    k = -(-(n - size) // (size - size // 8)) + 1
    return sorted({int(v) for v in np.linspace(0, n - size, k).round()})


def windows(h: int, w: int, pre: Preprocessing) -> list[tuple[int, int]]:
    """Top-left corners of the model-grid windows of an H x W slice (one unless tiled)."""
    s = pre.size
    if pre.fit == "resize":
        return [(0, 0)]
    ys = tile_starts(h, s) if h > s else [0]
    xs = tile_starts(w, s) if w > s else [0]
    return [(y, x) for y in ys for x in xs]


def scan_slices(item: ScanItem, pre: Preprocessing) -> ScanSlices:
    """Read ``item`` and cut it into preprocessed model inputs (and masks when it has one)."""
    from lightseg.data.volumes import read_scan

    scan = read_scan(item.path, item.series, pre)
    mask = _read_mask(item, scan.hu.shape) if item.mask else None
    z, h, w = scan.hu.shape
    cut = pre.size if pre.fit == "pad" else max(h, w)
    where = [(k, r, c) for k in range(z) for r, c in windows(h, w, pre)]
    x = np.stack([pre(scan.hu[k, r : r + cut, c : c + cut]) for k, r, c in where])
    m = None
    if mask is not None:
        m = np.stack([pre.mask(mask[k, r : r + cut, c : c + cut]) for k, r, c in where])
    return ScanSlices(np.ascontiguousarray(x, np.float32), m, where, z)


def describe(path: str, items: list[ScanItem], parts: list[ScanSlices]) -> dict:
    """What a report keeps about the data it judged."""
    with_masks = sum(p.masks is not None for p in parts)
    return {
        "name": Path(path).name,
        "path": str(path),
        "source": "scans",
        "seed": None,
        "scans": len(items),
        "slices": sum(p.slices for p in parts),
        "n": sum(len(p.x) for p in parts),
        "masks": "all" if with_masks == len(parts) else "none" if not with_masks else "some",
    }


def label(record: dict) -> str:
    """One line: ``PATH (k scans, s slices, with masks)``."""
    masks = {"all": "with masks", "none": "without masks", "some": "masks on some scans"}
    return f"{record['path']} ({record['scans']} scans, {record['slices']} slices, " + (
        f"{masks[record['masks']]})"
    )


def evaluate_scan(item: ScanItem, checkpoint: str) -> tuple[list[dict], ScanSlices]:
    """(per-slice case metrics, the slices) of a checkpoint on one scan with its mask."""
    from lightseg.checkpoint import load_checkpoint
    from lightseg.metrics import case_metrics
    from lightseg.train import predict_masks

    ck = load_checkpoint(checkpoint)
    s = scan_slices(item, ck.preprocessing)
    if s.masks is None:
        raise LightsegError(f"{item.path}: eval needs a mask for every scan")
    pred = predict_masks(ck.model, s.x)
    return [case_metrics(p, r) for p, r in zip(pred, s.masks, strict=True)], s


def evaluate_scans(ck, data: str, map_volumes: Callable = map):
    """(summary, cases, inputs, masks, data record) of checkpoint ``ck`` on every scan under
    ``data``, one :func:`evaluate_scan` per scan through ``map_volumes``, in the listed order."""
    from lightseg.metrics import summarize

    items = find_scans(data)
    bare = [i.path for i in items if i.mask is None]
    if bare:
        raise LightsegError(
            f"--data {data}: eval needs masks; {len(bare)} of {len(items)} scans have none "
            f"(e.g. {bare[0]}: name it X_mask.nii.gz, put it under labels/, or mask.nii.gz "
            "beside a DICOM series)"
        )
    job = partial(evaluate_scan, checkpoint=str(ck.path))
    results = list(map_volumes(job, items))
    cases = [c for r in results for c in r[0]]
    parts = [r[1] for r in results]
    x, y = np.concatenate([p.x for p in parts]), np.concatenate([p.masks for p in parts])
    return summarize(cases), cases, x, y, describe(data, items, parts)


def set_ray_mapper(factory: Callable[[str | None], Callable]) -> None:
    """Register the ``--ray`` map (``factory(address)`` -> a map over scans)."""
    global _ray_mapper
    _ray_mapper = factory


def volume_map(ray: bool, address: str | None = None) -> Callable:
    """The map that runs one function per scan: built-in ``map``, or Ray with ``--ray``."""
    if not ray:
        if address:
            raise LightsegError("--address needs --ray")
        return map
    if _ray_mapper is None:
        raise LightsegError(RAY_HINT)
    return _ray_mapper(address)
