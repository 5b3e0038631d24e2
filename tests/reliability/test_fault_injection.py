"""A training process SIGKILLed at a save point: nothing that looks complete is incomplete, and
--resume recovers the run with its history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rel_helpers import TINY_TRAIN, cli

from lightseg.checkpoint import backup_path, load_checkpoint
from lightseg.train import STATE_JSON

# Runs in the child: wraps the two renames of save_checkpoint and its file writes, and
# SIGKILLs the process at the chosen point of the 3rd save of last/ (step 3 of 4).
CHILD = r"""
import os, signal, sys
from pathlib import Path

import lightseg.checkpoint as ck
from lightseg.cli import main

point, out, args = sys.argv[1], sys.argv[2], sys.argv[3:]
saves = {"n": 0}
rename, write = Path.rename, ck.atomic_write_bytes


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def patched_rename(self, target):
    result = rename(self, target)
    t = Path(target)
    if t.name == "last":
        saves["n"] += 1
    elif t.name == ".last.old" and point == "between" and saves["n"] == 2:
        die()  # last/ moved aside, the new one not yet in
    if t.name == "last" and point == "after" and saves["n"] == 3:
        die()  # new last/ in, the backup not yet deleted
    return result


def patched_write(path, data):
    if Path(path).name == "train_state.json" and point == "writing" and saves["n"] == 2:
        Path(path).write_bytes(data[: len(data) // 2])  # a half-written file, then the kill
        die()
    return write(path, data)


Path.rename = patched_rename
ck.atomic_write_bytes = patched_write
sys.exit(main(["train", "--out", out, *args]))
"""


def _visible(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if not p.name.startswith("."))


POINTS = ("between", "writing", "after")
ARGS = ["--steps", "4", *TINY_TRAIN]


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """One training process per kill point, run side by side."""
    root = tmp_path_factory.mktemp("killed")
    procs = {
        point: subprocess.Popen(
            [sys.executable, "-I", "-c", CHILD, point, str(root / point), *ARGS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )  # fmt: skip
        for point in POINTS
    }
    out = {}
    for point, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[point] = (
            root / point,
            subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr),
        )
    return out


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_save_point_then_resume(capsys, killed_runs, point):
    run, r = killed_runs[point]
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])

    # nothing looks complete that is not: no summary, every visible checkpoint loads whole
    assert "summary.json" not in _visible(run)
    assert set(_visible(run)) <= {"best", "last"}
    for name in _visible(run):
        load_checkpoint(run / name)  # raises on anything partial
    if point == "between":
        assert _visible(run) == ["best"] and backup_path(run / "last").is_dir()
    else:
        state = json.loads((run / "last" / STATE_JSON).read_text())
        meta = json.loads((run / "last" / "model.json").read_text())
        assert state["step"] == meta["metrics"]["step"] == (3 if point == "after" else 2)

    rc, _, err = cli(capsys, "train", "--resume", "--out", run, *ARGS)
    assert rc == 0, err
    assert _visible(run) == ["best", "last", "summary.json"]
    assert not backup_path(run / "last").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]
    assert json.loads((run / "last" / STATE_JSON).read_text())["step"] == 4
