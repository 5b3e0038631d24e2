"""Gated auto-tune per device family: runtime x precision x execution mode, fastest that passes.

For a family (x86, openvino, android-ort, executorch, web, jetson) the candidates are the export's
artifacts for it plus run-time variants of them (OpenVINO ``EXECUTION_MODE_HINT`` ACCURACY vs
PERFORMANCE, ``INFERENCE_PRECISION_HINT`` bf16) and, on x86, the peers a user would reach for
alone (ORT and OpenVINO defaults, torch.compile fp32 / bf16 autocast). Variants and peers are
written into the manifest as artifacts over the same files, so every candidate is judged by
``lightseg parity``'s own run (the one judge, the verification set, ``--n auto``) and timed by
``lightseg bench``'s own interleaved, repeat-until-stable run. The fastest candidate that passes
is kept (on ``web`` and ``jetson``, whose latency cannot be measured here, the smallest that
passes); the evidence (every candidate's verdict with its CI, latency with noise figures) goes
to ``manifest.extra["auto_tune"][family]``. Results are cached in the export folder under a key
of the candidates' hashes and options, the tolerance file and the machine class, so a rerun
with nothing changed is instant.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lightseg.artifact import Artifact, Manifest, load_manifest
from lightseg.errors import GateFailed, LightsegError
from lightseg.fileio import atomic_write_text, sha256_path, size_path

RUNS = 20
WARMUP = 3
CACHE = ".tune-cache.json"
CHECKPOINT_DIR = "checkpoint"
VARIANT = "tune_variant"  # option marking an artifact the tuner added (removed after tuning)


def variant(base: Artifact, suffix: str, run_with: dict, precision: str | None = None):
    """``base`` run with other OpenVINO properties, as an artifact over the same files."""
    a = copy.deepcopy(base)
    a.name = f"{base.name}-{suffix}"
    a.precision = precision or base.precision
    a.options = {**base.options, "run_with": {**base.options.get("run_with", {}), **run_with},
                 VARIANT: base.name}  # fmt: skip
    a.verification, a.targets = {}, []
    return a


def _openvino_modes(m: Manifest) -> list[Artifact]:
    """OpenVINO IRs, each also in PERFORMANCE and ACCURACY execution mode, and int8 IRs also with
    their float parts in bf16 (``-bf16``, still judged as int8).

    The runner pins INFERENCE_PRECISION_HINT (f32, bf16 for bf16 artifacts), and a pinned hint
    wins over PERFORMANCE mode, so the mode variants keep f32; bf16 float parts (what OpenVINO
    does by default on AMX) are their own variant. Where the CPU has no bf16, OpenVINO runs f32
    and the runner's ``info`` says so.
    """
    out = []
    for a in m.artifacts:
        if a.backend != "openvino" or VARIANT in a.options:
            continue
        out.append(a)
        for mode in ("PERFORMANCE", "ACCURACY"):
            out.append(variant(a, mode.lower(), {"EXECUTION_MODE_HINT": mode}))
        if a.precision == "int8":
            out.append(variant(a, "bf16", {"INFERENCE_PRECISION_HINT": "bf16"}))
    return out


def _by(m: Manifest, pred: Callable[[Artifact], bool]) -> list[Artifact]:
    return [a for a in m.artifacts if pred(a) and VARIANT not in a.options]


@dataclass(frozen=True)
class Family:
    name: str
    device: str
    timed: bool  # False: latency not measurable here; the smallest passing artifact wins
    peers: bool
    select: Callable[[Manifest], list[Artifact]]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "x86", "x86 server CPU: ORT and OpenVINO, every precision and mode", True, True,
            lambda m: _by(m, lambda a: a.backend == "onnxruntime" and "fixed" not in a.name
                          and "trt" not in a.name) + _openvino_modes(m),
        ),
        Family("openvino", "OpenVINO CPU: precision x execution mode", True, False,
               _openvino_modes),
        Family("android-ort", "Android ORT Mobile (.ort; timed on this CPU)", True, False,
               lambda m: _by(m, lambda a: a.format == "ort")),
        Family("executorch", "ExecuTorch XNNPACK (.pte; timed on this CPU)", True, False,
               lambda m: _by(m, lambda a: a.backend == "executorch")),
        Family("web", "browser, onnxruntime-web (fixed-shape ONNX; judged here, not timed)",
               False, False,
               lambda m: _by(m, lambda a: a.format == "onnx" and ("fixed" in a.name
                                                                  or a.precision == "fp16"))),
        Family("jetson", "Jetson TensorRT int8 QDQ files (judged on ORT CPU here, not timed: "
               "the smallest passing file keeps the fewest float layers)", False, False,
               lambda m: _by(m, lambda a: a.format == "onnx" and "int8-trt" in a.name)),
    )
}  # fmt: skip


def _checkpoint_artifact(m: Manifest) -> Artifact | None:
    """The source checkpoint copied into the folder (torch.compile peers run it)."""
    from lightseg.checkpoint import resolve

    src = resolve(m.source.get("checkpoint") or None)
    dst = m.root / CHECKPOINT_DIR
    if not dst.exists():
        shutil.copytree(src, dst)
    like = next((a for a in m.artifacts if a.inputs), None)
    return Artifact(
        name="pytorch-checkpoint", path=CHECKPOINT_DIR, backend="pytorch-eager",
        precision="fp32", format="safetensors", sha256=sha256_path(dst),
        size_bytes=size_path(dst), inputs=copy.deepcopy(like.inputs) if like else [],
        options={VARIANT: "checkpoint"},
    )  # fmt: skip


def candidates(m: Manifest, family: Family, peers: bool) -> list[Artifact]:
    """The family's candidates (and peers), added to ``m`` as artifacts over existing files."""
    from lightseg.benchmarks.peers import peer_artifacts

    cands = family.select(m)
    if peers and family.peers:
        ck = _checkpoint_artifact(m)
        m.artifacts.append(ck)
        for p in peer_artifacts(m):
            p.options[VARIANT] = "peer"
            cands.append(p)
    have = {a.name for a in m.artifacts}
    m.artifacts += [a for a in cands if a.name not in have]
    if not cands:
        raise LightsegError(f"{m.root}: no artifact for the {family.name} family (export it)")
    return cands


def cache_key(cands: list[Artifact], threads: int, effort: Effort) -> str:
    from lightseg.benchmarks.harness import machine
    from lightseg.judge.verdict import DEFAULT_TOLERANCES

    doc = {
        "candidates": [(a.name, a.backend, a.precision, a.sha256, a.files, a.options)
                       for a in cands],
        "tolerances": sha256_path(DEFAULT_TOLERANCES),
        "machine": {k: machine()[k] for k in ("cpu", "cores")},
        "threads": threads,
        "effort": [effort.parity_cap, effort.max_blocks],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _row(v, b: dict | None, art: Artifact) -> dict:
    """One candidate's evidence: the judge's verdict with CIs and the latency with noise."""
    from lightseg.export.quantize import LAYER_OPTIONS

    timed = b is not None and b["status"] == "ok"
    ok = v is not None and v.status == "pass"
    return {
        "name": art.name,
        "backend": art.backend,
        "precision": art.precision,
        "run_with": art.options.get("run_with", {}),
        "peer": art.options.get(VARIANT) == "peer",
        "parity": v.status if v else "not judged",
        "reason": (v.reason() if v and v.status != "pass" else "") if v else "",
        "dice_vs_fp32_mean": v.metrics.get("large_dice_mean") if v else None,
        "dice_ci": list(v.ci.get("large_dice_mean", [])) if v else [],
        "gt_dice_ratio": v.metrics.get("gt_dice_ratio") if v else None,
        "gt_ratio_ci": list(v.ci.get("gt_dice_ratio", [])) if v else [],
        "p50_ms": b["p50"] if timed else None,
        "p90_ms": b["p90"] if timed else None,
        "cv": b["cv"] if timed else None,
        "stable": b.get("stable") if timed else None,
        "speedup_vs_pytorch": b.get("speedup_vs_reference") if timed else None,
        "size_bytes": art.size_bytes,
        "layers": {k: art.options[k] for k in LAYER_OPTIONS if k in art.options},
        "passed": ok and (timed or b is None),
    }


@dataclass(frozen=True)
class Effort:
    """How hard to look: the parity set's cap for ``--n auto`` and the bench's block limit.

    Defaults to the judge's and the bench's own defaults; tests and ``--quick`` lower them.
    """

    parity_cap: int = 256
    max_blocks: int = 6


def evaluate(folder: Path, names: list[str], family: Family, threads: int, runs: int,
             effort: Effort = Effort()) -> dict:  # fmt: skip
    """Judge (``run_parity``, n auto) and time (``run_bench``) the candidates ``names``."""
    from lightseg.benchmarks.harness import run_parity
    from lightseg.benchmarks.latency import Stability, run_bench

    m = load_manifest(folder)
    par = run_parity(folder, "verification", None, names, threads=threads, cap=effort.parity_cap)
    verdicts = {v.name: v for v in par.verdicts}
    bench = None
    if family.timed:
        rule = Stability(max_blocks=effort.max_blocks)
        bench = run_bench(folder, threads=threads, runs=runs, warmup=WARMUP, backends=names,
                          peak=False, stability=rule)  # fmt: skip
    timing = {b["name"]: b for b in (bench or {}).get("backends", [])}
    rows = [_row(verdicts.get(n), timing.get(n) if bench else None, m.artifact(n)) for n in names]
    if bench:
        ref = timing["pytorch-reference"]
        rows.append({"name": "pytorch-reference", "backend": "pytorch", "precision": "fp32",
                     "parity": "reference", "p50_ms": ref["p50"], "p90_ms": ref["p90"],
                     "cv": ref["cv"], "stable": ref.get("stable"), "speedup_vs_pytorch": 1.0,
                     "passed": None})  # fmt: skip
    return {
        "rows": rows,
        "parity_inputs": par.meta.get("inputs"),
        "n_tried": par.meta.get("n_auto", {}).get("tried"),
        "stable": bench["stable"] if bench else None,
        "noise": bench["noise"] if bench else None,
        "machine": par.meta.get("machine"),
    }


def choose(rows: list[dict], timed: bool = True) -> dict | None:
    """The passing candidate with the lowest p50 (or the smallest file when not timed)."""
    ok = [r for r in rows if r.get("passed") and (r.get("p50_ms") or not timed)]
    if not ok:
        return None
    return min(ok, key=(lambda r: r["p50_ms"]) if timed else (lambda r: r["size_bytes"]))


def table_lines(rows: list[dict], chosen: str | None) -> list[str]:
    """The evidence as a plain-text table (one string per line)."""

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    def ci(r):
        lo_hi = r.get("dice_ci") or []
        return f"{f(r.get('dice_vs_fp32_mean'), '.4f')}" + (
            f" [{lo_hi[0]:.3f},{lo_hi[1]:.3f}]" if len(lo_hi) == 2 else ""
        )

    fmt = "{:<34} {:<5} {:>8} {:>8} {:>6} {:>9} {:>22}  {}"
    lines = [fmt.format("candidate", "prec", "p50 ms", "p90 ms", "CV", "x pytorch",
                        "Dice vs fp32 [95% CI]", "verdict")]  # fmt: skip
    for r in rows:
        mark = " <- chosen" if r["name"] == chosen else ""
        noisy = "" if r.get("stable") in (None, True) else " (noisy)"
        verdict = r["parity"] + (f" ({r['reason']})" if r.get("reason") else "") + noisy + mark
        lines.append(fmt.format(
            r["name"] + (" [peer]" if r.get("peer") else ""), r["precision"],
            f(r.get("p50_ms"), ".2f"), f(r.get("p90_ms"), ".2f"), f(r.get("cv"), ".2f"),
            f(r.get("speedup_vs_pytorch"), ".2f"), ci(r), verdict,
        ))  # fmt: skip
    return lines


def _cached(folder: Path, key: str) -> dict | None:
    f = folder / CACHE
    try:
        return json.loads(f.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _store(folder: Path, key: str, result: dict) -> None:
    f = folder / CACHE
    try:
        doc = json.loads(f.read_text()) if f.is_file() else {}
    except ValueError:
        doc = {}
    doc[key] = result
    atomic_write_text(f, json.dumps(doc, indent=1, default=str) + "\n")


def _settle(m: Manifest, chosen: str | None, target: str | None) -> None:
    """Keep the chosen candidate; drop the other variants and peers (files are shared)."""
    keep_variant = {chosen} if chosen else set()
    m.artifacts = [a for a in m.artifacts if VARIANT not in a.options or a.name in keep_variant]
    if not any(a.path == CHECKPOINT_DIR for a in m.artifacts):
        shutil.rmtree(m.root / CHECKPOINT_DIR, ignore_errors=True)
    if target and chosen and target not in m.artifact(chosen).targets:
        m.artifact(chosen).targets.append(target)


def tune(folder: str | Path, family: str = "x86", threads: int = 2, runs: int = RUNS,
         peers: bool = True, use_cache: bool = True, target: str | None = None,
         effort: Effort = Effort(), say: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Judge and time ``family``'s candidates in an export folder; record and return the pick.

    Holds the export folder's lock throughout: the manifest is rewritten and files removed.
    """
    from lightseg.export.targets import export_lock

    if not (Path(folder) / "manifest.json").is_file():
        load_manifest(folder)  # the one-line error for a folder that is not an export
    with export_lock(Path(folder)):
        return _tune(folder, family, threads, runs, peers, use_cache, target, effort, say)


def _tune(folder, family, threads, runs, peers, use_cache, target, effort, say) -> dict:
    if family not in FAMILIES:
        raise LightsegError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    fam = FAMILIES[family]
    folder = Path(folder)
    m = load_manifest(folder)
    cands = candidates(m, fam, peers)
    names = [a.name for a in cands]
    m.save(folder)
    key = cache_key(cands, threads, effort)
    result = _cached(folder, key) if use_cache else None
    if result is None:
        how = "judging and timing" if fam.timed else "judging (not timed here)"
        say(f"tune {family}: {how} {len(names)} candidates ...")
        result = evaluate(folder, names, fam, threads, runs, effort)
        _store(folder, key, result)
    else:
        say(f"tune {family}: cached result for these {len(names)} candidates (--no-cache reruns)")
    best = choose(result["rows"], fam.timed)
    for line in table_lines(result["rows"], best and best["name"]):
        say(line)
    m = load_manifest(folder)
    evidence = {
        "family": family,
        "device": fam.device,
        "chosen": best and best["name"],
        "rule": ("lowest p50 among candidates that pass the judge (lightseg.judge, strict gates)"
                 if fam.timed else "smallest file among candidates that pass the judge"),
        "threads": threads,
        "runs": runs,
        "cache_key": key,
        **result,
    }  # fmt: skip
    _settle(m, best and best["name"], target)
    m.extra.setdefault("auto_tune", {})[family] = evidence
    m.save(folder)
    if best is None:
        raise GateFailed(f"tune {family}: no candidate passed the judge (see the table above)")
    say(f"tune {family}: chose {best['name']}")
    return evidence
