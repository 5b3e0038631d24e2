"""``lightseg export``: the export layer's targets, then the pipelines on top of them."""

from __future__ import annotations

from pathlib import Path

import typer

from lightseg.console import console
from lightseg.errors import GateFailed, LightsegError


def export_cmd(
    checkpoint: str | None = typer.Argument(
        None, help="Checkpoint folder. Defaults to the shipped one."
    ),
    targets: str = typer.Option("all", "--targets", "-t", help="Comma list of targets, or all."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Export folder to write."),
    force: bool = typer.Option(False, "--force", help="Export into a non-empty folder."),
    list_targets: bool = typer.Option(False, "--list-targets", help="Show the targets and exit."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (>= 17)."),
    calibration: str = typer.Option(
        "minmax",
        help="int8 calibration: minmax|entropy|percentile|trained (a QAT checkpoint's ranges).",
    ),
    calib_n: int | None = typer.Option(
        None, "--calib-n", help="Calibration slices (default: the calibration set's 128)."
    ),
    calib_data: Path | None = typer.Option(
        None, "--calib-data", help="N x C x S x S float32 .npy."
    ),
    equalize: bool = typer.Option(
        False, "--equalize/--no-equalize", help="Equalise the decoder concats (int8; exact)."
    ),
    threads: int = typer.Option(2, "--threads", help="Threads for verification and timing."),
    peers: bool = typer.Option(True, "--peers/--no-peers", help="x86-auto: tune with peers."),
) -> None:
    """Export a checkpoint to verified artifacts for phones, Jetson, browsers and servers."""
    from lightseg.export import cli as export_cli
    from lightseg.export.targets import export
    from lightseg.pipeline import autopick

    if list_targets:
        export_cli.list_targets()
        return
    if out is None:
        raise LightsegError("--out DIR is required (the export folder)")
    say = lambda line: console.print(line, highlight=False, markup=False)  # noqa: E731
    m = export(
        checkpoint,
        targets,
        out,
        force=force,
        opset=opset,
        calibration=calibration,
        calib_n=calib_n,
        calib_data=calib_data,
        threads=threads,
        equalize=equalize,
        progress=say,
    )
    if autopick.TARGET in m.targets:
        autopick.pick(out, threads=threads, peers=peers, say=say)
        from lightseg.artifact import load_manifest

        m = load_manifest(out)
    export_cli.print_manifest(m, out)
    failed = export_cli.failed_artifacts(m)
    if failed:
        raise GateFailed(f"verification failed for {', '.join(failed)} (see manifest.json)")


def tune_cmd(
    artifact_dir: Path = typer.Argument(Path("export"), help="Export folder with manifest.json."),
    family: str = typer.Option(
        "x86", "--family", "-f", help="x86|openvino|android-ort|executorch|web|jetson, or all."
    ),
    threads: int = typer.Option(2, "--threads", help="Threads per backend."),
    runs: int = typer.Option(20, "--runs", help="Timed runs per candidate (per block)."),
    peers: bool = typer.Option(True, "--peers/--no-peers", help="x86: add the peers."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse a cached result."),
) -> None:
    """Gated auto-tune: per device family, the fastest candidate that passes the judge."""
    from lightseg.pipeline.autotune import FAMILIES, tune

    if threads < 1 or runs < 1:
        raise LightsegError("--threads and --runs must be >= 1")
    names = list(FAMILIES) if family == "all" else [family]
    say = lambda line: console.print(line, highlight=False, markup=False)  # noqa: E731
    failed = []
    for name in names:
        try:
            tune(artifact_dir, name, threads, runs, peers=peers, use_cache=cache, say=say)
        except GateFailed as e:
            failed.append(str(e))
        except LightsegError as e:
            if family != "all":
                raise
            say(f"tune {name}: skipped ({e})")
    if failed:
        raise GateFailed("; ".join(failed))
