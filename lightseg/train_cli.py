"""``lightseg train`` and ``lightseg eval``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from lightseg.console import console
from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_bytes

MAX_EVAL_N = 100_000


def train_cmd(
    model: str = typer.Option("lightunet", "--model", "-m", help="lightunet or unet."),
    data: str = typer.Option("synth", help="'synth' (phantoms) or a dataset folder."),
    out: Path = typer.Option(Path("runs/lightunet"), "--out", "-o", help="Run folder."),
    size: int = typer.Option(256, help="Model input size (slices are padded/cropped to it)."),
    crop: int = typer.Option(96, help="Training crop size (lesion-biased); 0 = full slices."),
    lesion_fraction: float = typer.Option(
        0.7, help="Share of synthetic training slices with a lesion (the rest: lesion-free tissue)."
    ),
    steps: int = typer.Option(1500, help="Optimizer steps."),
    batch: int = typer.Option(8, help="Batch size."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, warm-up + cosine)."),
    seed: int = typer.Option(0, help="Seed for data, init and sampling."),
    train_n: int = typer.Option(2000, help="Distinct training slices."),
    val_n: int = typer.Option(48, help="Validation slices (full size)."),
    val_every: int = typer.Option(250, help="Validate and checkpoint every N steps."),
    amp: bool = typer.Option(False, help="Mixed precision (bf16 on CPU, fp16 on CUDA)."),
    threads: int = typer.Option(0, help="Torch threads (0 = torch's default)."),
    base: int = typer.Option(0, help="Override the base width (tiny models for tests)."),
    init: str | None = typer.Option(None, help="Start from this checkpoint's weights."),
    warmup: int = typer.Option(50, help="Linear warm-up steps before the cosine decay."),
    resume: bool = typer.Option(
        False, help="Continue OUT/last (its saved settings; only --steps may change)."
    ),
) -> None:
    """Train a U-Net; writes OUT/best, OUT/last (checkpoints) and OUT/summary.json."""
    from lightseg.checkpoint import recover
    from lightseg.train import TrainConfig, train

    if steps < 1 or batch < 1 or val_every < 1:
        raise LightsegError("--steps, --batch and --val-every must be positive")
    if threads < 0 or crop < 0 or base < 0:
        raise LightsegError("--threads, --crop and --base must be >= 0 (0 = the default)")
    if recover(out / "last").exists() and not resume:
        raise LightsegError(f"{out} already holds a run; pass --resume to continue it")
    cfg = TrainConfig(
        model=model, data=data, out=str(out), size=size, crop=crop or None, steps=steps,
        lesion_fraction=lesion_fraction,
        batch=batch, lr=lr, seed=seed, train_n=train_n, val_n=val_n, val_every=val_every,
        amp=amp, threads=threads or None, init=init, warmup=warmup,
        model_overrides={"base": base} if base else {},
    )  # fmt: skip
    s = train(cfg, resume=resume)
    console.print(
        f"best lesion Dice {s['best_lesion_dice']:.4f} in {s['seconds']:.0f} s; "
        f"checkpoints in {out / 'best'} and {out / 'last'}"
    )


def eval_cmd(
    checkpoint: str = typer.Argument("default", help="Checkpoint folder or 'default'."),
    data: str = typer.Option(
        "synth", help="'synth', a dataset folder, or DICOM/NIfTI scans with masks (all slices)."
    ),
    n: int = typer.Option(64, help="Number of slices."),
    seed: int = typer.Option(12345, help="Seed of the synthetic set (use one unseen in training)."),
    lesion_fraction: float = typer.Option(0.75, help="Share of slices with a lesion (synth)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write metrics + cases as JSON."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for cases.csv + overlays."),
    worst: int = typer.Option(4, help="Overlay PNGs of the N worst lesion cases."),
    ray: bool = typer.Option(False, "--ray", help="DICOM/NIfTI data: one Ray task per scan."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster HOST:PORT."),
) -> None:
    """Evaluate a checkpoint: lesion Dice, IoU, FP rate on lesion-free slices, detection."""
    from lightseg.checkpoint import check_writable, load_checkpoint
    from lightseg.data.dataset import build_dataset
    from lightseg.data.scans import evaluate_scans, is_scan_data, volume_map
    from lightseg.fileio import atomic_write_text
    from lightseg.train import evaluate_arrays, predict_masks, stack_dataset

    if not 1 <= n <= MAX_EVAL_N:
        raise LightsegError(f"--n must be 1..{MAX_EVAL_N}, got {n}")
    if worst < 0:
        raise LightsegError("--worst must be >= 0")
    if json_out is not None:
        if json_out.is_dir():
            raise LightsegError(f"--json {json_out} is a directory, not a file")
        check_writable(json_out.parent)
    if out is not None:
        check_writable(out)
    ck = load_checkpoint(checkpoint)
    map_volumes, record = volume_map(ray, address), None
    if data != "synth" and is_scan_data(data):
        summary, cases, x, y, record = evaluate_scans(ck, data, map_volumes)
        title = f"eval {ck.path} on {record['path']} ({record['scans']} scans, n={len(cases)})"
    else:
        if ray:
            raise LightsegError("--ray runs on a folder of DICOM/NIfTI scans (--data PATH)")
        ds = build_dataset(
            data, ck.preprocessing, n, seed, lesion_fraction=lesion_fraction, per_volume=2
        )
        x, y = stack_dataset(ds, min(n, len(ds)))
        summary, cases = evaluate_arrays(ck.model, x, y)
        title = f"eval {ck.path} on {data} (n={len(cases)}, seed={seed})"
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        t.add_row(k, _fmt(v))
    console.print(t)
    if json_out:
        doc = {"summary": summary, "cases": cases} | ({"data": record} if record else {})
        atomic_write_text(json_out, json.dumps(doc, indent=2))
    if out:
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=["case", *cases[0]])
        w.writeheader()
        for i, c in enumerate(cases):
            w.writerow({"case": i, **c})
        atomic_write_text(out / "cases.csv", buf.getvalue())
        order = sorted((i for i, c in enumerate(cases) if c["has_lesion"]),
                       key=lambda i: cases[i]["dice"])[:worst]  # fmt: skip
        pred = predict_masks(ck.model, x[order]) if order else []
        for rank, (i, p) in enumerate(zip(order, pred, strict=True)):
            overlay_png(
                x[i][0], y[i], p, out / f"worst{rank}_case{i}_dice{cases[i]['dice']:.2f}.png"
            )
        console.print(f"wrote {out / 'cases.csv'} and {len(order)} overlays")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{a:.4f}" for a in v) + "]"
    return str(v)


def overlay_png(img: np.ndarray, ref: np.ndarray, pred: np.ndarray, path: Path) -> None:
    """Grey image with reference (green outline) and prediction (red fill) side by side."""
    from PIL import Image
    from scipy import ndimage

    g = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([g] * 3, -1).astype(np.float32)
    p = pred.astype(bool)
    rgb[p] = 0.5 * rgb[p] + 0.5 * np.array([255, 40, 40])
    edge = ref.astype(bool) & ~ndimage.binary_erosion(ref.astype(bool))
    rgb[edge] = [40, 255, 40]
    both = np.concatenate([np.stack([g] * 3, -1), rgb.astype(np.uint8)], axis=1)
    buf = io.BytesIO()
    Image.fromarray(both).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
