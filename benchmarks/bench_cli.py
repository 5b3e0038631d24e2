"""``lightseg bench``: latency of every runnable artifact and its peers, interleaved with the
reference, repeated until stable; optionally gated against a baseline of speed-ups."""

from __future__ import annotations

from pathlib import Path

import typer

from lightseg.console import console
from lightseg.errors import GateFailed, LightsegError

DIR = typer.Argument(Path("export"), help="Export folder with manifest.json.")


def _split(backends: str | None) -> list[str] | None:
    return [b.strip() for b in backends.split(",") if b.strip()] if backends else None


def gate(doc: dict, baseline: Path, strict_machine: bool) -> None:
    """Compare with the baseline: GateFailed on a regression; another machine is a warning
    (LightsegError with ``strict_machine``); a noisy run is a warning."""
    from lightseg.benchmarks import baseline as bl

    d = bl.decide(bl.load(baseline), doc)
    for line in d.lines:
        console.print(line, highlight=False, markup=False)
    if d.status == "fail":
        raise GateFailed(f"latency regressed beyond the noise bound: {', '.join(d.failed)}")
    if d.status == "other-machine" and strict_machine:
        raise LightsegError(d.lines[0])
    if d.status in ("other-machine", "noisy"):
        console.print(f"[yellow]warning: {d.lines[0]}[/yellow]", highlight=False)
    else:
        console.print(f"latency gate: every artifact holds its baseline speed-up ({baseline})")


def bench_cmd(
    artifact_dir: Path = DIR,
    threads: int = typer.Option(2, "--threads", help="Intra-op threads per backend."),
    batch: int = typer.Option(1, "--batch", help="Images per inference."),
    runs: int = typer.Option(50, "--runs", help="Timed runs kept per backend (two blocks)."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed runs first."),
    backends: str | None = typer.Option(None, "--backends", help="Backends or artifact names."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON results."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per backend step."),
    peak: bool = typer.Option(True, "--peak/--no-peak", help="Measure the runtime peaks too."),
    peers: bool = typer.Option(
        True, "--peers/--no-peers", help="Add ORT/OpenVINO defaults and torch.compile rows."
    ),
    within: float = typer.Option(0.05, "--stable-within", help="Blocks' p50s must agree so."),
    max_blocks: int = typer.Option(6, "--max-blocks", help="Blocks before a run is noisy."),
    max_seconds: float = typer.Option(1800.0, "--max-seconds", help="Timed seconds at most."),
    save_baseline: Path | None = typer.Option(
        None, "--save-baseline", help="Record the speed-ups as the CI baseline."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Fail (exit 1) when a speed-up regresses past its noise bound."
    ),
    strict_machine: bool = typer.Option(
        False, "--strict-machine", help="A baseline of another machine class is an error (2)."
    ),
) -> None:
    """Latency of every runnable artifact and its peers, interleaved with the PyTorch reference."""
    from lightseg.benchmarks import latency

    if min(threads, batch, runs) < 1 or warmup < 0:
        raise LightsegError("--threads, --batch and --runs must be >= 1, --warmup >= 0")
    if not 0 < within < 1 or max_blocks < 2 or max_seconds <= 0:
        raise LightsegError(
            "--stable-within must be in (0, 1), --max-blocks >= 2, --max-seconds > 0"
        )
    if baseline:
        from lightseg.benchmarks.baseline import load

        load(baseline)  # a bad baseline is bad input before minutes of timing
    rule = latency.Stability(within, max_blocks, max_seconds)
    res = latency.run_bench(
        artifact_dir, threads, batch, runs, warmup, _split(backends), timeout, peak, peers, rule
    )
    console.print(latency.table(res))
    for line in latency.noise_lines(res):
        style = "bold red" if line.startswith("NOISY") else "dim"
        console.print(f"[{style}]{line}[/{style}]", highlight=False)
    if json_out:
        latency.write_json(res, json_out)
        console.print(f"wrote {json_out}")
    if baseline:
        gate(res, baseline, strict_machine)
    if save_baseline:
        from lightseg.benchmarks.baseline import save

        save(res, save_baseline)
        console.print(f"wrote baseline {save_baseline}")
