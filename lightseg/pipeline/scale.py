"""Scale-out on Ray: one task per scan for ``eval``, ``parity`` and ``predict`` (``--ray``).

The commands take a ``map_volumes`` from :func:`lightseg.data.scans.volume_map`: the built-in
``map`` by default, or :func:`ray_map` (registered by the composition root, lightseg.commands).
Both run the same per-scan function; Ray returns the results in the order the scans were listed,
and the driver aggregates them with the same functions as the single-process run, so every
per-slice metric and aggregate is the same. Ray is imported only when ``--ray`` is given.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from lightseg.data.scans import RAY_HINT, ScanItem, dicom_series, find_scans
from lightseg.errors import LightsegError, one_line


def _call(fn: Callable, item):
    """One scan's work inside a Ray task."""
    return fn(item)


def start_ray(**kw) -> None:
    """``ray.init(**kw)`` from the temp folder: Ray puts the driver's working directory on its
    workers' sys.path, and a source checkout there would shadow the installed lightseg."""
    import ray

    here = os.getcwd()
    os.chdir(tempfile.gettempdir())
    try:
        ray.init(**kw)
    finally:
        os.chdir(here)


def ray_map(address: str | None = None) -> Callable:
    """A map over scans running one Ray task each: on this machine (all its cores) by default,
    or on the cluster at ``address`` (HOST:PORT). An already started Ray is used as it is."""
    try:
        import ray
    except ImportError:
        raise LightsegError(RAY_HINT) from None
    if not ray.is_initialized():
        kw = {"address": address} if address else {"num_cpus": os.cpu_count() or 1}
        try:
            start_ray(**kw, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise LightsegError(f"--ray: cannot start {where} ({one_line(e)})") from None
    task = ray.remote(num_cpus=1)(_call)

    def map_volumes(fn: Callable, items: Iterable) -> list:
        return ray.get([task.remote(fn, i) for i in items])

    return map_volumes


def is_dataset(path: str | Path) -> bool:
    """A folder of scans (NIfTI files, series in subfolders), not one DICOM series folder."""
    p = Path(path)
    return p.is_dir() and not dicom_series(p)


def scan_name(root: Path, item: ScanItem) -> str:
    """A folder name for one scan's outputs, unique within ``root``."""
    p = Path(item.path)
    rel = p.relative_to(root) if p != root else Path(p.name)
    name = "_".join(rel.parts).removesuffix(".gz").removesuffix(".nii")
    return f"{name}_{item.series}" if item.series else name


def predict_scan(item: ScanItem, root: Path, out: Path, **kw) -> dict:
    """Predict one scan into ``out``/<scan name>; its summary."""
    from lightseg.pipeline.predict import predict

    return predict(item.path, out=out / scan_name(root, item), series=item.series, **kw)


def predict_scans(
    input: str | Path, out: str | Path, map_volumes: Callable = map, **kw
) -> list[dict]:
    """Predict every scan under ``input`` (one call of ``lightseg.pipeline.predict.predict``
    each, keywords ``kw``); their summaries, in the listed order."""
    root, out = Path(input), Path(out)
    if out.exists() and not out.is_dir():
        raise LightsegError(f"--out {out} is a file; give a folder")
    job = partial(predict_scan, root=root, out=out, progress=False, **kw)
    return list(map_volumes(job, find_scans(root)))
