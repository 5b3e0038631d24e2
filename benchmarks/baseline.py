"""The latency gate for CI: speed-ups over the PyTorch reference against a recorded baseline.

A baseline keeps, per artifact, the speed-up (a ratio measured side by side, so it survives a
slower or faster machine of the same class far better than milliseconds) and its spread between
the last two blocks. An artifact fails when its speed-up falls below the baseline's by more than
``max(5%, 2 x the larger spread of the two runs)``. The gate judges nothing when the run is noisy
or the baseline comes from another machine class (CPU model, CPUs, threads, batch and input,
versions of the runtimes both runs used).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lightseg.errors import GateFailed, LightsegError

KIND = "lightseg-latency-baseline"
SCHEMA_VERSION = 1
MIN_BOUND = 0.05


def machine_class(doc: dict) -> dict:
    """What must match for speed-ups to be comparable."""
    cpus = doc.get("cpus")
    return {
        "cpu": doc["machine"]["cpu"],
        "cpus": len(cpus) if cpus else doc["machine"]["cores"],
        "threads": doc["threads"],
        "batch": doc["batch"],
        "input": doc["input"],
        "versions": doc["versions"],
    }


def baseline_doc(bench: dict) -> dict:
    """The baseline of a stable bench run; a noisy run records none (GateFailed)."""
    if not bench["stable"]:
        raise GateFailed("noisy run: ratios not reliable, baseline not saved (rerun when quiet)")
    arts = {
        b["name"]: {"speedup": b["speedup_vs_reference"], "spread": b["speedup_spread"]}
        for b in bench["backends"]
        if b["status"] == "ok" and b["name"] != "pytorch-reference"
    }
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine_class": machine_class(bench),
        "artifacts": arts,
    }


def save(bench: dict, path: Path) -> None:
    from lightseg.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(baseline_doc(bench), indent=2) + "\n")


def load(path: Path) -> dict:
    """A baseline file; one clear error when it is missing or not a baseline."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LightsegError(f"baseline {path}: cannot read it ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise LightsegError(f"baseline {path}: not a {KIND} file (lightseg bench --save-baseline)")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise LightsegError(f"baseline {path}: schema_version {doc.get('schema_version')!r}")
    return doc


def class_difference(base: dict, cur: dict) -> list[str]:
    """The machine-class fields that differ; versions only for runtimes both runs used."""
    diff = [k for k in base if k != "versions" and base[k] != cur.get(k)]
    bv, cv = base.get("versions", {}), cur.get("versions", {})
    diff += [f"versions.{k}" for k in sorted(set(bv) & set(cv)) if bv[k] != cv[k]]
    return diff


@dataclass
class Decision:
    """pass | fail | other-machine | noisy, with one line per artifact judged or skipped."""

    status: str
    lines: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def bound(base_spread: float | None, cur_spread: float | None) -> float:
    """The allowed relative regression: max(5%, 2 x the larger measured spread)."""
    return max(MIN_BOUND, 2 * max(base_spread or 0.0, cur_spread or 0.0))


def decide(base: dict, bench: dict) -> Decision:
    """Judge a bench run (its JSON doc) against a baseline doc."""
    diff = class_difference(base["machine_class"], machine_class(bench))
    if diff:
        return Decision(
            "other-machine",
            [f"baseline is for another machine: not judged (differs in: {', '.join(diff)})"],
        )
    if not bench["stable"]:
        return Decision("noisy", ["noisy, not judged: ratios not reliable in this run"])
    by = {b["name"]: b for b in bench["backends"]}
    d = Decision("pass")
    for name, ref in base["artifacts"].items():
        cur = by.get(name)
        if cur is None:
            d.lines.append(f"{name}: not in this run, not judged")
            continue
        if cur["status"] != "ok" or not cur["speedup_vs_reference"]:
            d.failed.append(name)
            d.lines.append(f"{name}: did not run ({cur['status']}: {cur['message']})")
            continue
        b = bound(ref["spread"], cur["speedup_spread"])
        floor = ref["speedup"] * (1 - b)
        ok = cur["speedup_vs_reference"] >= floor
        d.lines.append(
            f"{name}: speed-up {cur['speedup_vs_reference']:.2f}x vs baseline "
            f"{ref['speedup']:.2f}x (floor {floor:.2f}x, bound {100 * b:.0f}%): "
            + ("ok" if ok else "REGRESSED")
        )
        if not ok:
            d.failed.append(name)
    if d.failed:
        d.status = "fail"
    return d
