"""Latency the way trtexec / onnxruntime_perf_test report it, interleaved across backends, with
the machine's noise measured and the run repeated until it is stable.

Load/compile time, first inference and warm steady state are reported apart. Each backend lives
in its own worker process pinned to the same CPUs (peak RSS is per backend), with ``threads``
intra-op threads, one inter-op thread and idle spinning off where the runtime allows it. Rounds
of 5 runs alternate between backends, so ratios against the PyTorch reference are measured side
by side; a fixed numpy kernel is timed before each round to see CPU steal.

Stability (MLPerf-style early stopping): timed runs come in blocks of ``ceil(runs / 2)``; the
run stops once every backend's p50 over the last two blocks agrees within ``within`` (5%), or
marks itself noisy after ``max_blocks`` blocks or ``max_seconds``. The statistics are those of
the last two blocks; a noisy run says so in the JSON, every table and the baseline gate.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError

SCHEMA_VERSION = 2
ROUND = 5  # timed runs per backend per round
REFERENCE = "pytorch-reference"


@dataclass
class Stability:
    """When a run counts as stable. Defaults to 5% between the last two blocks, <= 6 blocks."""

    within: float = 0.05
    max_blocks: int = 6
    max_seconds: float = 1800.0


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
    block_p50: list[float] = field(default_factory=list)
    drift: float = 0.0  # p50 of the second half of all samples / the first half - 1
    info: dict = field(default_factory=dict)

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


def probe_ms(reps: int = 20) -> float:
    """Time of a fixed single-threaded numpy kernel: slower rounds mean CPU steal or load."""
    a = np.linspace(0.0, 1.0, 1 << 18, dtype=np.float32)
    out = np.empty_like(a)
    t0 = time.perf_counter()
    for _ in range(reps):
        np.multiply(a, a, out=out)
        np.add(out, a, out=out)
    return (time.perf_counter() - t0) * 1e3


def bench_cpus(threads: int) -> list[int] | None:
    """The CPUs every worker is pinned to: the first ``threads`` this process may use."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[: max(1, min(threads, len(allowed)))]


def subjects(
    manifest, backends: list[str] | None, threads: int, peers: bool, compile_peers: bool = True
) -> list:
    """The reference, the selected artifacts, and (with ``peers``) the peers of this export
    not already among them (torch.compile ones only with ``compile_peers``)."""
    from lightseg.benchmarks.harness import Subject, reference_checkpoint, subjects_for
    from lightseg.benchmarks.peers import COMPILE, peer_artifacts
    from lightseg.runtimes.base import RUNNERS

    ck = reference_checkpoint(manifest)
    out = [
        Subject(REFERENCE, "pytorch", "fp32", {"kind": "reference", "checkpoint": ck}),
        *subjects_for(manifest, backends, threads),
    ]
    for s in out[1:]:  # a speed-up of wrong masks means nothing: time only what was not refuted
        v = manifest.artifact(s.name).verification
        if v.get("status") in ("fail", "error"):
            s.open_msg = s.open_msg | {"skip": f"not timed: verification {v['status']}ed "
                                               f"({v.get('reason', '')})"}  # fmt: skip
    if not peers:
        return out
    have = {s.name for s in out}
    arts = [a for a in peer_artifacts(manifest) if a.name not in have]
    if not compile_peers:
        arts = [a for a in arts if a.name not in COMPILE]
    for a in arts:
        msg = {"kind": "artifact", "manifest": str(manifest.root), "artifact": a.name}
        msg |= {"artifact_doc": asdict(a), "runner": RUNNERS.get(a.backend)}
        out.append(Subject(a.name, a.backend, a.precision, msg, a.size_bytes))
    have |= {a.name for a in arts}
    for name, prec in COMPILE.items():  # no checkpoint artifact: compile the reference's
        if compile_peers and name not in have:
            msg = {"kind": "reference", "checkpoint": ck, "compile": prec}
            out.append(Subject(name, "pytorch-compile", prec, msg))
    return out


class Bench:
    """The live workers of one run and the statistics they produce."""

    def __init__(self, subjects: list, x_path: str, threads: int, timeout: float) -> None:
        self.subjects, self.x_path, self.threads, self.timeout = subjects, x_path, threads, timeout
        self.stats = {
            s.name: LatencyStats(s.name, s.backend, s.precision, size_bytes=s.size_bytes)
            for s in subjects
        }
        self.live: dict = {}
        self.cpus = bench_cpus(threads)

    def call(self, name: str, msg: dict) -> dict | None:
        """One command to one worker; a failure ends that backend, recorded in its stats."""
        from lightseg.runtimes.process import BackendDied

        try:
            reply = self.live[name].call(msg)
        except BackendDied as e:
            reply = {"ok": False, "status": "error", "message": str(e)}
        if not reply["ok"]:
            st = self.stats[name]
            st.status, st.message = reply["status"], reply["message"]
            self.live.pop(name).kill()
            return None
        return reply

    def open(self, warmup: int) -> None:
        """Start, pin and open every backend; time its first run; warm it up."""
        from lightseg.runtimes.process import IsolatedBackend

        for s in self.subjects:
            st = self.stats[s.name]
            if "skip" in s.open_msg:
                st.status, st.message = "skipped", s.open_msg["skip"]
                continue
            self.live[s.name] = IsolatedBackend(self.timeout)
            r = self.call(s.name, {"cmd": "pin", "cpus": self.cpus}) if self.cpus else {}
            if r is not None:
                st.info["cpus"] = r.get("cpus")
                msg = {"cmd": "open", "threads": self.threads, "timing": True, **s.open_msg}
                r = self.call(s.name, msg)
            if r:
                st.load_s, st.info = r["load_s"], st.info | r["info"]
                r = self.call(s.name, {"cmd": "time", "inputs": self.x_path, "n": 1})
            if r:
                st.first_ms = r["ms"][0]
                if warmup:
                    self.call(s.name, {"cmd": "time", "inputs": self.x_path, "n": warmup})

    def block(self, runs: int, probes: list[float]) -> dict[str, list[float]]:
        """``runs`` timed runs per live backend, in interleaved rounds, a probe before each."""
        got: dict[str, list[float]] = {name: [] for name in self.live}
        done = 0
        while done < runs and self.live:
            n = min(ROUND, runs - done)
            probes.append(probe_ms())
            for s in self.subjects:
                if s.name in self.live:
                    r = self.call(s.name, {"cmd": "time", "inputs": self.x_path, "n": n})
                    if r:
                        got[s.name] += r["ms"]
            done += n
        return got

    def close(self) -> None:
        for name, proc in list(self.live.items()):
            self.stats[name].peak_rss_mb = proc.close().get("peak_rss_mb")
        self.live.clear()


def agree(a: float, b: float, within: float) -> bool:
    """Whether two p50s differ by at most ``within`` of the smaller."""
    return a > 0 and b > 0 and abs(a - b) <= within * min(a, b)


def run_blocks(bench: Bench, runs: int, rule: Stability) -> dict:
    """Blocks of timed runs until the last two agree per backend (or the rule's limits)."""
    size = max(1, math.ceil(runs / 2))
    blocks: list[dict[str, list[float]]] = []
    probes: list[float] = []
    t0 = time.monotonic()
    stable = False
    while bench.live:
        blocks.append(bench.block(size, probes))
        last = blocks[-2:]
        stable = len(last) == 2 and all(
            agree(np.median(last[0][n]), np.median(last[1][n]), rule.within)
            for n in bench.live
            if last[0].get(n) and last[1].get(n)
        )
        if stable or len(blocks) >= rule.max_blocks or time.monotonic() - t0 > rule.max_seconds:
            break
    for name, st in bench.stats.items():
        mine = [b[name] for b in blocks if b.get(name)]
        st.block_p50 = [float(np.median(b)) for b in mine]
        st.samples_ms = [ms for b in mine[-2:] for ms in b]
        every = [ms for b in mine for ms in b]
        half = len(every) // 2
        if half:
            st.drift = float(np.median(every[half:]) / np.median(every[:half]) - 1)
    return {
        "stable": stable,
        "within": rule.within,
        "blocks": len(blocks),
        "block_runs": size,
        "seconds": round(time.monotonic() - t0, 2),
        "probe_ms": _spread(probes),
    }


def _spread(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {}
    p50 = float(np.median(v))
    return {"p50": p50, "max_over_p50": float(v.max() / p50), "cv": float(v.std() / v.mean())}


def speedup(ref: LatencyStats, st: LatencyStats) -> tuple[float | None, float | None]:
    """Speed-up over the reference (p50 ratio) and its relative spread between the last two
    blocks (|r1 - r2| / mean): the noise bound a baseline gate uses."""
    if not st.p50 or not ref.p50:
        return None, None
    per_block = [r / b for r, b in zip(ref.block_p50[-2:], st.block_p50[-2:], strict=False) if b]
    spread = (max(per_block) - min(per_block)) / np.mean(per_block) if per_block else 0.0
    return ref.p50 / st.p50, float(spread)


def used_precision(st: LatencyStats) -> str:
    """The precision that ran: OpenVINO's actual inference precision where it reports one."""
    hint = str(st.info.get("inference_precision", "")).lower()
    return {"bf16": "bf16", "f32": "fp32", "f16": "fp16"}.get(hint, st.precision)


def rows(stats: dict, gmacs: float, peaks: dict, within: float) -> list[dict]:
    """The per-backend JSON rows: statistics, speed-up with its spread, GFLOP/s, % of peak."""
    ref = stats[REFERENCE]
    out = []
    for st in stats.values():
        st.fill()
        ratio, spread = speedup(ref, st)
        gflops = 2 * gmacs / (st.p50 / 1e3) if st.p50 else None
        prec = used_precision(st)
        peak = peaks.get("int8" if prec == "int8" else "bf16" if prec == "bf16" else "fp32")
        out.append(
            asdict(st)
            | {
                "precision_used": prec,
                "stable": len(st.block_p50) >= 2 and agree(*st.block_p50[-2:], within),
                "speedup_vs_reference": ratio,
                "speedup_spread": spread,
                "effective_gflops": gflops,
                "pct_of_peak": 100 * gflops / peak if gflops and peak else None,
            }
        )
    return out


def versions(stats: dict) -> dict:
    """Every runtime version the backends reported (the machine class needs them)."""
    merged: dict = {}
    for st in stats.values():
        merged |= st.info.get("versions", {})
    return dict(sorted(merged.items()))


def run_bench(
    artifact_dir,
    threads: int = 2,
    batch: int = 1,
    runs: int = 50,
    warmup: int = 5,
    backends: list[str] | None = None,
    timeout: float = 300.0,
    peak: bool = True,
    peers: bool = False,
    stability: Stability | None = None,
    compile_peers: bool = True,
) -> dict:
    """Benchmark the reference, every runnable artifact (and the peers, torch.compile ones only
    with ``compile_peers``), interleaved, repeated until stable; returns the JSON doc."""
    import tempfile

    from lightseg.artifact import load_manifest
    from lightseg.benchmarks.harness import machine, reference_checkpoint
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set

    manifest = load_manifest(artifact_dir)
    pre = Preprocessing.from_dict(manifest.preprocessing)
    rule = stability or Stability()
    subs = subjects(manifest, backends, threads, peers, compile_peers)  # bad input stops here
    load_before = os.getloadavg()
    peaks = _peaks(threads) if peak else None
    with tempfile.TemporaryDirectory(prefix="lightseg-bench-") as tmp:
        x_path = str(Path(tmp) / "x.npy")
        np.save(x_path, input_set("verification", pre, batch).x)
        bench = Bench(subs, x_path, threads, timeout)
        try:
            bench.open(warmup)
            noise = run_blocks(bench, runs, rule)
        finally:
            bench.close()
    if bench.stats[REFERENCE].status != "ok":
        raise LightsegError(f"the PyTorch reference failed: {bench.stats[REFERENCE].message}")
    ck = reference_checkpoint(manifest)
    gmacs = model_gmacs(ck, (pre.channels, pre.size, pre.size)) * batch
    measured = (peaks or {}).get("measured_gflops", {})
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "lightseg-latency",
        "machine": machine(),
        "versions": versions(bench.stats),
        "threads": threads,
        "batch": batch,
        "input": [batch, pre.channels, pre.size, pre.size],
        "runs": runs,
        "warmup": warmup,
        "interleaved_round": ROUND,
        "cpus": bench.cpus,
        "stable": noise["stable"],
        "noise": noise | {"load_before": load_before, "load_after": os.getloadavg()},
        "model_gmacs": gmacs,
        "backends": rows(bench.stats, gmacs, measured, rule.within),
    }
    if peaks:
        doc["peaks"] = peaks
        doc["peak_gflops"] = measured
    return doc


def _peaks(threads: int) -> dict:
    from lightseg.benchmarks.peaks import peaks_doc

    return peaks_doc(threads)


def noise_lines(doc: dict) -> list[str]:
    """The noise figures as plain lines; the first says loudly when the ratios are unreliable."""
    n = doc["noise"]
    lines = []
    if not doc["stable"]:
        lines.append(
            f"NOISY: ratios not reliable (p50s of the last two blocks differ by more than "
            f"{100 * n['within']:.0f}% after {n['blocks']} blocks)"
        )
    probe = n.get("probe_ms") or {}
    lines.append(
        f"noise: load average {n['load_before'][0]:.2f} -> {n['load_after'][0]:.2f}; "
        f"{n['blocks']} blocks of {n['block_runs']} runs, stable within "
        f"{100 * n['within']:.0f}%: {'yes' if doc['stable'] else 'NO'}; probe kernel "
        f"max/p50 {probe.get('max_over_p50', 0):.2f}, CV {probe.get('cv', 0):.2f}; "
        f"CPUs {doc['cpus'] if doc['cpus'] is not None else 'not pinned'}"
    )
    return lines


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


COLUMNS = (
    "backend", "precision", "load s", "first ms", "p50", "p90", "p99", "CV", "drift",
    "RSS MB", "x ref", "GFLOP/s", "% peak", "status",
)  # fmt: skip


def _cells(b: dict) -> list[str]:
    """One table row; drift marked '!' where the last two blocks disagree, x ref with its spread."""
    if b["status"] != "ok":
        return [b["name"], b["precision"], *["-"] * 11, f"{b['status']}: {b['message']}"[:60]]
    used = b["precision_used"]
    ratio = _f(b["speedup_vs_reference"], ".2f")
    if b["speedup_spread"] is not None:
        ratio += f"±{100 * b['speedup_spread']:.0f}%"
    return [
        b["name"],
        b["precision"] + (f"->{used}" if used != b["precision"] else ""),
        f"{b['load_s']:.2f}",
        f"{b['first_ms']:.1f}",
        f"{b['p50']:.2f}",
        f"{b['p90']:.2f}",
        f"{b['p99']:.2f}",
        f"{b['cv']:.2f}",
        f"{100 * b['drift']:+.0f}%" + ("" if b["stable"] else "!"),
        _f(b["peak_rss_mb"], ".0f"),
        ratio,
        _f(b["effective_gflops"], ".1f"),
        _f(b["pct_of_peak"], ".0f"),
        "ok" if b["stable"] else "ok, noisy",
    ]


def table(doc: dict):
    from rich.table import Table

    noisy = "" if doc["stable"] else "NOISY: ratios not reliable; "
    t = Table(
        title=f"{noisy}latency, batch {doc['batch']}, {doc['threads']} threads, {doc['runs']} runs "
        f"(interleaved, last 2 of {doc['noise']['blocks']} blocks) on {doc['machine']['cpu']}"
    )
    for col in COLUMNS:
        t.add_column(col, justify="right")
    for b in doc["backends"]:
        t.add_row(*_cells(b))
    caption = []
    if "peak_gflops" in doc:
        measured = doc["peak_gflops"]
        documented = doc["peaks"]["documented_gflops"]
        caption.append(
            "peaks GFLOP/s (OpenVINO conv, same run / documented): "
            + ", ".join(f"{k} {_f(measured.get(k), '.0f')} / {_f(documented.get(k), '.0f')}"
                        for k in ("fp32", "bf16", "int8"))
        )  # fmt: skip
    t.caption = "\n".join(caption)
    return t


def write_json(doc: dict, path: Path) -> None:
    from lightseg.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
