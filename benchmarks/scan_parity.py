"""Parity on real scans, scan by scan: the single-process run and the ``--ray`` run.

Each scan is one unit of work (:func:`volume_logits`): its slices on the model grid, the fp32
reference's and every artifact's logits on them. ``map_volumes`` runs it per scan (the built-in
``map``, or Ray from ``lightseg.pipeline.scale``); the driver concatenates the scans in their
listed order and judges every artifact with the one ``compare``, so the verdicts do not depend
on where or in which order the scans ran. Without masks the Dice-vs-ground-truth gates are
absent; the fp32-reference gates still hold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from lightseg.benchmarks.harness import (
    ParityRun,
    parity_meta,
    parity_setup,
    reference_logits,
    run_subject,
)
from lightseg.benchmarks.realdata import stack
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.scans import ScanItem, describe, find_scans, label, scan_slices
from lightseg.judge.verdict import Verdict, compare


def volume_logits(
    item: ScanItem, pre: Preprocessing, ck: str, expect_sha: str, subjects: list,
    timeout: float, threads: int, isolate: bool,
) -> dict:  # fmt: skip
    """One scan: its slices, the reference's logits and each subject's (logits, info, status,
    message)."""
    s = scan_slices(item, pre)
    ref, ref_info = reference_logits(ck, s.x, threads, expect_sha)
    out = {}
    with tempfile.TemporaryDirectory(prefix="lightseg-scan-") as tmp:
        x_path = str(Path(tmp) / "inputs.npy")
        np.save(x_path, s.x)
        for sub in subjects:
            out[sub.name] = run_subject(sub, x_path, timeout, threads, isolate)
    return {"slices": s, "reference": ref, "reference_info": ref_info, "subjects": out}


def _verdict(sub, results: list[dict], n, ref, gt, tol) -> tuple[Verdict, np.ndarray | None]:
    """Judge ``sub`` on the scans' first ``n`` slices; the first failed scan's status else."""
    runs = [r["subjects"][sub.name] for r in results]
    for y, info, status, message in runs:
        if y is None:
            st = "skipped" if status == "skipped" else "error"
            return Verdict(sub.name, sub.backend, sub.precision, st, message, info=info), None
    y = np.concatenate([r[0] for r in runs])[:n]
    v = compare(ref, y, gt, tol, sub.precision, sub.name, sub.backend)
    v.info = runs[0][1] | {"size_bytes": sub.size_bytes}
    return v, y


def run_parity_scans(
    artifact_dir: str | Path, data: str, n: int | None = None,
    backends: list[str] | None = None, timeout: float = 300.0,
    tolerances: str | Path | None = None, threads: int = 2, isolate: bool = True,
    progress=None, map_volumes: Callable = map,
):  # fmt: skip
    """The parity run of an export folder on the scans under ``data`` (see the module doc);
    ``n`` keeps the first n slices."""

    manifest, tol, subjects, pre, ck = parity_setup(artifact_dir, backends, threads, tolerances)
    items = find_scans(data)
    sha = manifest.source.get("weights_sha256", "")
    if progress:
        progress(f"{len(items)} scans, {len(subjects)} artifacts per scan")
    job = partial(volume_logits, pre=pre, ck=ck, expect_sha=sha, subjects=subjects,
                  timeout=timeout, threads=threads, isolate=isolate)  # fmt: skip
    results = list(map_volumes(job, items))
    parts = [r["slices"] for r in results]
    x, gt = stack(parts)
    ref = np.concatenate([r["reference"] for r in results])
    x, ref, gt = x[:n], ref[:n], None if gt is None else gt[:n]
    verdicts, outputs = [], {}
    for sub in subjects:
        v, y = _verdict(sub, results, n, ref, gt, tol)
        verdicts.append(v)
        if y is not None:
            outputs[sub.name] = y
    record = describe(data, items, parts)
    reference = {"checkpoint": ck, **results[0]["reference_info"]}
    meta = parity_meta(artifact_dir, reference, label(record), record, len(x), None, threads,
                       timeout, tolerances, tol)  # fmt: skip
    return ParityRun(verdicts, x, gt, ref, outputs, meta)
