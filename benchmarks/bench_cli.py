"""``lightseg bench``: latency of every runnable artifact, interleaved with the reference."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from lightseg.errors import LightsegError

console = Console()
DIR = typer.Argument(Path("export"), help="Export folder with manifest.json.")


def _split(backends: str | None) -> list[str] | None:
    return [b.strip() for b in backends.split(",") if b.strip()] if backends else None


def bench_cmd(
    artifact_dir: Path = DIR,
    threads: int = typer.Option(2, "--threads", help="Threads per backend."),
    batch: int = typer.Option(1, "--batch", help="Images per inference."),
    runs: int = typer.Option(50, "--runs", help="Timed runs per backend (after warm-up)."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed runs first."),
    backends: str | None = typer.Option(None, "--backends", help="Backends or artifact names."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON results."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per backend step."),
    peak: bool = typer.Option(True, "--peak/--no-peak", help="Measure the matmul peak too."),
) -> None:
    """Latency of every runnable artifact, interleaved with the PyTorch reference."""
    from lightseg.benchmarks import latency

    if min(threads, batch, runs) < 1 or warmup < 0:
        raise LightsegError("--threads, --batch and --runs must be >= 1, --warmup >= 0")
    res = latency.run_bench(
        artifact_dir, threads, batch, runs, warmup, _split(backends), timeout, peak
    )
    console.print(latency.table(res))
    if json_out:
        latency.write_json(res, json_out)
        console.print(f"wrote {json_out}")
