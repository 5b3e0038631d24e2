"""Segment a user's scan with a checkpoint or an exported artifact and write the mask.

Each slice goes through the model's :class:`~lightseg.data.preprocessing.Preprocessing` and the
logits are mapped back to the slice's own grid: with ``fit="pad"`` a slice up to ``size`` px is
centre-padded and the logits cropped back; a larger one is covered by ``size`` x ``size`` tiles
(overlapping by at least size/8, logits averaged), so no pixel is cropped away. With
``fit="resize"`` the logits are resized back (bilinear). The mask is the per-pixel argmax.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.scans import tile_starts
from lightseg.data.volumes import Scan, read_scan
from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_text
from lightseg.runtimes.base import DEFAULT_THREADS, Runner, runner_for

DEFAULT_ARTIFACT = "onnx-fp32"
AUTO_TARGET = "x86-auto"
TILE_BATCH = 4  # tiles per inference call (larger CPU batches ran slower per tile)


@dataclass
class Model:
    """A not yet opened runner with the preprocessing and classes it was trained with."""

    runner: Runner
    pre: Preprocessing
    classes: list[str]
    name: str  # architecture (and artifact) for the DICOM SEG's algorithm identification
    version: str  # weights sha256 prefix
    info: dict  # what was loaded, for the summary


def default_artifact(manifest) -> str:
    """The artifact the x86-auto target chose, else onnx-fp32."""
    names = [a.name for a in manifest.artifacts]
    marked = [a.name for a in manifest.artifacts if AUTO_TARGET in a.targets]
    chosen = manifest.extra.get("auto_pick", {}).get("chosen")
    for name in (*marked, chosen, DEFAULT_ARTIFACT):
        if name in names:
            return name
    raise LightsegError(
        f"{manifest.root}: no {AUTO_TARGET} choice and no {DEFAULT_ARTIFACT}; pass --artifact "
        f"(has: {manifest.names()})"
    )


def load_model(
    model: str = "default", artifact: str | None = None, threads: int = DEFAULT_THREADS
) -> Model:
    """A checkpoint folder ("default" = the shipped one) or an export folder + artifact name."""
    from lightseg.checkpoint import DEFAULT_CLASSES, read_meta, resolve

    root = resolve(model)
    if (root / "manifest.json").is_file():
        from lightseg.artifact import load_manifest  # the manifest loader

        manifest = load_manifest(root)
        name = artifact or default_artifact(manifest)
        art = manifest.artifact(name)
        return Model(
            runner=runner_for(manifest, art, threads),
            pre=Preprocessing.from_dict(manifest.preprocessing),
            classes=list(manifest.classes or DEFAULT_CLASSES),
            name=f"{manifest.source.get('architecture', 'model')} {name}",
            version=str(manifest.source.get("weights_sha256", ""))[:12],
            info={
                "export": model,
                "artifact": name,
                "backend": art.backend,
                "precision": art.precision,
            },
        )
    if artifact:
        raise LightsegError(f"--artifact needs an export folder with manifest.json; {root} is not")
    from lightseg.runtimes.torch_runner import TorchRunner

    meta = read_meta(root)
    return Model(
        runner=TorchRunner(root, threads=threads),
        pre=Preprocessing.from_dict(meta["preprocessing"]),
        classes=list(meta.get("classes", DEFAULT_CLASSES)),
        name=str(meta["architecture"]),
        version=str(meta["weights_sha256"])[:12],
        info={"checkpoint": model, "path": str(root), "backend": "pytorch", "precision": "fp32"},
    )


def slice_logits(hu: np.ndarray, runner: Runner, pre: Preprocessing) -> np.ndarray:
    """Logits (K x H x W) of one HU slice on its own H x W grid."""
    h, w = hu.shape
    s = pre.size
    if pre.fit == "resize":
        from scipy.ndimage import zoom

        y = runner.infer(pre(hu)[None])[0]
        out = zoom(y, (1, h / s, w / s), order=1)
        if out.shape[1:] != (h, w):
            raise LightsegError(f"resize back gave {out.shape[1:]}, not {(h, w)}")
        return out
    g = pre.window(hu)
    tiles, places = [], []
    for y0 in tile_starts(h, s) if h > s else [0]:
        for x0 in tile_starts(w, s) if w > s else [0]:
            crop = g[y0 : y0 + s, x0 : x0 + s]
            th, tw = crop.shape
            dy, dx = (s - th) // 2, (s - tw) // 2  # centred, as Preprocessing.fit_2d pads
            t = np.zeros((s, s), np.float32)
            t[dy : dy + th, dx : dx + tw] = crop
            tiles.append(t)
            places.append((y0, x0, dy, dx, th, tw))
    x = np.repeat(np.stack(tiles)[:, None], pre.channels, axis=1)
    x = np.ascontiguousarray(x, np.float32)
    y = np.concatenate([runner.infer(x[i : i + TILE_BATCH]) for i in range(0, len(x), TILE_BATCH)])
    acc = np.zeros((y.shape[1], h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    for yt, (y0, x0, dy, dx, th, tw) in zip(y, places, strict=True):
        acc[:, y0 : y0 + th, x0 : x0 + tw] += yt[:, dy : dy + th, dx : dx + tw]
        count[y0 : y0 + th, x0 : x0 + tw] += 1
    return acc / count


@contextmanager
def _progress(total: int, show: bool) -> Iterator[Callable[[], None]]:
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("segmenting slices", total=total)
        yield lambda: bar.advance(task)


def predict_volume(
    volume: np.ndarray, runner: Runner, pre: Preprocessing, progress: bool | None = None
) -> np.ndarray:
    """uint8 label mask (z, y, x) of an HU volume (z, y, x) through an open runner, slice by
    slice. ``progress`` defaults to a rich bar when stderr is a terminal."""
    hu = np.asarray(volume, np.float32)
    if hu.ndim == 2:
        hu = hu[None]
    if hu.ndim != 3:
        raise LightsegError(f"expected an HU volume (z, y, x), got shape {hu.shape}")
    show = sys.stderr.isatty() if progress is None else progress
    mask = np.zeros(hu.shape, np.uint8)
    with _progress(len(hu), show) as advance:
        for z in range(len(hu)):
            mask[z] = slice_logits(hu[z], runner, pre).argmax(0)
            advance()
    return mask


def _write_outputs(out: Path, scan: Scan, mask: np.ndarray, m: Model) -> tuple[dict, list[str]]:
    from lightseg.data import writers

    files = {"mask": writers.write_nifti_mask(out / "mask.nii.gz", mask, scan).name}
    notes = []
    if scan.kind == "png":
        files["mask_png"] = writers.write_png(out / "mask.png", (mask[0] > 0) * np.uint8(255)).name
    if scan.kind == "dicom":
        try:
            seg = writers.write_dicom_seg(out / "seg.dcm", mask, scan, m.classes, m.name, m.version)
            files["seg"] = seg.name
        except LightsegError as e:
            notes.append(f"seg.dcm not written: {e}")
    png = writers.write_png(out / "overlay.png", writers.overlay_montage(scan, mask, m.pre))
    files["overlay"] = png.name
    return files, notes


def predict(
    input: str | Path,
    model: str = "default",
    artifact: str | None = None,
    out: str | Path = "predict",
    threads: int | None = None,
    series: str | None = None,
    progress: bool | None = None,
) -> dict:
    """Segment ``input``; write mask.nii.gz, seg.dcm (DICOM input), overlay.png and
    summary.json into ``out``; return the summary. ``threads`` defaults to all cores."""
    from lightseg import __version__

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LightsegError(f"--out {out} is a file; give a folder")
    t0 = time.perf_counter()
    m = load_model(model, artifact, threads or os.cpu_count() or 1)
    scan = read_scan(input, series, m.pre)
    t1 = time.perf_counter()
    with m.runner as runner:
        mask = predict_volume(scan.hu, runner, m.pre, progress)
        info = dict(runner.info)
    t2 = time.perf_counter()
    files, notes = _write_outputs(out, scan, mask, m)
    files["summary"] = "summary.json"
    per_slice = (mask > 0).reshape(len(mask), -1).sum(1)
    summary = {
        "input": str(input),
        "kind": scan.kind,
        "modality": scan.modality,
        "series_uid": scan.series_uid,
        "shape_zyx": list(scan.hu.shape),
        "spacing_mm_zyx": [round(v, 6) for v in scan.spacing],
        "affine_ras": np.round(scan.affine, 6).tolist(),
        "model": {**m.info, "threads": info.get("threads"), "versions": info.get("versions")},
        "preprocessing": m.pre.to_dict(),
        "classes": m.classes,
        "lesion": {
            "slices": int((per_slice > 0).sum()),
            "pixels": int(per_slice.sum()),
            "volume_ml": round(float(per_slice.sum()) * scan.voxel_ml, 4),
            "pixels_per_slice": per_slice.astype(int).tolist(),
        },
        "files": files,
        "notes": scan.notes + notes,
        "seconds": {
            "read": round(t1 - t0, 3),
            "predict": round(t2 - t1, 3),
            "write": round(time.perf_counter() - t2, 3),
        },
        "lightseg_version": __version__,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
