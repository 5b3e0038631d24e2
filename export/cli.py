"""``lightseg export`` and ``lightseg doctor``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightseg.errors import GateFailed, LightsegError

console = Console()


def _list_targets() -> None:
    from lightseg.export.targets import TARGETS

    t = Table(title="export targets")
    t.add_column("target", no_wrap=True)
    for col in ("device", "steps", "artifacts"):
        t.add_column(col)
    for tg in TARGETS.values():
        t.add_row(tg.name, escape(tg.device), " > ".join(tg.steps), ", ".join(tg.artifacts))
    console.print(t)


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def export_cmd(
    checkpoint: str | None = typer.Argument(
        None, help="Checkpoint folder. Defaults to the shipped one."
    ),
    targets: str = typer.Option("all", "--targets", "-t", help="Comma list of targets, or all."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Export folder to write."),
    force: bool = typer.Option(False, "--force", help="Export into a non-empty folder."),
    list_targets: bool = typer.Option(False, "--list-targets", help="Show the targets and exit."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (>= 17)."),
    calibration: str = typer.Option("minmax", help="int8 calibration: minmax|entropy|percentile."),
    calib_n: int = typer.Option(16, "--calib-n", help="Number of calibration slices."),
    calib_data: Path | None = typer.Option(
        None, "--calib-data", help="N x C x S x S float32 .npy."
    ),
) -> None:
    """Export a checkpoint to verified artifacts for phones, Jetson, browsers and servers."""
    from lightseg.export.targets import export
    from lightseg.export.verify import describe

    if list_targets:
        _list_targets()
        return
    if out is None:
        raise LightsegError("--out DIR is required (the export folder)")
    m = export(
        checkpoint,
        targets,
        out,
        force=force,
        opset=opset,
        calibration=calibration,
        calib_n=calib_n,
        calib_data=calib_data,
        progress=lambda line: console.print(line, highlight=False, markup=False),
    )
    t = Table("artifact", "size", "precision", "verification", "time", title=escape(str(out)))
    for a in m.artifacts:
        v = escape(describe(a.verification))
        t.add_row(escape(a.path), _size(a.size_bytes), a.precision, v, f"{a.seconds:.1f} s")
    console.print(t)
    for name, why in m.extra.get("skipped_targets", {}).items():
        console.print(f"skipped {name}: {why}", highlight=False, markup=False)
    console.print(f"wrote {out / 'manifest.json'}")
    failed = [a.name for a in m.artifacts if a.verification.get("status") == "failed"]
    if failed:
        raise GateFailed(f"verification failed for {', '.join(failed)} (see manifest.json)")


def doctor_cmd() -> None:
    """Which export targets this machine can build and run; for the others, why and how."""
    from lightseg.export.targets import doctor

    t = Table(title="lightseg doctor")
    t.add_column("target", no_wrap=True)
    t.add_column("build here")
    t.add_column("run here")
    for r in doctor():
        t.add_row(r["target"], escape(r["build"]), escape(r["run"]))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("doctor")(doctor_cmd)
