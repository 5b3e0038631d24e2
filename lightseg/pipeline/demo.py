"""``lightseg demo``: the main job end to end on the shipped checkpoint.

export (every target buildable here) -> parity vs the fp32 PyTorch reference -> latency ->
verdict tables and the report's path. Exit 1 if a parity gate fails.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from lightseg.console import console
from lightseg.errors import GateFailed


def demo_cmd(
    checkpoint: str = typer.Option("default", help="Checkpoint folder ('default' = shipped)."),
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for everything."),
    targets: str = typer.Option("all", help="Export targets (see lightseg export --list-targets)."),
    n: int | None = typer.Option(None, "--n", help="Parity slices (default: the set's size)."),
    runs: int = typer.Option(30, "--runs", help="Timed runs per backend."),
    threads: int = typer.Option(2, "--threads", help="Threads per backend."),
) -> None:
    """Shipped checkpoint -> export -> parity -> latency -> report (the README's first command)."""
    from lightseg.benchmarks import latency
    from lightseg.benchmarks.cli import finish_parity
    from lightseg.benchmarks.harness import run_parity
    from lightseg.export.targets import export
    from lightseg.pipeline import autopick

    t0 = time.time()
    art = out / "export"
    console.rule("[bold]1/3 export")
    say = lambda msg: console.print(msg, highlight=False, markup=False)  # noqa: E731
    m = export(checkpoint, targets, art, force=True, threads=threads, progress=say)
    if autopick.TARGET in m.targets:
        autopick.pick(art, threads=threads, say=say)
    console.rule("[bold]2/3 parity")
    run = run_parity(art, "verification", n, threads=threads)
    failed: GateFailed | None = None
    try:
        finish_parity(run, out / "parity.json", out / "report.html", out / "parity.md")
    except GateFailed as e:
        failed = e
    console.rule("[bold]3/3 latency")
    res = latency.run_bench(art, threads=threads, runs=runs)
    console.print(latency.table(res))
    latency.write_json(res, out / "bench.json")
    console.print(
        f"done in {time.time() - t0:.0f} s. Report: {(out / 'report.html').resolve()}  "
        f"(also parity.md, parity.json, bench.json; artifacts in {art})"
    )
    if failed:
        raise failed
