"""``lightseg parity`` (run | pack | compare); ``lightseg bench`` is in bench_cli.py."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from lightseg.console import console
from lightseg.errors import GateFailed, LightsegError


class DefaultRunGroup(TyperGroup):
    """``lightseg parity DIR ...`` means ``lightseg parity run DIR ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


parity_app = typer.Typer(
    cls=DefaultRunGroup,
    help="Do the masks match across backends? Exit 0 all hold, 1 a gate failed or undecided, "
    "2 bad input.",
    no_args_is_help=False,
)

DIR = typer.Argument(Path("export"), help="Export folder with manifest.json.")
TOL = typer.Option(None, "--tolerances", help="TOML gates (defaults to the shipped ones).")


def _split(backends: str | None) -> list[str] | None:
    return [b.strip() for b in backends.split(",") if b.strip()] if backends else None


def _progress(item) -> None:
    if isinstance(item, str):
        console.print(f"[yellow]{item}[/yellow]")
    else:
        console.print(f"[dim]running {item.name} ({item.backend}, {item.precision})[/dim]")


def parse_n(n: str) -> int | None:
    """``--n``: ``auto`` (None) or a positive number of slices."""
    if n.strip().lower() == "auto":
        return None
    try:
        value = int(n)
    except ValueError:
        raise LightsegError(f"--n must be 'auto' or a whole number, got {n!r}") from None
    if value < 1:
        raise LightsegError(f"--n must be at least 1, got {value}")
    return value


def _row(v) -> list[str]:
    from lightseg.benchmarks.report import cells, precision_cell

    c = cells(v)
    detail = v.reason() if v.status != "pass" else f"prob max err {c['prob']}"
    status = f"[{COLOUR[v.status]}]{v.status}[/]"
    return [v.name, v.backend, precision_cell(v), status, c["dice"], c["worst"], c["small"],
            c["gt"], c["flips"], escape(detail)]  # fmt: skip


COLOUR = {"pass": "green", "fail": "red", "error": "red", "undecided": "dark_orange",
          "skipped": "yellow"}  # fmt: skip
COLUMNS = ("artifact", "backend", "precision", "status", "Dice mean (95% CI)", "worst large",
           "small: n, max bnd px", "GT Dice ratio (95% CI)", "flip %", "detail")  # fmt: skip


def finish_parity(run, json_out: Path | None, html: Path | None, md: Path | None) -> None:
    from lightseg.benchmarks import report

    inputs = run.meta.get("inputs") or {}
    seed = f", seed {inputs['seed']}" if inputs.get("seed") is not None else ""
    table = Table(
        title=f"parity vs fp32 PyTorch on {run.meta['n']} images ({run.meta['data']}{seed})"
    )
    for col in COLUMNS:
        table.add_column(col)
    for v in run.verdicts:
        table.add_row(*_row(v))
    console.print(table)
    for path, write in ((json_out, report.write_json), (md, report.write_markdown)):
        if path:
            write(run, path)
            console.print(f"wrote {path}")
    if html:
        report.write_html(run, html)
        console.print(f"wrote {html}")
    bad = [v for v in run.verdicts if v.status in ("fail", "error", "undecided")]
    if bad:
        raise GateFailed("; ".join(f"{v.name} ({v.backend}): {v.reason()}" for v in bad))
    if not any(v.status == "pass" for v in run.verdicts):
        raise GateFailed(
            "no artifact could run here: "
            + "; ".join(f"{v.name}: {v.message}" for v in run.verdicts)
        )


@parity_app.command("run")
def parity_run(
    artifact_dir: Path = DIR,
    data: str = typer.Option(
        "verification",
        "--data",
        help="An input set (verification = synth, evaluation), an .npz, or a DICOM/NIfTI "
        "folder or file (every scan in it, masks when named X_mask/X_seg or under labels/).",
    ),
    n: str = typer.Option(
        "auto",
        "--n",
        help="Slices, or auto: the set's size, doubled while a verdict is undecided (to 256).",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report."),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report."),
    md: Path | None = typer.Option(None, "--md", help="Write the Markdown summary."),
    backends: str | None = typer.Option(None, "--backends", help="Backends or artifact names."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per backend step."),
    tolerances: Path | None = TOL,
    threads: int = typer.Option(2, "--threads", help="Threads per backend."),
    ray: bool = typer.Option(False, "--ray", help="Scan data: one Ray task per scan."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster HOST:PORT."),
) -> None:
    """Run the fp32 reference and every runnable artifact; judge each against the gates."""
    from lightseg.benchmarks.harness import run_parity
    from lightseg.benchmarks.inputs import is_named_set
    from lightseg.data.scans import is_scan_data, volume_map

    size = parse_n(n)
    args = (artifact_dir, data, size, _split(backends), timeout, tolerances, threads)
    if not is_named_set(data) and is_scan_data(data):
        from lightseg.benchmarks.scan_parity import run_parity_scans

        run = run_parity_scans(*args, progress=_progress, map_volumes=volume_map(ray, address))
    elif ray or address:
        raise LightsegError("--ray/--address run a folder of scans (--data DICOM/NIfTI path)")
    else:
        run = run_parity(*args, progress=_progress)
    finish_parity(run, json_out, html, md)


@parity_app.command("pack")
def parity_pack(
    artifact_dir: Path = DIR,
    out: Path = typer.Option(..., "--out", help="Pack folder to write for a device."),
    n: int | None = typer.Option(None, "--n", help="Number of images (default: the set's)."),
    data: str = typer.Option(
        "verification", "--data", help="An input set (verification = synth, evaluation) or an .npz."
    ),
    backends: str | None = typer.Option(None, "--backends", help="Artifacts to include."),
) -> None:
    """Write inputs + manifest + artifacts + device_script.py for a device run."""
    from lightseg.benchmarks.pack import write_pack

    path = write_pack(artifact_dir, out, n, data, _split(backends))
    console.print(f"wrote {path}; on the device: python device_script.py {out} --out RESULTS")


@parity_app.command("compare")
def parity_compare(
    pack: Path = typer.Argument(..., help="The pack folder."),
    device_results: Path = typer.Option(..., "--device-results", help="Folder the device wrote."),
    json_out: Path | None = typer.Option(None, "--json"),
    html: Path | None = typer.Option(None, "--html"),
    md: Path | None = typer.Option(None, "--md"),
    tolerances: Path | None = TOL,
) -> None:
    """Judge a device's outputs exactly like a local backend."""
    from lightseg.benchmarks.pack import compare_device

    finish_parity(compare_device(pack, device_results, tolerances), json_out, html, md)


def register(app: typer.Typer) -> None:
    """Attach ``parity`` and ``bench`` to the lightseg app."""
    from lightseg.benchmarks.bench_cli import bench_cmd

    app.add_typer(parity_app, name="parity")
    app.command("bench")(bench_cmd)
