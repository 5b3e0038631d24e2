"""The device pack: every companion copied, only runnable artifacts, hostile packs refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from artifact_helpers import fake_export, flip_byte, modes
from rel_helpers import one_error

from lightseg.artifact import load_manifest

RUNNABLE = ["onnx-fp32", "openvino-fp32", "ort-fp32"]


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    return fake_export(tmp_path_factory.mktemp("exp") / "exp")


@pytest.fixture(scope="module")
def made(exp, tmp_path_factory) -> Path:
    """A pack of the default selection (2 images), written under umask 022."""
    pack = tmp_path_factory.mktemp("pack") / "pack"
    old = os.umask(0o022)
    try:
        from lightseg.cli import main

        assert main(["parity", "pack", str(exp), "--out", str(pack), "--n", "2"]) == 0
    finally:
        os.umask(old)
    return pack


@pytest.fixture
def pack(made, tmp_path) -> Path:
    """A fresh copy of the pack, and device results of the right size beside it."""
    dst = tmp_path / "pack"
    shutil.copytree(made, dst)
    res = tmp_path / "res"
    res.mkdir()
    doc = json.loads((dst / "pack.json").read_text())
    np.zeros(doc["output"]["shape"], "<f4").tofile(res / "outputs.f32")
    timings = {"artifact": "onnx-fp32", "backend": "onnxruntime", "latency_ms": [1.0]}
    (res / "timings.json").write_text(json.dumps(timings))
    return dst


def test_pack_copies_every_companion_and_only_what_the_device_can_run(exp, made):
    doc = json.loads((made / "pack.json").read_text())
    assert [a["name"] for a in doc["manifest"]["artifacts"]] == RUNNABLE
    assert set(doc["left_out"]) == {"executorch-fp32", "tensorrt-fp16"}
    assert "build script" in doc["left_out"]["tensorrt-fp16"]
    m = load_manifest(made)
    for a in m.artifacts:
        for rel in [a.path, *a.files]:
            assert (made / rel).read_bytes() == (exp / rel).read_bytes(), rel
        m.verify(a)
    assert len([r for a in m.artifacts for r in a.files]) == 2  # the .bin and the .config
    assert not (made / "executorch").exists() and not (made / "tensorrt").exists()


def test_pack_is_readable_0644_0755(made):
    assert modes(made) == {("dir", "0o755"), ("file", "0o644")}


@pytest.mark.parametrize(
    "name,why",
    [("executorch-fp32", "device_script.py has no"), ("tensorrt-fp16", "build script")],
)
def test_pack_refuses_artifacts_the_device_script_cannot_run(exp, tmp_path, capsys, name, why):
    out = tmp_path / "p"
    line = one_error(capsys, "parity", "pack", exp, "--out", out, "--backends", name)
    assert name in line and why in line, line
    assert not out.exists()


def _device(pack: Path, res: Path, *args: str) -> subprocess.CompletedProcess:
    script = pack / "device_script.py"
    cmd = [sys.executable, "-I", str(script), str(pack), "--out", str(res), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("rel", ["openvino/model-fp32.bin", "openvino/model-fp32.xml"])
def test_device_script_checks_every_file_it_runs(pack, tmp_path, rel):
    flip_byte(pack / rel, 0.0001)
    r = _device(pack, tmp_path / "out", "--artifact", "openvino-fp32")
    assert r.returncode != 0 and "sha256 does not match" in r.stderr and rel in r.stderr
    assert not (tmp_path / "out").exists()


def _edit_pack(pack: Path, edit) -> None:
    doc = json.loads((pack / "pack.json").read_text())
    edit(doc)
    (pack / "pack.json").write_text(json.dumps(doc))


def test_device_script_refuses_paths_leading_out_of_the_pack(pack, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(pack / "model.onnx", outside)
    _edit_pack(pack, lambda d: d["manifest"]["artifacts"][0].update(path="../outside.onnx"))
    r = _device(pack, tmp_path / "out", "--artifact", "onnx-fp32")
    assert r.returncode != 0 and "outside the pack" in r.stderr


def test_device_script_refuses_an_artifact_it_cannot_run(pack, tmp_path):
    _edit_pack(pack, lambda d: d["manifest"]["artifacts"][0].update(backend="executorch"))
    r = _device(pack, tmp_path / "out", "--artifact", "onnx-fp32")
    assert r.returncode != 0 and "does not run with" in r.stderr


def _results(pack: Path) -> Path:
    return pack.parent / "res"


PACK_JSON = {  # each edits pack.json in place
    "no-input": lambda d: d.pop("input"),
    "shape-strings": lambda d: d["input"].update(shape=["2", 3, 16, 16]),
    "shape-3d": lambda d: d["input"].update(shape=[2, 3, 16]),
    "shape-negative": lambda d: d["input"].update(shape=[-2, 3, 16, 16]),
    "output-mismatch": lambda d: d["output"].update(shape=[2, 2, 8, 8]),
    "artifacts-not-list": lambda d: d["manifest"].update(artifacts={}),
    "artifact-no-precision": lambda d: d["manifest"]["artifacts"][0].pop("precision"),
    "masks-a-number": lambda d: d.update(masks=3),
    "input-file-leads-out": lambda d: d["input"].update(file="../res/outputs.f32"),
    "wrong-kind": lambda d: d.update(kind="something else"),
}


@pytest.mark.parametrize("case", [*PACK_JSON, "a-list", "not-json"])
def test_compare_refuses_malformed_pack_json(pack, capsys, case):
    doc = json.loads((pack / "pack.json").read_text())
    if case in PACK_JSON:
        PACK_JSON[case](doc)
    text = {"a-list": json.dumps([doc]), "not-json": "{"}.get(case, json.dumps(doc))
    (pack / "pack.json").write_text(text)
    line = one_error(capsys, "parity", "compare", pack, "--device-results", _results(pack))
    assert "pack.json" in line, line


def _truncate(f: Path, n: int = 4) -> None:
    f.write_bytes(f.read_bytes()[:-n])


def _append(f: Path) -> None:
    f.write_bytes(f.read_bytes() + b"\0" * 4)


FILES = {
    "inputs-short": (lambda p: _truncate(p / "inputs.f32"), "inputs.f32"),
    "inputs-long": (lambda p: _append(p / "inputs.f32"), "inputs.f32"),
    "masks-short": (lambda p: _truncate(p / "masks.u8", 1), "masks.u8"),
    "outputs-short": (lambda p: _truncate(_results(p) / "outputs.f32"), "outputs.f32"),
    "outputs-missing": (lambda p: (_results(p) / "outputs.f32").unlink(), "outputs.f32"),
    "timings-a-list": (lambda p: (_results(p) / "timings.json").write_text("[1]"), "timings"),
    "timings-not-json": (lambda p: (_results(p) / "timings.json").write_text("{"), "timings"),
    "timings-strings": (
        lambda p: (_results(p) / "timings.json").write_text('{"latency_ms": ["fast"]}'),
        "timings",
    ),
}


@pytest.mark.parametrize("case", list(FILES))
def test_compare_refuses_truncated_or_malformed_files(pack, capsys, case):
    spoil, named = FILES[case]
    spoil(pack)
    line = one_error(capsys, "parity", "compare", pack, "--device-results", _results(pack))
    assert named in line, line


def test_pack_refuses_an_out_that_is_a_file_or_not_empty(exp, tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert "not an empty folder" in one_error(capsys, "parity", "pack", exp, "--out", f)
    assert f.read_text() == "x"
    assert "not an empty folder" in one_error(capsys, "parity", "pack", exp, "--out", tmp_path)
