"""``lightseg demo``: the main job end to end, and the x86 pick with the evidence for it.

export (every target buildable here) -> x86 auto-tune (the candidate table, the pick, its
speed-up and noise) -> parity vs the fp32 PyTorch reference -> latency (peers included) -> one
report.html, with parity.json, parity.md and bench.json beside it.

The demo shows; it does not gate every artifact. Exit 0 when the pipeline ran and the x86 pick
passes the judge (without the ``x86-auto`` target: when any artifact passes), 1 when no artifact
passes or the pick fails. Artifacts that do not pass are listed in one line.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import typer

from lightseg.console import console
from lightseg.errors import GateFailed

QUICK_RUNS = 6  # timed runs per backend with --quick
NOT_PASSING = ("fail", "error", "undecided")  # the statuses ``lightseg parity`` exits 1 on


def _say(msg: str) -> None:
    console.print(msg, highlight=False, markup=False, soft_wrap=True)


def _not_passing_line(verdicts) -> str:
    """One line naming the artifacts ``lightseg parity`` would exit 1 on ('' when none)."""
    bad = [v for v in verdicts if v.status in NOT_PASSING]
    if not bad:
        return ""
    names = ", ".join(f"{v.name} ({v.status})" for v in bad)
    verb, them = ("does", "it") if len(bad) == 1 else ("do", "them")
    noun = "artifact" if len(bad) == 1 else "artifacts"
    return f"{len(bad)} {noun} {verb} not pass: {names} — `lightseg parity` exits 1 on {them}"


def _summary(run, bench: dict, evidence: dict | None, asked: bool) -> str:
    """Print the pick, the verdict counts and what does not pass; return why the demo failed."""
    from lightseg.benchmarks.report import pick_line, pick_speedup

    status = {v.name: v.status for v in run.verdicts}
    chosen = evidence.get("chosen") if evidence else None
    if chosen:
        ps = pick_speedup(evidence, bench)
        _say(f"x86 pick: {pick_line(ps)}; parity here: {status.get(chosen, 'not judged')}")
    elif asked:
        _say("x86 pick: none (no candidate passes the judge; see the auto-tune table)")
    counts = Counter(status.values())
    _say("artifacts per verdict: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    line = _not_passing_line(run.verdicts)
    if line:
        _say(line)
    if "pass" not in counts:
        return "no artifact passes the judge"
    if asked and status.get(chosen) != "pass":
        return f"the x86 pick ({chosen or 'none'}) does not pass the judge"
    return ""


def demo_cmd(
    checkpoint: str = typer.Option("default", help="Checkpoint folder ('default' = shipped)."),
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for everything."),
    targets: str = typer.Option("all", help="Export targets (see lightseg export --list-targets)."),
    n: int | None = typer.Option(None, "--n", help="Parity slices (default: the set's size)."),
    runs: int = typer.Option(30, "--runs", help="Timed runs per backend."),
    threads: int = typer.Option(2, "--threads", help="Threads per backend."),
    peers: bool = typer.Option(
        True, "--peers/--no-peers", help="Time (and auto-tune) the peers: runtime defaults."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help=f"At most {QUICK_RUNS} timed runs in 2 blocks; no torch.compile peers (the x86 "
        "auto-tune then weighs the export's own candidates only).",
    ),
) -> None:
    """Shipped checkpoint -> export -> x86 auto-tune -> parity -> latency -> one report."""
    from lightseg.artifact import load_manifest
    from lightseg.benchmarks import latency, report
    from lightseg.benchmarks.cli import finish_parity
    from lightseg.benchmarks.harness import machine, run_parity
    from lightseg.export.targets import export
    from lightseg.pipeline import autopick

    t0 = time.time()
    art = out / "export"
    console.rule("[bold]1/4 export")
    m = export(checkpoint, targets, art, force=True, threads=threads, progress=_say)
    asked = autopick.TARGET in m.targets
    if asked:
        console.rule("[bold]2/4 x86 auto-tune")
        tune_runs = QUICK_RUNS if quick else autopick.RUNS
        try:
            autopick.pick(art, threads, tune_runs, peers=peers and not quick, say=_say)
        except GateFailed as e:
            _say(str(e))
    console.rule("[bold]3/4 parity")
    run = run_parity(art, "verification", n, threads=threads)
    with suppress(GateFailed):  # the summary names what does not pass
        finish_parity(run, out / "parity.json", None, out / "parity.md")
    console.rule("[bold]4/4 latency")
    bench = latency.run_bench(
        art,
        threads=threads,
        runs=min(runs, QUICK_RUNS) if quick else runs,
        peers=peers,
        compile_peers=not quick,
        stability=latency.Stability(max_blocks=2) if quick else None,
    )
    console.print(latency.table(bench))
    for line in latency.noise_lines(bench):
        _say(line)
    latency.write_json(bench, out / "bench.json")
    tune = load_manifest(art).extra.get("auto_tune")
    report.write_full_html(run, out / "report.html", bench, tune, machine())
    _say(
        f"done in {time.time() - t0:.0f} s. Report: {(out / 'report.html').resolve()} "
        f"(also parity.md, parity.json, bench.json; artifacts in {art})"
    )
    failed = _summary(run, bench, (tune or {}).get("x86"), asked)
    if failed:
        raise GateFailed(failed)
