"""``x86-auto``: build the x86 candidate configurations, keep the fastest that passes parity.

Candidates (each a real artifact): ONNX Runtime fp32, U8S8 QDQ int8 (everything quantized; with
ConvTranspose left in float; with ConvTranspose and the last conv in float) and, where OpenVINO
is installed, OpenVINO fp32, bf16 (the fp32 IR compiled with ``INFERENCE_PRECISION_HINT=bf16``)
and int8. Every candidate is judged with the parity harness (``run_parity``: layered verdict,
``benchmarks/tolerances.toml``) on phantom slices with lesions and timed with ``run_bench``
(interleaved with the PyTorch reference, each backend in its own process). The fastest p50
that passes is kept; the others are removed from the folder and the manifest, and the table of
candidates goes to ``manifest.extra["auto_pick"]``.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path

from lightseg.errors import GateFailed
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.export.manifest import Manifest

PARITY_N = 8  # phantom slices with lesions for the parity gate
RUNS = 20  # timed runs per candidate (interleaved rounds)
WARMUP = 3
MIN_DICE_VS_FP32 = 0.99  # issue target for the picked artifact, on top of its precision's gate


def _int8_variant(name: str, fname: str, ops: tuple, last: bool) -> Callable[[ExportContext], str]:
    def build(ctx: ExportContext) -> str:
        from lightseg.export.quantize import _tools, calib_cache, quantize_int8

        calib = ctx.x if ctx.calib is None else ctx.calib
        with timer() as t:
            path = ctx.out / fname
            cache = calib_cache(ctx)
            excl = quantize_int8(
                ctx.files["onnx-fp32"], path, calib, ctx.calibration, cache=cache,
                exclude_ops=ops, exclude_last_conv=last,
            )  # fmt: skip
        artifact(
            ctx,
            name,
            path,
            t(),
            backend="onnxruntime",
            precision="int8",
            format="onnx",
            tools=_tools(),
            options={
                "format": "QDQ",
                "activations": "uint8",
                "weights": "int8 per-channel",
                "calibration": ctx.calibration,
                "float_nodes": excl,
                "dynamic_batch": True,
            },
            verification={"status": "skipped", "reason": "judged by the x86-auto parity gate"},
            **ctx.io("batch"),
        )
        return name

    return build


def _openvino(precision: str) -> Callable[[ExportContext], str]:
    def build(ctx: ExportContext) -> str:
        from lightseg.export import openvino

        if f"openvino-{precision}" not in ctx.artifacts:
            openvino.build(ctx, precision)
        return f"openvino-{precision}"

    return build


def _openvino_bf16(ctx: ExportContext) -> str:
    """The fp32 IR, compiled with INFERENCE_PRECISION_HINT=bf16 (AMX/AVX512-BF16 CPUs)."""
    _openvino("fp32")(ctx)
    a = copy.deepcopy(ctx.artifacts["openvino-fp32"])
    a.name, a.precision, a.targets = "openvino-bf16", "bf16", []
    a.options["run_with"] = {"INFERENCE_PRECISION_HINT": "bf16"}
    a.verification = {"status": "skipped", "reason": "judged by the x86-auto parity gate"}
    ctx.artifacts[a.name] = a
    return a.name


def _have_openvino() -> bool:
    return importlib.util.find_spec("openvino") is not None


#: (candidate builder, available?) in the order they are built. Tests append broken ones.
CANDIDATES: list[tuple[Callable[[ExportContext], str], Callable[[], bool]]] = [
    (lambda ctx: "onnx-fp32", lambda: True),
    (lambda ctx: "onnx-int8", lambda: True),
    (
        _int8_variant("onnx-int8-convt-fp", "model-int8-convt-fp.onnx", ("ConvTranspose",), False),
        lambda: True,
    ),
    (
        _int8_variant(
            "onnx-int8-convt-last-fp", "model-int8-convt-last-fp.onnx", ("ConvTranspose",), True
        ),
        lambda: True,
    ),
    (_openvino("fp32"), _have_openvino),
    (_openvino_bf16, _have_openvino),
    (_openvino("int8"), _have_openvino),
]


def _candidate_manifest(ctx: ExportContext, ckpt, names: list[str], folder: Path) -> None:
    """A manifest in ``folder`` whose artifacts point (absolute paths) into the export folder."""
    arts = []
    for n in names:
        a = copy.deepcopy(ctx.artifacts[n])
        a.path = str((ctx.out / a.path).resolve())
        arts.append(a)
    Manifest(
        source={"checkpoint": str(ckpt.path), "weights_sha256": ckpt.weights_sha256},
        preprocessing=ctx.pre.to_dict(),
        classes=ctx.classes,
        artifacts=arts,
    ).save(folder)


def fresh_parity(folder, n: int, threads: int, backends: list[str] | None = None):
    """``run_parity`` in a fresh (spawned) process.

    Measured: after the export steps of a full run, the in-process PyTorch reference of a real
    checkpoint came out without any lesion (every Dice trivially 1), while a fresh process gave
    the right masks; the parity gate therefore never runs in the exporting process.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lightseg.benchmarks.harness import run_parity

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(run_parity, str(folder), "synth", n, backends, threads=threads).result()


def evaluate(folder: Path, threads: int = 2, runs: int = RUNS, n: int = PARITY_N) -> list[dict]:
    """Parity verdict and interleaved latency of every artifact in ``folder``'s manifest."""
    from lightseg.benchmarks.latency import run_bench

    par = fresh_parity(folder, n, threads)
    verdicts = {v.name: v for v in par.verdicts}
    lesion_px = int((par.reference.argmax(1) > 0).sum())
    bench = run_bench(folder, threads=threads, runs=runs, warmup=WARMUP, peak=False)
    rows = []
    for b in bench["backends"]:
        if b["name"] == "pytorch-reference":
            continue
        v = verdicts[b["name"]]
        m = v.metrics
        dice_ok = (m.get("dice_ref_mean") or 0.0) >= MIN_DICE_VS_FP32
        ok = v.status == "pass" and b["status"] == "ok" and dice_ok
        rows.append(
            {
                "name": b["name"],
                "backend": b["backend"],
                "precision": b["precision"],
                "p50_ms": b["p50"] if b["status"] == "ok" else None,
                "p90_ms": b["p90"] if b["status"] == "ok" else None,
                "speedup_vs_pytorch": b["speedup_vs_reference"],
                "size_bytes": b["size_bytes"],
                "parity": v.status,
                "dice_vs_fp32_mean": m.get("dice_ref_mean"),
                "dice_vs_fp32_min": m.get("dice_ref_min"),
                "prob_abs_max": m.get("prob_abs_max"),
                "prob_abs_p99": m.get("prob_abs_p99"),
                "passed": ok,
                "reason": (
                    v.reason()
                    if v.status != "pass"
                    else b.get("message", "")
                    if dice_ok
                    else f"mean Dice vs fp32 {m.get('dice_ref_mean', 0):.4f} < {MIN_DICE_VS_FP32}"
                ),
            }
        )
    ref = next(b for b in bench["backends"] if b["name"] == "pytorch-reference")
    rows.append(
        {
            "name": "pytorch-reference",
            "backend": "pytorch",
            "precision": "fp32",
            "p50_ms": ref["p50"],
            "p90_ms": ref["p90"],
            "speedup_vs_pytorch": 1.0,
            "passed": None,
            "parity": "reference",
            "lesion_pixels": lesion_px,
        }
    )
    return rows


def choose(rows: list[dict]) -> dict | None:
    """The passing candidate with the lowest p50 (None if none passes)."""
    ok = [r for r in rows if r.get("passed") and r.get("p50_ms")]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else None


def table_lines(rows: list[dict], chosen: str | None) -> list[str]:
    """The evidence as a plain-text table (one string per line)."""
    head = (
        "candidate",
        "prec",
        "p50 ms",
        "p90 ms",
        "x pytorch",
        "dice vs fp32",
        "max dp",
        "parity",
    )
    lines = ["{:<26} {:<5} {:>8} {:>8} {:>9} {:>12} {:>8}  {}".format(*head)]
    for r in rows:
        mark = " <- chosen" if r["name"] == chosen else ""

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        lines.append(
            "{:<26} {:<5} {:>8} {:>8} {:>9} {:>12} {:>8}  {}".format(
                r["name"],
                r["precision"],
                f(r.get("p50_ms"), ".2f"),
                f(r.get("p90_ms"), ".2f"),
                f(r.get("speedup_vs_pytorch"), ".2f"),
                f(r.get("dice_vs_fp32_mean"), ".4f"),
                f(r.get("prob_abs_max"), ".1e"),
                (r["parity"] + (f" ({r['reason']})" if r.get("reason") else "")) + mark,
            )
        )
    return lines


def _remove_unkept(ctx: ExportContext, keep: set[str]) -> None:
    """Delete the files of artifacts not in ``keep`` (unless a kept one shares them)."""

    def files(a) -> set[Path]:
        p = ctx.out / a.path
        extra = {p.with_suffix(".bin")} if a.format == "xml" else set()
        return {p} | extra

    kept = set().union(*(files(ctx.artifacts[k]) for k in keep if k in ctx.artifacts))
    for name in list(ctx.artifacts):
        if name in keep:
            continue
        for f in files(ctx.artifacts.pop(name)) - kept:
            f.unlink(missing_ok=True)
    for d in (ctx.out / "openvino",):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def pick(ctx: ExportContext, ckpt, keep: set[str], threads: int = 2, say=print) -> dict:
    """Build, judge and time the candidates; keep the winner (and ``keep``); return evidence."""
    names = [build(ctx) for build, available in CANDIDATES if available()]
    folder = Path(tempfile.mkdtemp(prefix="auto.", dir=ctx.cache_dir))
    _candidate_manifest(ctx, ckpt, names, folder)
    say(f"x86-auto: parity gate and latency on {len(names)} candidates ...")
    rows = evaluate(folder, threads=threads)
    best = choose(rows)
    for line in table_lines(rows, best and best["name"]):
        say(line)
    if best is None:
        raise GateFailed("x86-auto: no candidate passed the parity gate (see the table above)")
    ctx.artifacts[best["name"]].targets.append("x86-auto")
    ctx.artifacts[best["name"]].verification = {
        "status": "passed",
        "gate": "benchmarks/tolerances.toml via run_parity (x86-auto)",
        **{k: best[k] for k in ("dice_vs_fp32_mean", "dice_vs_fp32_min", "prob_abs_max")},
        "prob_abs_p99": best["prob_abs_p99"],
    }
    _remove_unkept(ctx, keep | {best["name"]})
    say(f"x86-auto: chose {best['name']} (p50 {best['p50_ms']:.2f} ms)")
    lesion_px = rows[-1]["lesion_pixels"]
    if lesion_px == 0:
        say(
            "x86-auto: WARNING the fp32 reference predicts no lesion on the parity slices: "
            "mask Dice is trivially 1 (is the checkpoint trained?)"
        )
    return {
        "chosen": best["name"],
        "rule": "lowest p50 latency among candidates that pass the parity gate and keep mean mask "
        f"Dice >= {MIN_DICE_VS_FP32} vs the fp32 reference",
        "threads": threads,
        "runs": RUNS,
        "parity_inputs": f"phantom slices with lesions (n={PARITY_N})",
        "reference_lesion_pixels": lesion_px,
        "tolerances": "benchmarks/tolerances.toml",
        "candidates": rows,
    }
