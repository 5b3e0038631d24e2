"""``x86-auto``: of the x86 candidates an export built and verified, keep the fastest that passes.

The export target ``x86-auto`` builds the candidates (ONNX Runtime fp32; U8S8 QDQ int8 with
everything quantized, with ConvTranspose left in float, with ConvTranspose and the last conv in
float; where OpenVINO is installed, OpenVINO fp32, bf16 (the fp32 IR compiled with
``INFERENCE_PRECISION_HINT=bf16``) and int8), each verified by the judge on the verification set
like every artifact. :func:`pick` then times them interleaved with the PyTorch reference (each in
its own process, :func:`lightseg.benchmarks.latency.run_bench`) and keeps the fastest p50 among
those whose verdict passed and whose mean mask Dice vs fp32 is at least ``MIN_DICE_VS_FP32``.
The others lose the ``x86-auto`` target (their files are deleted unless another target ships
them) and the evidence goes to ``manifest.extra["auto_pick"]``.
"""

from __future__ import annotations

from pathlib import Path

from lightseg.artifact import Manifest, load_manifest
from lightseg.errors import GateFailed

TARGET = "x86-auto"
RUNS = 20  # timed runs per candidate (interleaved rounds)
WARMUP = 3
MIN_DICE_VS_FP32 = 0.99  # on top of the precision's gate: the pick must keep the masks


def _row(art, bench_row: dict) -> dict:
    """One candidate's evidence: its verdict (from the manifest) and its latency."""
    v = art.verification
    timed = bench_row["status"] == "ok"
    dice_ok = (v.get("dice_ref_mean") or 0.0) >= MIN_DICE_VS_FP32
    passed = v.get("status") == "pass" and timed and dice_ok
    if v.get("status") != "pass":
        reason = v.get("reason") or v.get("status", "not verified")
    elif not timed:
        reason = bench_row.get("message", "")
    elif not dice_ok:
        reason = f"mean Dice vs fp32 {v.get('dice_ref_mean', 0):.4f} < {MIN_DICE_VS_FP32}"
    else:
        reason = ""
    return {
        "name": art.name,
        "backend": art.backend,
        "precision": art.precision,
        "p50_ms": bench_row["p50"] if timed else None,
        "p90_ms": bench_row["p90"] if timed else None,
        "cv": bench_row["cv"] if timed else None,
        "speedup_vs_pytorch": bench_row["speedup_vs_reference"],
        "size_bytes": art.size_bytes,
        "parity": v.get("status", "-"),
        "dice_vs_fp32_mean": v.get("dice_ref_mean"),
        "dice_vs_fp32_min": v.get("dice_ref_min"),
        "prob_abs_max": v.get("prob_abs_max"),
        "prob_abs_p99": v.get("prob_abs_p99"),
        "passed": passed,
        "reason": reason,
    }


def evaluate(folder: Path, names: list[str], threads: int = 2, runs: int = RUNS) -> list[dict]:
    """Verdict (from the manifest) and interleaved latency of the candidates ``names``."""
    from lightseg.benchmarks.latency import run_bench

    manifest = load_manifest(folder)
    bench = run_bench(folder, threads=threads, runs=runs, warmup=WARMUP, backends=names, peak=False)
    by = {b["name"]: b for b in bench["backends"]}
    rows = [_row(manifest.artifact(n), by[n]) for n in names if n in by]
    ref = by["pytorch-reference"]
    rows.append(
        {
            "name": "pytorch-reference",
            "backend": "pytorch",
            "precision": "fp32",
            "p50_ms": ref["p50"],
            "p90_ms": ref["p90"],
            "cv": ref["cv"],
            "speedup_vs_pytorch": 1.0,
            "passed": None,
            "parity": "reference",
        }
    )
    return rows


def choose(rows: list[dict]) -> dict | None:
    """The passing candidate with the lowest p50 (None if none passes)."""
    ok = [r for r in rows if r.get("passed") and r.get("p50_ms")]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else None


def table_lines(rows: list[dict], chosen: str | None) -> list[str]:
    """The evidence as a plain-text table (one string per line)."""

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    fmt = "{:<26} {:<5} {:>8} {:>8} {:>9} {:>12} {:>8}  {}"
    head = ("candidate", "prec", "p50 ms", "p90 ms", "x pytorch", "dice vs fp32", "max dp")
    lines = [fmt.format(*head, "parity")]
    for r in rows:
        mark = " <- chosen" if r["name"] == chosen else ""
        verdict = r["parity"] + (f" ({r['reason']})" if r.get("reason") else "") + mark
        lines.append(
            fmt.format(
                r["name"],
                r["precision"],
                f(r.get("p50_ms"), ".2f"),
                f(r.get("p90_ms"), ".2f"),
                f(r.get("speedup_vs_pytorch"), ".2f"),
                f(r.get("dice_vs_fp32_mean"), ".4f"),
                f(r.get("prob_abs_max"), ".1e"),
                verdict,
            )
        )
    return lines


def _drop_losers(manifest: Manifest, chosen: str) -> None:
    """Losers leave the target; an artifact no target ships leaves the folder (shared files
    stay)."""
    for a in manifest.artifacts:
        if a.name != chosen and TARGET in a.targets:
            a.targets.remove(TARGET)
    keep = [a for a in manifest.artifacts if a.targets]
    kept_files = {p.resolve() for a in keep for p in manifest.paths(a)}
    for a in manifest.artifacts:
        if a.targets:
            continue
        for p in manifest.paths(a):
            if p.resolve() not in kept_files and p.is_file():
                p.unlink()
    manifest.artifacts = keep
    folder = manifest.root / "openvino"
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def pick(folder: str | Path, threads: int = 2, runs: int = RUNS, say=print) -> dict:
    """Time the x86-auto candidates of an export folder, keep the winner, record the evidence."""
    manifest = load_manifest(folder)
    names = [a.name for a in manifest.artifacts if TARGET in a.targets]
    if not names:
        raise GateFailed(f"{folder}: no {TARGET} candidates in the manifest (export the target)")
    say(f"{TARGET}: latency of {len(names)} verified candidates ...")
    rows = evaluate(Path(folder), names, threads=threads, runs=runs)
    best = choose(rows)
    for line in table_lines(rows, best and best["name"]):
        say(line)
    if best is None:
        raise GateFailed(f"{TARGET}: no candidate passed the parity gate (see the table above)")
    evidence = {
        "chosen": best["name"],
        "rule": "lowest p50 latency among candidates that pass the judge's gate and keep mean mask "
        f"Dice >= {MIN_DICE_VS_FP32} vs the fp32 reference",
        "threads": threads,
        "runs": runs,
        "parity_inputs": manifest.extra.get("input_sets", {}).get("verification"),
        "tolerances": "lightseg.judge tolerances.toml",
        "candidates": rows,
    }
    _drop_losers(manifest, best["name"])
    manifest.extra["auto_pick"] = evidence
    manifest.save(manifest.root)
    say(f"{TARGET}: chose {best['name']} (p50 {best['p50_ms']:.2f} ms)")
    return evidence
