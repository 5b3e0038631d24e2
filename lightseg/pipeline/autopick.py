"""``x86-auto``: the export target whose artifact is chosen by the gated auto-tune (x86 family).

The export builds the x86 candidates (ONNX Runtime fp32; U8S8 QDQ int8 variants; where OpenVINO
is installed, OpenVINO fp32, bf16 and int8) and verifies each; :func:`pick` then runs
:func:`lightseg.pipeline.autotune.tune` for the x86 family (execution-mode variants and peers
included), gives the winner the ``x86-auto`` target, and removes the candidates that only this
target asked for (their files too, unless another artifact shares them).
"""

from __future__ import annotations

from pathlib import Path

from lightseg.artifact import Manifest, load_manifest
from lightseg.pipeline.autotune import RUNS, Effort, tune

TARGET = "x86-auto"


def _drop_losers(m: Manifest, chosen: str) -> None:
    """Losers leave the target; an artifact no target ships leaves the folder (shared files
    stay)."""
    for a in m.artifacts:
        if a.name != chosen and TARGET in a.targets:
            a.targets.remove(TARGET)
    keep = [a for a in m.artifacts if a.targets or a.name == chosen]
    kept_files = {p.resolve() for a in keep for p in m.paths(a)}
    for a in m.artifacts:
        if a in keep:
            continue
        for p in m.paths(a):
            if p.resolve() not in kept_files and p.is_file():
                p.unlink()
    m.artifacts = keep
    folder = m.root / "openvino"
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def pick(folder: str | Path, threads: int = 2, runs: int = RUNS, peers: bool = True,
         effort: Effort = Effort(), say=print) -> dict:  # fmt: skip
    """Tune the x86 family of an export folder; keep the winner under ``x86-auto``."""
    from lightseg.export.targets import export_lock

    with export_lock(Path(folder)):
        evidence = tune(folder, "x86", threads, runs, peers=peers, target=TARGET, effort=effort,
                        say=say)  # fmt: skip
        m = load_manifest(folder)
        _drop_losers(m, evidence["chosen"])
        m.extra["auto_pick"] = evidence
        m.save(m.root)
    return evidence
