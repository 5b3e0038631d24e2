"""Latency the way trtexec / onnxruntime_perf_test report it, interleaved across backends.

Load/compile time, first inference and warm steady state are reported apart; warm samples give
min/mean/p50/p90/p95/p99/max and the coefficient of variation. In ``run_bench`` each backend
lives in its own process (peak RSS is per backend) and rounds alternate between backends so
ratios against the PyTorch reference are measured side by side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError

SCHEMA_VERSION = 1
ROUND = 5  # timed runs per backend per round


@dataclass
class LatencyStats:
    """Latency of one backend, milliseconds unless named otherwise."""

    name: str
    backend: str = ""
    precision: str = ""
    load_s: float = 0.0
    first_ms: float = 0.0
    samples_ms: list[float] = field(default_factory=list)
    min: float = 0.0
    mean: float = 0.0
    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    cv: float = 0.0
    peak_rss_mb: float | None = None
    size_bytes: int = 0
    status: str = "ok"
    message: str = ""

    def fill(self) -> LatencyStats:
        """Compute the summary statistics from ``samples_ms``."""
        s = np.asarray(self.samples_ms, dtype=np.float64)
        if s.size == 0:
            return self
        self.min, self.max, self.mean = float(s.min()), float(s.max()), float(s.mean())
        for q in (50, 90, 95, 99):
            setattr(self, f"p{q}", float(np.percentile(s, q)))
        self.cv = float(s.std() / s.mean()) if s.mean() > 0 else 0.0
        return self


def model_gmacs(checkpoint: str, shape: tuple) -> float:
    from lightseg.checkpoint import load_checkpoint
    from lightseg.profile import profile_model

    return float(
        profile_model(load_checkpoint(checkpoint).model, shape, "modern").summary()["conv_gmacs"]
    )


def run_bench(
    artifact_dir,
    threads: int = 2,
    batch: int = 1,
    runs: int = 50,
    warmup: int = 5,
    backends: list[str] | None = None,
    timeout: float = 300.0,
    peak: bool = True,
) -> dict:
    """Benchmark the reference and every runnable artifact, interleaved; returns a JSON doc."""
    import tempfile

    from lightseg.artifact import load_manifest
    from lightseg.benchmarks.harness import Subject, machine, reference_checkpoint, subjects_for
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set
    from lightseg.runtimes.process import BackendDied, IsolatedBackend

    manifest = load_manifest(artifact_dir)
    ck = reference_checkpoint(manifest)
    subjects = [
        Subject("pytorch-reference", "pytorch", "fp32", {"kind": "reference", "checkpoint": ck}),
        *subjects_for(manifest, backends, threads),
    ]
    pre = Preprocessing.from_dict(manifest.preprocessing)
    x = input_set("verification", pre, batch).x
    stats = {
        s.name: LatencyStats(s.name, s.backend, s.precision, size_bytes=s.size_bytes)
        for s in subjects
    }
    live: dict[str, IsolatedBackend] = {}
    with tempfile.TemporaryDirectory(prefix="lightseg-bench-") as tmp:
        x_path = str(Path(tmp) / "x.npy")
        np.save(x_path, x)

        def call(s, msg) -> dict | None:
            st = stats[s.name]
            try:
                reply = live[s.name].call(msg)
            except BackendDied as e:
                reply = {"ok": False, "status": "error", "message": str(e)}
            if not reply["ok"]:
                st.status, st.message = reply["status"], reply["message"]
                live.pop(s.name).kill()
                return None
            return reply

        for s in subjects:  # load, first inference, warm-up
            live[s.name] = IsolatedBackend(timeout)
            r = call(s, {"cmd": "open", "threads": threads, **s.open_msg})
            if r:
                stats[s.name].load_s = r["load_s"]
                r = call(s, {"cmd": "time", "inputs": x_path, "n": 1})
            if r:
                stats[s.name].first_ms = r["ms"][0]
                call(s, {"cmd": "time", "inputs": x_path, "n": warmup})
        done = 0
        while done < runs and live:  # interleaved rounds
            n = min(ROUND, runs - done)
            for s in subjects:
                if s.name in live and (r := call(s, {"cmd": "time", "inputs": x_path, "n": n})):
                    stats[s.name].samples_ms += r["ms"]
            done += n
        for name, proc in list(live.items()):
            stats[name].peak_rss_mb = proc.close().get("peak_rss_mb")
    if stats["pytorch-reference"].status != "ok":
        raise LightsegError(f"the PyTorch reference failed: {stats['pytorch-reference'].message}")
    rows = [s.fill() for s in stats.values()]
    ref_p50 = stats["pytorch-reference"].p50
    gmacs = model_gmacs(ck, (pre.channels, pre.size, pre.size)) * batch
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "lightseg-latency",
        "machine": machine(),
        "threads": threads,
        "batch": batch,
        "runs": runs,
        "warmup": warmup,
        "interleaved_round": ROUND,
        "model_gmacs": gmacs,
        "backends": [
            asdict(r)
            | {
                "speedup_vs_reference": (ref_p50 / r.p50) if r.p50 else None,
                "effective_gflops": (2 * gmacs / (r.p50 / 1e3)) if r.p50 else None,
            }
            for r in rows
        ],
    }
    if peak:
        from lightseg.benchmarks.matmul_peak import peak_gflops

        doc["matmul_peak_gflops"] = peak_gflops(threads)
    return doc


def table(doc: dict):
    from rich.table import Table

    t = Table(
        title=f"latency, batch {doc['batch']}, {doc['threads']} threads, {doc['runs']} runs "
        f"(interleaved) on {doc['machine']['cpu']}"
    )
    for col in (
        "backend",
        "precision",
        "load s",
        "first ms",
        "p50",
        "p90",
        "p99",
        "CV",
        "RSS MB",
        "x ref",
        "GFLOP/s",
        "status",
    ):
        t.add_column(col, justify="right")
    for b in doc["backends"]:
        ok = b["status"] == "ok"
        t.add_row(
            b["name"],
            b["precision"],
            f"{b['load_s']:.2f}" if ok else "-",
            f"{b['first_ms']:.1f}" if ok else "-",
            f"{b['p50']:.2f}" if ok else "-",
            f"{b['p90']:.2f}" if ok else "-",
            f"{b['p99']:.2f}" if ok else "-",
            f"{b['cv']:.2f}" if ok else "-",
            f"{b['peak_rss_mb']:.0f}" if b["peak_rss_mb"] else "-",
            f"{b['speedup_vs_reference']:.2f}" if b["speedup_vs_reference"] else "-",
            f"{b['effective_gflops']:.1f}" if b["effective_gflops"] else "-",
            b["status"] if ok else f"{b['status']}: {b['message']}"[:60],
        )
    if "matmul_peak_gflops" in doc:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in doc["matmul_peak_gflops"].items() if v)
        t.caption = f"matmul peak GFLOP/s (same run, {doc['threads']} threads): {peaks}"
    return t


def write_json(doc: dict, path: Path) -> None:
    from lightseg.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
