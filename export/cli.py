"""``lightseg doctor`` and the tables ``lightseg export`` prints (the command is a pipeline)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from lightseg.console import console


def list_targets() -> None:
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


def print_manifest(m, out: Path) -> None:
    """The artifacts table, skipped targets, artifacts not built, and a failed verification as
    GateFailed."""
    from lightseg.export.verify import describe

    t = Table("artifact", "size", "precision", "verification", "time", title=escape(str(out)))
    for a in m.artifacts:
        v = escape(describe(a.verification))
        t.add_row(escape(a.path), _size(a.size_bytes), a.precision, v, f"{a.seconds:.1f} s")
    console.print(t)
    for name, why in m.extra.get("skipped_targets", {}).items():
        console.print(f"skipped {name}: {why}", highlight=False, markup=False)
    for name, why in m.extra.get("not_built", {}).items():
        console.print(f"not built {name}: {why}", highlight=False, markup=False)
    console.print(f"wrote {out / 'manifest.json'}")


def failed_artifacts(m) -> list[str]:
    """Artifacts not shown to pass: failed, undecided or errored (a skipped backend is not)."""
    bad = ("fail", "undecided", "error")
    return [a.name for a in m.artifacts if a.verification.get("status") in bad]


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
    app.command("doctor")(doctor_cmd)
