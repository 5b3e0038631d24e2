"""The paper's claim, tested: baseline vs lightweight U-Net trained with the same budget.

Both models train on the same phantom slices, crops, steps, batch, learning rate and seed, are
evaluated on the same held-out phantom set (an unseen seed), and their CPU latency is measured
side by side in one run (interleaved, PyTorch eager fp32 at 1x3x256x256).

    .venv/bin/python studies/claim.py --out studies/results [--steps 400 --crop 96]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from lightseg.fileio import atomic_write_text
from lightseg.train import TrainConfig, evaluate_arrays, stack_dataset, train

MODELS = ("unet", "lightunet")


def interleaved_latency(checkpoints: dict[str, Path], runs: int, threads: int) -> dict:
    """p50/p90 latency (ms) per model, one model after the other in each round."""
    from lightseg.benchmarks.latency import LatencyStats
    from lightseg.runtimes.torch_runner import TorchRunner

    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    runners = {k: TorchRunner(v, threads=threads) for k, v in checkpoints.items()}
    stats = {k: LatencyStats(k, "pytorch", "fp32") for k in runners}
    for r in runners.values():
        r.open()
        for _ in range(3):
            r.infer(x)
    for _ in range(runs):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.infer(x)
            stats[k].samples_ms.append((time.perf_counter() - t0) * 1e3)
    for r in runners.values():
        r.close()
    return {k: {"p50_ms": s.fill().p50, "p90_ms": s.p90} for k, s in stats.items()}


def run(
    out: Path,
    steps: int,
    crop: int,
    batch: int,
    seed: int,
    eval_n: int,
    runs: int,
    train_n: int = 600,
    val_n: int = 24,
) -> dict:
    from lightseg.checkpoint import load_checkpoint
    from lightseg.data.dataset import build_dataset
    from lightseg.models import create_model
    from lightseg.profile import profile_model

    rows: dict[str, dict] = {}
    ckpts: dict[str, Path] = {}
    for name in MODELS:
        cfg = TrainConfig(
            model=name, out=str(out / f"claim-{name}"), crop=crop, steps=steps, batch=batch,
            seed=seed, train_n=train_n, val_n=val_n, val_every=steps, amp=True, threads=2,
        )  # fmt: skip
        s = train(cfg, progress=False)
        ckpts[name] = out / f"claim-{name}" / "last"
        prof = profile_model(create_model(name), (3, 256, 256), "modern").summary()
        rows[name] = {"train_seconds": s["seconds"], "params": prof["params"],
                      "gmacs": prof["conv_gmacs"]}  # fmt: skip
    ck = load_checkpoint(ckpts["lightunet"])
    ds = build_dataset(
        "synth", ck.preprocessing, eval_n, seed + 777, lesion_fraction=0.75, per_volume=2
    )
    x, y = stack_dataset(ds, eval_n)
    for name in MODELS:
        summary, cases = evaluate_arrays(load_checkpoint(ckpts[name]).model, x, y)
        rows[name]["eval"] = summary
        rows[name]["per_case_dice"] = [c["dice"] for c in cases if c["has_lesion"]]
    lat = interleaved_latency(ckpts, runs, threads=2)
    for name in MODELS:
        rows[name]["latency"] = lat[name]
    a = np.array(rows["lightunet"]["per_case_dice"])
    b = np.array(rows["unet"]["per_case_dice"])
    diff = a - b
    half = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
    doc = {
        "budget": {
            "steps": steps,
            "crop": crop,
            "batch": batch,
            "seed": seed,
            "train_slices": train_n,
            "eval_slices": eval_n,
            "eval_seed": seed + 777,
            "amp": "bf16 autocast (CPU)",
        },  # fmt: skip
        "models": rows,
        "dice_diff_light_minus_base": {
            "mean": float(diff.mean()),
            "ci95": [float(diff.mean() - half), float(diff.mean() + half)],
        },  # fmt: skip
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 2},
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "claim.json", json.dumps(doc, indent=2))
    atomic_write_text(out / "claim.md", markdown(doc))
    return doc


def markdown(doc: dict) -> str:
    r, b = doc["models"], doc["budget"]
    lines = [
        "# Baseline vs lightweight, same budget",
        "",
        f"Budget: {b['steps']} steps x batch {b['batch']} of {b['crop']} px crops from "
        f"{b['train_slices']} phantom slices (seed {b['seed']}), {b['amp']}; evaluated on "
        f"{b['eval_slices']} unseen phantom slices (seed {b['eval_seed']}).",
        "",
        "| model | params | GMAC | lesion Dice (95% CI) | FP slice rate | train s | CPU p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        m = r[name]
        e = m["eval"]
        lo, hi = e["lesion_dice_ci95"]
        lines.append(
            f"| {name} | {m['params']:,} | {m['gmacs']:.2f} | {e['lesion_dice']:.3f} "
            f"({lo:.3f}-{hi:.3f}) | {e['false_positive_slice_rate']:.3f} | "
            f"{m['train_seconds']:.0f} | {m['latency']['p50_ms']:.0f} |"
        )
    d = doc["dice_diff_light_minus_base"]
    ratio = r["unet"]["latency"]["p50_ms"] / r["lightunet"]["latency"]["p50_ms"]
    lines += [
        "",
        f"Paired Dice difference (light - baseline) over lesion slices: {d['mean']:+.3f} "
        f"(95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}). Latency ratio baseline/light "
        f"{ratio:.2f}x (MAC ratio {r['unet']['gmacs'] / r['lightunet']['gmacs']:.2f}x), measured "
        "interleaved in one run, 2 threads.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("studies/results"))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-n", type=int, default=64)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--train-n", type=int, default=600)
    a = p.parse_args()
    doc = run(a.out, a.steps, a.crop, a.batch, a.seed, a.eval_n, a.runs, a.train_n)
    print(markdown(doc))


if __name__ == "__main__":
    main()
