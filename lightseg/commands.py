"""Foundation commands: profile, import-checkpoint, info. Other areas register theirs here."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from lightseg.console import console
from lightseg.errors import LightsegError

MAX_PROFILE_SIDE = 2048  # the largest model input (Preprocessing.size) bounds --input too


def _parse_input(spec: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise LightsegError(f"--input must look like 3x256x256, got {spec!r}") from None
    if min(c, h, w) < 1:
        raise LightsegError(f"--input dimensions must be positive, got {spec!r}")
    if c > 4 or max(h, w) > MAX_PROFILE_SIDE:
        raise LightsegError(
            f"--input must be at most 4x{MAX_PROFILE_SIDE}x{MAX_PROFILE_SIDE}, got {spec!r}"
        )
    return c, h, w


def _json_target(path: Path | None) -> Path | None:
    """Refuse an output file that cannot be written, before any work."""
    from lightseg.checkpoint import check_writable

    if path is None:
        return None
    if path.is_dir():
        raise LightsegError(f"--json {path} is a directory, not a file")
    check_writable(path.parent)
    return path


def _model_for(spec: str, channels: int):
    from lightseg.checkpoint import load_checkpoint
    from lightseg.models import MODELS, create_model

    if spec in MODELS:
        return create_model(spec, n_channels=channels)
    return load_checkpoint(spec).model


def profile_cmd(
    model: str = typer.Option("lightunet", "--model", "-m", help="unet, lightunet or a checkpoint"),
    input: str = typer.Option("3x256x256", "--input", help="C x H x W of one input."),
    convention: str = typer.Option("torchstat", help="torchstat (the paper's) or modern."),
    paper: bool = typer.Option(False, "--paper", help="The paper's table vs the measured one."),
    layers: bool = typer.Option(False, "--layers", help="Print the per-layer table."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the profile as JSON."),
) -> None:
    """Parameters, MACs, FLOPs, activation memory and memory traffic of a model."""
    from lightseg.fileio import atomic_write_text
    from lightseg.models import create_model
    from lightseg.profile import CONVENTIONS, PAPER, profile_model

    if convention not in CONVENTIONS:
        raise LightsegError(f"--convention must be one of {', '.join(CONVENTIONS)}")
    json_out = _json_target(json_out)
    if paper:
        rows = {
            n: profile_model(create_model(n), (3, 256, 256), "torchstat").summary() for n in PAPER
        }
        _paper_table(rows)
        if json_out:
            atomic_write_text(json_out, json.dumps({"paper": PAPER, "measured": rows}, indent=2))
        return
    shape = _parse_input(input)
    prof = profile_model(_model_for(model, shape[0]), shape, convention)
    s = prof.summary()
    if layers:
        t = Table("layer", "type", "output", "params", "MAdd", "Flops", "MemR+W (MB)")
        for r in prof.layers:
            t.add_row(
                r.name,
                r.kind,
                "x".join(map(str, r.out_shape[1:])),
                f"{r.params:,}",
                f"{r.madd:,}",
                f"{r.flops:,}",
                f"{r.mem_rw_bytes / 2**20:.2f}",
            )
        console.print(t)
    t = Table(title=f"{model} @ {input} ({convention} convention)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("params (trainable)", f"{s['trainable_params']:,}")
    t.add_row(f"params ({convention})", f"{s['params']:,}")
    t.add_row("memory (MB)", f"{s['memory_mb']:.2f}")
    t.add_row("MAdd (G)", f"{s['madd_g']:.2f}")
    t.add_row("Flops (G)", f"{s['flops_g']:.2f}")
    t.add_row("MemR+W (MB)", f"{s['memrw_mb']:.2f}")
    t.add_row("conv MACs (G)", f"{s['conv_gmacs']:.2f}")
    console.print(t)
    if json_out:
        atomic_write_text(json_out, json.dumps(prof.to_dict(), indent=2))


def _paper_table(rows: dict) -> None:
    from lightseg.profile import PAPER

    t = Table(title="Paper (torchstat 0.0.7, 3x256x256) vs measured here")
    for col in (
        "figure",
        "paper base",
        "measured base",
        "paper light",
        "measured light",
        "ratio (measured)",
        "match",
    ):
        t.add_column(col, justify="right")
    fmt = {
        "params": "{:,.0f}",
        "memory_mb": "{:.2f} MB",
        "madd_g": "{:.2f} G",
        "flops_g": "{:.2f} G",
        "memrw_mb": "{:.2f} MB",
    }
    for key, f in fmt.items():
        pb, pl = PAPER["unet"][key], PAPER["lightunet"][key]
        mb, ml = rows["unet"][key], rows["lightunet"][key]
        ok = f.format(pb) == f.format(mb) and f.format(pl) == f.format(ml)
        t.add_row(
            key,
            f.format(pb),
            f.format(mb),
            f.format(pl),
            f.format(ml),
            f"{mb / ml:.2f}x",
            "[green]yes[/green]" if ok else "[red]NO[/red]",
        )
    console.print(t)


def import_checkpoint_cmd(
    pth: Path = typer.Argument(..., help="A .pth state dict saved by milesial/Pytorch-UNet."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing folder."),
) -> None:
    """Convert a milesial/Pytorch-UNet .pth (loaded with weights_only=True) to a checkpoint."""
    from lightseg.checkpoint import is_checkpoint_folder
    from lightseg.milesial import import_milesial

    if out.exists() or out.is_symlink():
        if not force:
            raise LightsegError(f"{out} exists; pass --force to overwrite")
        empty = out.is_dir() and not out.is_symlink() and not any(out.iterdir())
        if not (empty or is_checkpoint_folder(out)):
            raise LightsegError(
                f"{out} is not a lightseg checkpoint folder (model.json + weights.safetensors "
                "only); --force replaces only those, so it is left as it is"
            )
    path = import_milesial(pth, out)
    console.print(f"wrote {path}")


def register_core(app: typer.Typer) -> None:
    """Attach every command to the app, in the order of the workflow."""
    from lightseg.benchmarks.cli import register as register_benchmarks  # parity, bench
    from lightseg.benchmarks.divergence import int8_report_cmd
    from lightseg.benchmarks.webdemo import serve_demo_cmd
    from lightseg.data.cli import app as data_app
    from lightseg.data.scans import set_ray_mapper
    from lightseg.export.cli import register as register_export  # doctor
    from lightseg.pipeline.cli import export_cmd, tune_cmd
    from lightseg.pipeline.demo import demo_cmd
    from lightseg.pipeline.predict_cli import predict_cmd
    from lightseg.pipeline.qat_cli import qat_cmd
    from lightseg.pipeline.scale import ray_map
    from lightseg.train_cli import eval_cmd, train_cmd

    set_ray_mapper(ray_map)  # --ray of eval, parity, predict (ray imported only then)
    app.command("demo")(demo_cmd)
    app.command("profile")(profile_cmd)
    app.command("import-checkpoint")(import_checkpoint_cmd)
    app.add_typer(data_app, name="data")
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("qat")(qat_cmd)
    app.command("predict")(predict_cmd)
    app.command("export")(export_cmd)
    app.command("tune")(tune_cmd)
    register_export(app)
    register_benchmarks(app)
    app.command("serve-demo")(serve_demo_cmd)
    app.command("int8-report")(int8_report_cmd)
