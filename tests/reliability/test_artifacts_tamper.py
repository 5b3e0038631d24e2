"""One flipped byte in a companion file (OpenVINO .bin, ORT required_operators.config) is
refused by parity, bench, pack and the web demo, on a real export of a tiny trained model."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from artifact_helpers import fake_ort_web, flip_byte, modes
from rel_helpers import cli, one_error

from lightseg.artifact import load_manifest
from lightseg.errors import LightsegError

pytest.importorskip(
    "openvino", reason="OpenVINO is not installed (pip install 'lightseg[openvino]')"
)

SIZE = 32
TARGETS_ARG = "x86-openvino,android-ort-fp32"
COMPANIONS = {"openvino-fp32": "openvino/model-fp32.bin", "ort-fp32": "ort/model-fp32"}


def _trained(path: Path) -> Path:
    """lightunet base=4 at 32 px, trained 30 steps on bright discs (its masks are not empty)."""
    from lightseg.checkpoint import save_checkpoint
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.models import create_model

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pre = Preprocessing(size=SIZE)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    hu, masks = [], []
    for _ in range(8):
        cy, cx, r = *rng.uniform(10, 22, 2), rng.uniform(3, 6)
        m = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.int64)
        hu.append(rng.normal(-100, 30, (SIZE, SIZE)) + 180 * m)
        masks.append(m)
    x = torch.from_numpy(np.stack([pre(h) for h in hu]))
    y = torch.from_numpy(np.stack(masks))
    model = create_model("lightunet", base=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend on shared cores
    try:
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y, weight=torch.tensor([1.0, 3.0]))
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return save_checkpoint(model.eval(), path, "lightunet", pre)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, export folder), both written under umask 022.

    x86-openvino is trimmed to its fp32 IR (the int8 steps add time, not companion files).
    """
    from lightseg.export.targets import TARGETS, export

    root = tmp_path_factory.mktemp("tamper")
    old = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as mp:
            fp32 = ("onnx", "openvino-fp32"), ("openvino-fp32",)
            ov = dataclasses.replace(TARGETS["x86-openvino"], steps=fp32[0], artifacts=fp32[1])
            mp.setitem(TARGETS, "x86-openvino", ov)
            ck = _trained(root / "ck")
            export(ck, TARGETS_ARG, root / "exp", threads=1)
    finally:
        os.umask(old)
    return ck, root / "exp"


@pytest.fixture
def exp(made, tmp_path) -> Path:
    dst = tmp_path / "exp"
    shutil.copytree(made[1], dst)
    return dst


def _companion(m, name: str) -> str:
    (rel,) = m.artifact(name).files
    assert rel.startswith(COMPANIONS[name]), rel
    return rel


def test_every_companion_is_listed_and_checked(made):
    m = load_manifest(made[1])
    for name in COMPANIONS:
        rel = _companion(m, name)
        assert m.verify(m.artifact(name)) == made[1] / m.artifact(name).path
        assert (made[1] / rel).stat().st_size > 0
        assert m.artifact(name).verification["status"] == "pass"


def test_export_and_checkpoint_are_readable_0644_0755(made):
    for folder in made:
        assert modes(folder) == {("dir", "0o755"), ("file", "0o644")}, folder


@pytest.mark.parametrize("name", list(COMPANIONS))
def test_a_flipped_companion_byte_is_refused_by_every_consumer(exp, tmp_path, capsys, name):
    rel = _companion(load_manifest(exp), name)
    flip_byte(exp / rel, 0.0001)
    for cmd in (
        ["parity", exp, "--n", "1"],
        ["bench", exp, "--runs", "1", "--warmup", "0"],
        ["parity", "pack", exp, "--out", tmp_path / "pack", "--n", "1"],
    ):
        line = one_error(capsys, *cmd)
        assert rel in line and "sha256" in line, (cmd, line)
    assert not (tmp_path / "pack").exists()
    with pytest.raises(LightsegError, match=rel.replace(".", r"\.")):
        from lightseg.benchmarks.webdemo import DemoServer

        DemoServer(exp, ort_web=fake_ort_web(tmp_path / "ortweb"))


def test_openvino_runs_on_the_device_script_and_compares(made, tmp_path, capsys):
    pack, res = tmp_path / "pack", tmp_path / "res"
    rc, _, err = cli(capsys, "parity", "pack", made[1], "--out", pack, "--n", "2",
                     "--backends", "openvino-fp32")  # fmt: skip
    assert rc == 0, err
    assert (pack / _companion(load_manifest(pack), "openvino-fp32")).is_file()
    script = [sys.executable, "-I", str(pack / "device_script.py"), str(pack), "--out", str(res)]
    r = subprocess.run([*script, "--artifact", "openvino-fp32", "--runs", "2", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((res / "timings.json").read_text())["backend"] == "openvino"
    rc, _, err = cli(capsys, "parity", "compare", pack, "--device-results", res)
    assert rc == 0, err
