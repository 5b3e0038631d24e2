"""The performance table in ONE run: matmul peaks, every backend, ratios, parity.

    python -m lightseg.pipeline.perf --checkpoint default --out benchmarks/results

Exports the checkpoint (x86-auto, x86-ort-int8, x86-openvino, android-executorch) and an
untrained baseline ``unet`` (fp32 and int8 ONNX / OpenVINO; latency does not depend on the
weights), then times every backend interleaved in one ``run_bench`` (each in its own process:
peak RSS per backend), measures this machine's matmul peaks in the same run, judges the
lightweight artifacts with ``run_parity`` on phantom slices with lesions, and writes
``perf.json`` and ``perf.md`` with the command, the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lightseg.fileio import sha256_path, size_path

BASE = "unet-"  # name prefix of the baseline model's rows
LIGHT_TARGETS = "x86-auto,x86-ort-int8,x86-openvino"
SKIP = ("-fixed", "trt")  # fixed-batch copies and TensorRT helpers are not timed here
TIMED = ("onnxruntime", "openvino", "executorch")
PEAK_KEY = {"fp32": "fp32", "bf16": "bf16", "int8": "int8"}


def _copy_in(bench: Path, manifest, art, name: str, sub: str):
    """A copy of ``art`` (every file it needs) under ``bench/sub``, renamed ``name``."""
    b = copy.deepcopy(art)
    b.name, b.targets = name, []
    for rel in [art.path, *art.files]:
        dst = bench / sub / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = manifest.path_of(art, rel)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    b.path = f"{sub}/{art.path}"
    b.files = {f"{sub}/{r}": h for r, h in art.files.items()}
    return b


def _timeable(bench: Path, manifest, prefix: str) -> list:
    """The export's timeable artifacts copied into ``bench`` (OpenVINO bf16 added if missing)."""
    out = []
    sub = prefix.rstrip("-") or "light"
    for a in manifest.artifacts:
        if any(s in a.name for s in SKIP) or a.backend not in TIMED:
            continue
        out.append(_copy_in(bench, manifest, a, prefix + a.name, sub))
        if a.name == "openvino-fp32" and "openvino-bf16" not in manifest.names():
            c = copy.deepcopy(out[-1])
            c.name, c.precision = prefix + "openvino-bf16", "bf16"
            c.options = {**c.options, "run_with": {"INFERENCE_PRECISION_HINT": "bf16"}}
            out.append(c)
    return out


def _ort_variants(bench: Path, arts: list) -> list:
    """ORT fp32/int8 at the basic level, and int8 saved after ORT's full optimisation (servers)."""
    import onnxruntime as ort

    out = []
    for a in [a for a in arts if a.name in ("onnx-fp32", "onnx-int8")]:
        b = copy.deepcopy(a)
        b.name, b.options = f"{a.name}-basic", {"graph_optimization_level": "basic"}
        out.append(b)
        saved = (bench / a.path).with_name(Path(a.path).stem + "-ort-optimized.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(saved)
        ort.InferenceSession(str(bench / a.path), so, providers=["CPUExecutionProvider"])
        c = copy.deepcopy(a)
        c.name, c.path = f"{a.name}-saved-optimized", saved.relative_to(bench).as_posix()
        c.sha256, c.size_bytes = sha256_path(saved), size_path(saved)
        c.options = {"graph_optimization_level": "disable", "saved_with": "ORT_ENABLE_ALL"}
        out.append(c)
    return out


def _checkpoint_artifact(bench: Path, name: str, ck: Path, like, channels_last: bool):
    """A checkpoint folder copied into ``bench``, run by PyTorch eager (``pytorch-eager``)."""
    from lightseg.artifact import Artifact

    dst = bench / "checkpoints" / name
    if not dst.exists():
        shutil.copytree(ck, dst)
    return Artifact(
        name=name,
        path=dst.relative_to(bench).as_posix(),
        backend="pytorch-eager",
        precision="fp32",
        format="safetensors",
        sha256=sha256_path(dst),
        size_bytes=size_path(dst / "weights.safetensors"),
        inputs=copy.deepcopy(like.inputs),
        outputs=copy.deepcopy(like.outputs),
        options={"channels_last": channels_last},
    )


def build(checkpoint: str, work: Path, executorch: bool, baseline: bool, say=print) -> dict:
    """Export the light (and baseline) model into ``work``; write the bench manifest."""
    import torch

    from lightseg.artifact import Manifest
    from lightseg.checkpoint import load_checkpoint, save_checkpoint
    from lightseg.export.targets import export
    from lightseg.models import create_model
    from lightseg.pipeline import autopick

    ck = load_checkpoint(checkpoint)
    targets = LIGHT_TARGETS + (",android-executorch" if executorch else "")
    say(f"export {ck.path} -> {work / 'light'} ({targets})")
    light = export(ck.path, targets, work / "light", force=True, progress=say)
    autopick.pick(work / "light", say=say)
    from lightseg.artifact import load_manifest

    light = load_manifest(work / "light")
    bench = work / "bench"
    shutil.rmtree(bench, ignore_errors=True)
    bench.mkdir(parents=True)
    arts = _timeable(bench, light, "")
    arts += _ort_variants(bench, arts)
    like = light.artifacts[0]
    arts.append(_checkpoint_artifact(bench, "pytorch-channels-last", ck.path, like, True))
    if baseline:
        torch.manual_seed(0)
        bck = work / "unet-untrained"
        save_checkpoint(create_model("unet"), bck, "unet", ck.preprocessing, ck.classes)
        say(f"export untrained unet -> {work / 'unet'} (x86-openvino)")
        base = export(bck, "x86-openvino", work / "unet", force=True, n_verify=1, calib_n=2)
        arts += _timeable(bench, base, BASE)
        arts.append(_checkpoint_artifact(bench, BASE + "pytorch-fp32", bck, like, False))
        arts.append(_checkpoint_artifact(bench, BASE + "pytorch-channels-last", bck, like, True))
    Manifest(
        source={"checkpoint": str(ck.path), "weights_sha256": ck.weights_sha256},
        preprocessing=ck.preprocessing.to_dict(),
        classes=ck.classes,
        artifacts=arts,
    ).save(bench)
    return {"light": light, "checkpoint": str(ck.path)}


def effective_gflops(gflop: float, ms: float | None) -> float | None:
    """Model GFLOP per inference / latency in seconds."""
    return gflop / (ms / 1e3) if ms else None


def pct_of_peak(gflops: float | None, peak: float | None) -> float | None:
    return 100.0 * gflops / peak if gflops and peak else None


def rows(bench: dict, verdicts: dict, peaks: dict, gflop: dict, batch: int = 1) -> list[dict]:
    """One row per backend: latency, GFLOP/s, % of peak, speed-ups, sizes, Dice vs fp32.

    ``gflop``: {"lightunet": ..., "unet": ...} per image; ``verdicts``: name -> parity Verdict
    dict (status, metrics); rows whose name starts with ``unet-`` are the baseline's.
    """
    by = {b["name"]: b for b in bench["backends"]}
    p50 = {n: b["p50"] for n, b in by.items() if b["status"] == "ok" and b["p50"]}
    eager = {"lightunet": p50.get("pytorch-reference"), "unet": p50.get(BASE + "pytorch-fp32")}

    def light_twin(name: str) -> str:  # the baseline row's light counterpart
        rest = name[len(BASE) :]
        return "pytorch-reference" if rest == "pytorch-fp32" else rest

    out = []
    for name, b in by.items():
        model = "unet" if name.startswith(BASE) else "lightunet"
        ms = p50.get(name)
        eff = effective_gflops(gflop[model] * batch, ms)
        size_twin = name.replace("int8", "fp32") if "int8" in name else None
        v = verdicts.get(name, {})
        m = v.get("metrics", {})
        twin_base = (
            (BASE + "pytorch-fp32" if name == "pytorch-reference" else BASE + name)
            if model == "lightunet"
            else None
        )
        out.append(
            {
                "name": name,
                "model": model,
                "backend": b["backend"],
                "precision": b["precision"],
                "status": b["status"] if b["status"] == "ok" else f"{b['status']}: {b['message']}",
                "p50_ms": ms,
                "p90_ms": b["p90"] if ms else None,
                "cv": b["cv"] if ms else None,
                "images_per_s": batch * 1e3 / ms if ms else None,
                "effective_gflops": eff,
                "pct_of_peak": pct_of_peak(eff, peaks.get(PEAK_KEY.get(b["precision"], ""))),
                "speedup_vs_eager_fp32": eager[model] / ms if ms and eager[model] else None,
                "light_vs_unet": p50[twin_base] / ms if twin_base in p50 and ms else None,
                "peak_rss_mb": b.get("peak_rss_mb"),
                "load_s": b.get("load_s") if ms else None,
                "size_bytes": b.get("size_bytes") or None,
                "size_vs_fp32": (
                    b["size_bytes"] / by[size_twin]["size_bytes"]
                    if size_twin in by and by[size_twin].get("size_bytes")
                    else None
                ),
                "parity": v.get("status", "reference" if name == "pytorch-reference" else "-"),
                "dice_vs_fp32_mean": m.get("dice_ref_mean"),
                "dice_vs_fp32_min": m.get("dice_ref_min"),
                "prob_abs_max": m.get("prob_abs_max"),
            }
        )
        if model == "unet":
            out[-1]["light_twin"] = light_twin(name)
    return out


def targets(table: list[dict], lesion_pixels: list[int] | None = None) -> dict:
    """The performance targets, each with the measured value and whether it is met.

    Dice targets are not met when the fp32 reference masks hold no lesion (``lesion_pixels``
    all 0: Dice is trivially 1); %-of-peak targets are not met when a backend beats the
    measured peak (the peak was measured under load and is not a ceiling).
    """
    light = [r for r in table if r["model"] == "lightunet" and r["p50_ms"]]
    gated = [r for r in light if r["parity"] == "pass" and (r["dice_vs_fp32_mean"] or 0) >= 0.99]
    best = max(gated, key=lambda r: r["speedup_vs_eager_fp32"], default=None)
    fp32 = [r for r in light if r["precision"] == "fp32" and r["backend"] != "pytorch-eager"]
    fp32 = [r for r in fp32 if r["name"] != "pytorch-reference"]
    low = [r for r in gated if r["precision"] in ("bf16", "int8") and r["pct_of_peak"]]
    ratios = [r["light_vs_unet"] for r in light if r["light_vs_unet"]]
    sizes = [r["size_vs_fp32"] for r in light if r["size_vs_fp32"]]
    best_fp32 = max((r["pct_of_peak"] or 0 for r in fp32), default=None)
    best_low = max(low, key=lambda r: r["pct_of_peak"], default=None)
    trivial = lesion_pixels is not None and not any(lesion_pixels)
    peak_suspect = any((r["pct_of_peak"] or 0) > 100 for r in light)
    dice_note = "reference masks are empty: Dice is trivial" if trivial else ""
    peak_note = (
        "a backend exceeds the measured peak: peak not reliable (load)" if peak_suspect else ""
    )
    return {
        "best_speedup_ge_4x_with_dice_ge_0.99": {
            "artifact": best and best["name"],
            "value": best and best["speedup_vs_eager_fp32"],
            "met": bool(best and best["speedup_vs_eager_fp32"] >= 4.0) and not trivial,
            "note": dice_note,
        },
        "fp32_backend_pct_of_fp32_peak_ge_70": {
            "value": best_fp32,
            "met": (best_fp32 or 0) >= 70 and not peak_suspect,
            "note": peak_note,
        },
        "best_low_precision_pct_of_its_peak_ge_50": {
            "artifact": best_low and best_low["name"],
            "value": best_low and best_low["pct_of_peak"],
            "met": bool(best_low and best_low["pct_of_peak"] >= 50) and not peak_suspect,
            "note": peak_note,
        },
        "light_vs_unet_ge_2.3_every_backend": {
            "min": min(ratios, default=None),
            "met": bool(ratios) and min(ratios) >= 2.3,
        },
        "int8_size_le_30pct_of_fp32": {
            "max": max(sizes, default=None),
            "met": bool(sizes) and max(sizes) <= 0.30,
        },
    }


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(doc: dict) -> str:
    """perf.md: the command, machine and load, peaks, the table, targets, auto-pick evidence."""
    peaks = doc["matmul_peak_gflops"]
    lines = [
        "# Performance: lightweight U-Net vs this machine's limit",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {doc['machine']['cpu']}, {doc['machine']['cores']} cores; "
        f"{doc['threads']} threads; input 1x3x{doc['size']}x{doc['size']}  ",
        f"Load average (1 min) before / after: {doc['load']['before'][0]:.2f} / "
        f"{doc['load']['after'][0]:.2f} ({doc['load']['note']})  ",
        f"Checkpoint: `{doc['checkpoint']}`; baseline `unet` is UNTRAINED (latency only).  ",
        f"Model: lightunet {doc['gflop']['lightunet']:.2f} GFLOP, unet "
        f"{doc['gflop'].get('unet', 0):.2f} GFLOP per slice (2 x conv MACs).  ",
        f"{doc['runs']} timed runs per backend, interleaved in rounds of 5 in one run; "
        f"parity on {doc['parity_inputs']}; lesion pixels in the fp32 reference masks: "
        f"{doc['reference_lesion_pixels']} (0 would make Dice trivially 1).",
        "",
        "Runtime peak (same run, OpenVINO conv kernels): "
        + ", ".join(f"{k} {_f(v, '.0f')} GFLOP/s" for k, v in peaks.items()),
        "",
        "| backend | model | prec | p50 ms | p90 ms | GFLOP/s | % peak | x eager fp32 "
        "| light/unet | load s | RSS MB | size MB | int8/fp32 size | parity "
        "| Dice vs fp32 (mean/min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["table"]:
        lines.append(
            f"| {r['name']} | {r['model']} | {r['precision']} | {_f(r['p50_ms'], '.1f')} "
            f"| {_f(r['p90_ms'], '.1f')} | {_f(r['effective_gflops'], '.1f')} "
            f"| {_f(r['pct_of_peak'], '.0f')} | {_f(r['speedup_vs_eager_fp32'], '.2f')} "
            f"| {_f(r['light_vs_unet'], '.2f')} | {_f(r['load_s'], '.2f')} "
            f"| {_f(r['peak_rss_mb'], '.0f')} "
            f"| {_f(r['size_bytes'] and r['size_bytes'] / 2**20, '.2f')} "
            f"| {_f(r['size_vs_fp32'], '.2f')} | {r['parity']} "
            f"| {_f(r['dice_vs_fp32_mean'], '.4f')} / {_f(r['dice_vs_fp32_min'], '.4f')} |"
            + ("" if r["status"] == "ok" else f" {r['status']}")
        )
    if doc.get("throughput"):
        t = doc["throughput"]
        lines += ["", f"## Batch {t['batch']} throughput (same run, {t['runs']} runs)", ""]
        lines += ["| backend | prec | p50 ms / batch | images/s | x batch-1 images/s |"]
        lines += ["|---|---|---|---|---|"]
        single = {r["name"]: r["images_per_s"] for r in doc["table"]}
        for r in t["table"]:
            gain = (
                r["images_per_s"] / single[r["name"]]
                if r["images_per_s"] and single.get(r["name"])
                else None
            )
            lines.append(
                f"| {r['name']} | {r['precision']} | {_f(r['p50_ms'], '.1f')} "
                f"| {_f(r['images_per_s'], '.1f')} | {_f(gain, '.2f')} |"
            )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for k, v in doc["targets"].items():
        shown = {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()}
        shown.pop("met")
        lines.append(f"| {k} | {shown} | {'yes' if v['met'] else 'NO'} |")
    pick = doc.get("auto_pick")
    if pick:
        from lightseg.pipeline.autopick import table_lines

        lines += [
            "",
            f"## x86-auto decision: `{pick['chosen']}` ({pick['rule']})",
            "",
            "```",
            *table_lines(pick["candidates"], pick["chosen"]),
            "```",
        ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, say=print) -> dict:
    from lightseg.benchmarks.harness import machine, run_parity
    from lightseg.benchmarks.latency import model_gmacs, run_bench
    from lightseg.fileio import atomic_write_text

    load_before = os.getloadavg()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="lightseg-perf-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        built = build(args.checkpoint, work, args.executorch, args.baseline, say)
        light = built["light"]
        folder = work / "bench"
        from lightseg.benchmarks.peaks import peak_gflops

        peaks_before = peak_gflops(args.threads)
        say(f"latency: {args.runs} interleaved runs per backend + matmul peaks ...")
        bench = run_bench(folder, threads=args.threads, runs=args.runs, warmup=3, peak=True)
        light_names = [
            a["name"] for a in json.loads((folder / "manifest.json").read_text())["artifacts"]
        ]
        light_names = [n for n in light_names if not n.startswith(BASE)]
        say(f"parity: {len(light_names)} lightweight artifacts on {args.n} phantom slices ...")
        par = run_parity(folder, "verification", args.n, light_names, threads=args.threads)
        verdicts = {v.name: v.to_dict() for v in par.verdicts}
        lesion_px = [int(v) for v in (par.reference.argmax(1) > 0).sum((1, 2))]
        size = light.preprocessing["size"]
        shape = (light.preprocessing["channels"], size, size)
        gflop = {"lightunet": 2 * model_gmacs(built["checkpoint"], shape)}
        if args.baseline:
            gflop["unet"] = 2 * model_gmacs(str(work / "unet-untrained"), shape)
        peaks = {  # a peak: the best of the two measurements of this run
            k: max(filter(None, (v, peaks_before.get(k))), default=None)
            for k, v in bench["peak_gflops"].items()
        }
        table = rows(bench, verdicts, peaks, gflop)
        throughput = None
        if args.batch > 1:
            names = [n for n in ("onnx-int8", "openvino-int8", "openvino-bf16") if n in light_names]
            say(f"throughput: batch {args.batch} on {', '.join(names)} ...")
            tb = run_bench(
                folder,
                args.threads,
                args.batch,
                runs=max(5, args.runs // 3),
                warmup=2,
                backends=names,
                peak=False,
            )
            tt = rows(tb, {}, peaks, gflop, batch=args.batch)
            throughput = {"batch": args.batch, "runs": tb["runs"], "table": tt}
    doc = {
        "schema_version": 1,
        "kind": "lightseg-perf",
        "command": " ".join(["python -m lightseg.pipeline.perf", *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - t0, 1),
        "machine": machine(),
        "load": {
            "before": load_before,
            "after": os.getloadavg(),
            "note": args.load_note,
        },
        "threads": args.threads,
        "size": size,
        "runs": args.runs,
        "checkpoint": built["checkpoint"],
        "parity_inputs": par.meta["data"],
        "reference_lesion_pixels": lesion_px,
        "gflop": gflop,
        "matmul_peak_gflops": peaks,
        "table": table,
        "throughput": throughput,
        "targets": targets(table, lesion_px),
        "auto_pick": light.extra.get("auto_pick"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "perf.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out / "perf.md", markdown(doc))
    say(f"wrote {out / 'perf.json'} and {out / 'perf.md'}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lightseg.pipeline.perf", description=__doc__)
    p.add_argument("--checkpoint", default="default", help="Defaults to the shipped checkpoint.")
    p.add_argument("--out", default="benchmarks/results", help="Folder for perf.json/perf.md.")
    p.add_argument("--runs", type=int, default=30, help="Timed runs per backend (default 30).")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=None, help="Parity slices (default: the set's).")
    p.add_argument("--batch", type=int, default=4, help="Throughput batch (1 = skip).")
    p.add_argument("--work", default=None, help="Keep the exports here (default: a temp dir).")
    p.add_argument("--no-executorch", dest="executorch", action="store_false")
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--load-note", default="", help="What else ran on the machine.")
    args = p.parse_args(argv)
    from lightseg.errors import LightsegError

    try:
        run(args)
    except LightsegError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code if hasattr(e, "exit_code") else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
