"""Export folder discipline: one writer at a time (a lock), nothing complete-looking after a
kill, stale temps cleared by --force, bad options refused before --out is touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from artifact_helpers import modes
from rel_helpers import cli, one_error, snapshot

from lightseg.artifact import load_manifest
from lightseg.data.preprocessing import Preprocessing

PRE = Preprocessing(size=32)
TARGET = "android-ort-fp32"  # onnx + .ort: the quickest export with a companion file
BUSY = "is being written by another lightseg process (pid {})"
CLI = "from lightseg.cli import main; main()"
HOLD = (
    "import sys; from pathlib import Path; from lightseg.export.targets import export_lock\n"
    "with export_lock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> Path:
    """An untrained lightunet base=2 at 32 px (its fp32 artifacts match it exactly)."""
    from lightseg.checkpoint import save_checkpoint
    from lightseg.models import create_model

    torch.manual_seed(0)
    model = create_model("lightunet", base=2)
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "ck", "lightunet", PRE)


def _export(ck: Path, out: Path, *extra: str, target: str = TARGET) -> list[str]:
    return ["export", str(ck), "--targets", target, "--out", str(out), "--threads", "1", *extra]


def _spawn(args: list[str], **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-I", "-c", CLI, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@contextmanager
def held(out: Path):
    """Another process holding the export lock of ``out``; yields its pid."""
    cmd = [sys.executable, "-I", "-c", HOLD, str(out)]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield p.pid
    finally:
        p.stdin.close()
        p.wait(timeout=60)


def _verified(out: Path) -> set[str]:
    m = load_manifest(out)
    for a in m.artifacts:
        m.verify(a)
    return {a.name for a in m.artifacts}


def test_a_held_folder_is_refused_at_once_even_with_force(ck, tmp_path, capsys):
    out = tmp_path / "out"
    with held(out) as pid:
        before = snapshot(out)
        assert BUSY.format(pid) in one_error(capsys, *_export(ck, out))
        (out / "manifest.json").write_text("{}")  # a previous export's files
        (out / "model.onnx").write_bytes(b"previous")
        before = snapshot(out)
        assert BUSY.format(pid) in one_error(capsys, *_export(ck, out, "--force"))
        assert snapshot(out) == before  # --force deleted nothing while another process writes


def test_two_exports_race_one_wins_and_its_manifest_verifies(ck, tmp_path):
    out = tmp_path / "out"
    procs = {t: _spawn(_export(ck, out, target=t)) for t in (TARGET, "jetson-trt-fp16")}
    done = {t: (p.wait(timeout=300), p.stderr.read(), p.pid) for t, p in procs.items()}
    for p in procs.values():
        p.stdout.close()
        p.stderr.close()
    (winner,) = [t for t, (rc, _, _) in done.items() if rc == 0]
    (loser,) = [t for t in done if t != winner]
    rc, err, _ = done[loser]
    assert rc == 2 and err.strip().splitlines() == [f"error: {out} " + BUSY.format(done[winner][2])]
    names = _verified(out)
    assert load_manifest(out).targets == [winner]
    assert ("ort-fp32" in names) == (winner == TARGET)
    assert ("tensorrt-fp16" in names) == (winner != TARGET)


def test_sigterm_leaves_no_manifest_no_temps_and_force_recovers(ck, tmp_path, capsys):
    out, systmp = tmp_path / "out", tmp_path / "systmp"
    systmp.mkdir()
    p = _spawn(_export(ck, out), env={**os.environ, "TMPDIR": str(systmp)})
    try:
        for _ in range(6000):
            if (out / "model.onnx").exists() or p.poll() is not None:
                break
            time.sleep(0.02)
        assert p.poll() is None, "the export ended before it could be interrupted"
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=120)
        err = p.stderr.read().strip().splitlines()
    finally:
        p.kill() if p.poll() is None else None
        p.stdout.close()
        p.stderr.close()
    assert rc != 0 and err == ["interrupted"], (rc, err)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.tmp")), list(out.rglob("*"))
    assert not list(systmp.glob("lightseg-export.*"))
    (out / ".model.onnx.stale.tmp").write_bytes(b"half")  # as a SIGKILLed export leaves them
    (out / ".model-fixed.onnx.old.tmp").mkdir()
    old = os.umask(0o022)
    try:
        rc, _, err = cli(capsys, *_export(ck, out, "--force"))
    finally:
        os.umask(old)
    assert rc == 0, err
    assert not list(out.rglob("*.tmp"))
    assert "ort-fp32" in _verified(out)
    assert modes(out) == {("dir", "0o755"), ("file", "0o644")}


def _npy(path: Path, x) -> Path:
    np.save(path, x, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    "case,expect",
    [
        ("npz", "expected a .npy"),
        ("empty", "holds no images"),
        ("nan", "NaN or Inf"),
        ("pickled", "cannot read"),
        ("opset99", "--opset 99 is not supported"),
        ("opset-above-torch", "is not supported"),
    ],
)
def test_bad_options_are_refused_before_out_is_written(ck, tmp_path, capsys, case, expect):
    shape = (2, PRE.channels, PRE.size, PRE.size)
    x = np.zeros(shape, np.float32)
    extra = {
        "npz": lambda: ["--calib-data", str(tmp_path / "c.npz")],
        "empty": lambda: ["--calib-data", str(_npy(tmp_path / "c.npy", x[:0]))],
        "nan": lambda: ["--calib-data", str(_npy(tmp_path / "c.npy", x + np.nan))],
        "pickled": lambda: ["--calib-data", str(_npy(tmp_path / "c.npy", np.array([{}])))],
        "opset99": lambda: ["--opset", "99"],
        "opset-above-torch": lambda: ["--opset", str(_max_opset() + 1)],
    }[case]()
    np.savez(tmp_path / "c.npz", x=x)
    out = tmp_path / "out"
    assert expect in one_error(capsys, *_export(ck, out, *extra))
    assert not out.exists()


def _max_opset() -> int:
    from lightseg.export.onnx import max_opset

    return max_opset()
