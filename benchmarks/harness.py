"""Run the fp32 reference and every runnable artifact on the same inputs; judge each.

Every backend runs in its own worker process (see worker.py) with a timeout, so a crash or a
hang is that backend's failure and the others are still judged. An undecided verdict (the set
too small for its interval to clear the gate) makes ``--n auto`` draw the set twice as large.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError
from lightseg.judge.verdict import CI_METHOD, Verdict, compare, load_tolerances
from lightseg.runtimes.base import RUNNERS
from lightseg.runtimes.process import BackendDied, IsolatedBackend, LocalBackend

#: ``--n auto`` stops doubling the set here and reports what it has.
AUTO_CAP = 256


@dataclass
class Subject:
    """One thing to run: the reference, an artifact, or device results."""

    name: str
    backend: str
    precision: str
    open_msg: dict
    size_bytes: int = 0


@dataclass
class ParityRun:
    verdicts: list[Verdict]
    inputs: np.ndarray
    gt: np.ndarray | None
    reference: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def machine() -> dict:
    """CPU model, core count, OS: recorded with every result."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform()}


def reference_checkpoint(manifest) -> str:
    """The manifest's source checkpoint (absolute, relative to the folder, or "default")."""
    ck = str(manifest.source.get("checkpoint") or "default")
    if ck == "default" or Path(ck).is_absolute():
        return ck
    local = manifest.root / ck
    return str(local if local.exists() else ck)


def subjects_for(manifest, backends: list[str] | None, threads: int) -> list[Subject]:
    """The manifest's artifacts selected by backend or artifact name (all by default)."""
    arts = manifest.artifacts
    if backends:
        arts = [a for a in arts if a.backend in backends or a.name in backends]
        if not arts:
            raise LightsegError(
                f"--backends {','.join(backends)} matches no artifact (have: {manifest.names()})"
            )
    for a in arts:
        manifest.verify(a)  # a tampered artifact is bad input (exit 2), not a parity failure
    return [
        Subject(
            a.name,
            a.backend,
            a.precision,
            {
                "kind": "artifact",
                "manifest": str(manifest.root),
                "artifact": a.name,
                "runner": RUNNERS.get(a.backend),
            },
            a.size_bytes,
        )
        for a in arts
    ]


def reference_logits(checkpoint: str, x: np.ndarray, threads: int, expect_sha: str = "") -> tuple:
    """fp32 PyTorch logits in this process (the reference), and the runner's info."""
    from lightseg.runtimes.torch_runner import TorchRunner

    got = _weights_sha(checkpoint)
    if expect_sha and got != expect_sha:
        raise LightsegError(
            f"reference checkpoint {checkpoint} has weights {got[:12]}, the manifest was "
            f"exported from {expect_sha[:12]}"
        )
    with TorchRunner(checkpoint, threads=threads) as r:
        return r.infer(x), r.info


def _weights_sha(checkpoint: str) -> str:
    from lightseg.checkpoint import read_meta

    return str(read_meta(checkpoint).get("weights_sha256", ""))


def run_subject(subject: Subject, x_path: str, timeout: float, threads: int, isolate: bool):
    """(logits or None, info, status, message) for one subject in its own worker."""
    proc = IsolatedBackend(timeout) if isolate else LocalBackend()
    try:
        reply = proc.call({"cmd": "open", "threads": threads, **subject.open_msg})
        if not reply["ok"]:
            return None, {}, reply["status"], reply["message"]
        info = reply["info"] | {"load_s": reply["load_s"]}
        out = str(Path(x_path).with_name(f"out-{subject.name}.npy"))
        reply = proc.call({"cmd": "infer", "inputs": x_path, "out": out})
        if not reply["ok"]:
            return None, info, "error", reply["message"]
        info["peak_rss_mb"] = proc.close().get("peak_rss_mb")
        return np.load(out), info, "ok", ""
    except BackendDied as e:
        return None, {}, "error", str(e)
    finally:
        proc.kill()


def judge(
    subjects: list[Subject],
    x: np.ndarray,
    gt: np.ndarray | None,
    ref: np.ndarray,
    tolerances: dict,
    timeout: float,
    threads: int,
    isolate: bool = True,
    progress=None,
) -> tuple[list[Verdict], dict]:
    """Run each subject on ``x`` and compare with ``ref``."""
    verdicts, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix="lightseg-parity-") as tmp:
        x_path = str(Path(tmp) / "inputs.npy")
        np.save(x_path, x)
        for s in subjects:
            if progress:
                progress(s)
            y, info, status, message = run_subject(s, x_path, timeout, threads, isolate)
            if y is None:
                st = "skipped" if status == "skipped" else "error"
                verdicts.append(Verdict(s.name, s.backend, s.precision, st, message, info=info))
                continue
            v = compare(ref, y, gt, tolerances, s.precision, s.name, s.backend)
            v.info = info | {"size_bytes": s.size_bytes}
            verdicts.append(v)
            outputs[s.name] = y
    return verdicts, outputs


def run_parity(
    artifact_dir: str | Path,
    data: str = "verification",
    n: int | None = None,
    backends: list[str] | None = None,
    timeout: float = 300.0,
    tolerances: str | Path | None = None,
    threads: int = 2,
    isolate: bool = True,
    progress=None,
    cap: int = AUTO_CAP,
) -> ParityRun:
    """The parity run of an export folder (see ``lightseg parity --help``).

    ``n`` None (``--n auto``): a named set starts at its own size and, while any verdict is
    undecided, is drawn again twice as large (its first k slices are the same) up to ``cap``;
    every artifact is then judged on the final set. ``progress`` receives each Subject as it
    runs and a line for each extension.
    """
    from lightseg.benchmarks.inputs import is_named_set, load_set

    manifest, tol, subjects, pre, ck = parity_setup(artifact_dir, backends, threads, tolerances)
    auto, size, tried = n is None and is_named_set(data), n, []
    while True:
        x, gt, source, record = load_set(data, pre, size)
        tried.append(len(x))
        ref, ref_info = reference_logits(ck, x, threads, manifest.source.get("weights_sha256", ""))
        verdicts, outputs = judge(subjects, x, gt, ref, tol, timeout, threads, isolate, progress)
        undecided = [v.name for v in verdicts if v.status == "undecided"]
        if not (auto and undecided and len(x) < cap):
            break
        size = min(2 * len(x), cap)
        if progress:
            progress(f"undecided on {len(x)} slices ({', '.join(undecided)}): n={size}")
    n_auto = {"tried": tried, "cap": cap} if auto else None
    meta = parity_meta(artifact_dir, {"checkpoint": ck, **ref_info}, source, record, len(x),
                       n_auto, threads, timeout, tolerances, tol)  # fmt: skip
    return ParityRun(verdicts, x, gt, ref, outputs, meta)


def parity_setup(artifact_dir, backends: list[str] | None, threads: int, tolerances):
    """What every parity run starts from: (manifest, gates, subjects, preprocessing, reference
    checkpoint); bad input stops here, before anything runs."""
    from lightseg.artifact import load_manifest

    if threads < 1:
        raise LightsegError(f"--threads must be at least 1, got {threads}")
    manifest = load_manifest(artifact_dir)
    subjects = subjects_for(manifest, backends, threads)
    pre = Preprocessing.from_dict(manifest.preprocessing)
    return manifest, load_tolerances(tolerances), subjects, pre, reference_checkpoint(manifest)


def parity_meta(artifact_dir, reference: dict, source: str, record, n: int, n_auto,
                threads, timeout: float, tolerances, tol: dict) -> dict:  # fmt: skip
    """What a parity run records about itself: data, reference, gates' settings, machine."""
    return {
        "artifact_dir": str(artifact_dir),
        "reference": reference,
        "data": source,
        "inputs": record,
        "n": n,
        "n_auto": n_auto,
        "threads": threads,
        "timeout_s": timeout,
        "tolerances": str(tolerances or "default"),
        "uncertainty_band": tol["uncertainty_band"],
        "boundary_px": tol["boundary_px"],
        "small_lesion_px": tol["small_lesion_px"],
        "ci_level": tol["ci_level"],
        "ci_method": CI_METHOD,
        "machine": machine(),
    }
