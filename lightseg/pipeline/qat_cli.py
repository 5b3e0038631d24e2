"""``lightseg qat``: quantization-aware fine-tuning, its validations judged by the int8 gate."""

from __future__ import annotations

from pathlib import Path

import typer

from lightseg.judge.verdict import not_passed
from lightseg.qat import TRAIN_SEED, run_qat


def qat_cmd(
    init: str = typer.Option("default", help="Checkpoint to fine-tune ('default' = shipped)."),
    out: Path = typer.Option(Path("runs/qat"), "--out", "-o", help="Run folder."),
    steps: int = typer.Option(300, help="Optimizer steps."),
    batch: int = typer.Option(8, help="Batch size."),
    crop: int = typer.Option(128, help="Training crop size; 0 = full slices."),
    lr: float = typer.Option(1e-4, help="Peak learning rate (AdamW, cosine)."),
    freeze_after: int = typer.Option(
        50, help="Freeze the activation ranges after N steps (0: keep the initial ranges)."
    ),
    train_n: int = typer.Option(400, help="Distinct training slices."),
    lesion_fraction: float = typer.Option(
        0.7, help="Fraction of the training slices with a lesion (the rest lesion-free)."
    ),
    val_n: int = typer.Option(24, help="Validation slices (full size)."),
    val_every: int = typer.Option(50, help="Validate and checkpoint every N steps."),
    seed: int = typer.Option(TRAIN_SEED, help="Data seed (disjoint from the named sets)."),
    amp: bool = typer.Option(False, help="bf16 autocast for the float parts."),
    threads: int = typer.Option(0, help="Torch threads (0 = torch's default)."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda."),
    consistency: float = typer.Option(
        0.0, help="Weight of the fake-quant vs float loss (--consistency-kind); 0 = off."
    ),
    consistency_kind: str = typer.Option(
        "mse",
        help="mse: squared logit-margin difference; kl: KL of the class probabilities; "
        "kl-teacher: the same KL with the float logits held fixed.",
    ),
    range_init: int = typer.Option(
        8, help="Full slices that initialise the activation ranges; 0 = the init's trained ones."
    ),
    range_lesion_fraction: float = typer.Option(
        0.7, help="Fraction of the range-init slices with a lesion (the rest lesion-free)."
    ),
    margin_weight: float = typer.Option(
        0.0, help="Weight of a logit-margin hinge to the ground truth (fake-quant, float); 0 = off."
    ),
    margin: float = typer.Option(2.0, help="The hinge's margin (logit 1 - logit 0 units)."),
    tensorrt: bool = typer.Option(
        False,
        help="Simulate the Jetson file (jetson-trt-int8): int8 only where a conv reads its input.",
    ),
    anchor: float = typer.Option(
        0.0, help="Weight of KL(init || float) on the pixels the init gets right; 0 = off."
    ),
    ema: float = typer.Option(
        0.0, help="Validate and save an EMA of the weights with this decay per step; 0 = off."
    ),
) -> None:
    """Quantization-aware fine-tuning: OUT/best is a float checkpoint robust to int8 export."""
    s = run_qat(
        init, out, steps, batch, crop or None, lr, freeze_after, 0.1, train_n, val_n,
        val_every, seed, amp, threads or None, device, say=typer.echo, consistency=consistency,
        consistency_kind=consistency_kind, range_n=range_init,
        range_lesion_fraction=range_lesion_fraction, ema=ema, gate=not_passed,
        margin_weight=margin_weight, margin=margin, lesion_fraction=lesion_fraction,
        tensorrt=tensorrt, anchor=anchor,
    )  # fmt: skip
    fails = ", ".join(s["best_gate_failures"]) or "none"
    dice = s["best_dice_q_vs_own_fp32"]
    typer.echo(f"best: step {s['best_step']}, fake-quant mask Dice vs own fp32 {dice:.4f}, "
               f"int8 gate checks not passed: {fails}; {out}")  # fmt: skip
