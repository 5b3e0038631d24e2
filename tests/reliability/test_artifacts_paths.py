"""Manifest paths stay inside the export folder; a malformed manifest is one line, exit 2."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from artifact_helpers import edit_manifest, fake_export, fake_ort_web
from rel_helpers import one_error, snapshot

from lightseg.artifact import load_manifest
from lightseg.benchmarks.webdemo import DemoServer
from lightseg.errors import LightsegError

PASSWD = Path("/etc/passwd")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return fake_export(tmp_path / "exp", ("onnx-fp32", "openvino-fp32"))


def _outside(tmp_path: Path) -> tuple[Path, str]:
    """A file outside the export folder, and its sha256 (a crafted manifest would match it)."""
    f = tmp_path / "x" / "model.onnx"
    f.parent.mkdir()
    f.write_bytes(b"not in the folder")
    return f, hashlib.sha256(f.read_bytes()).hexdigest()


def _point(folder: Path, path: str, sha: str, companion: bool = False) -> None:
    def edit(doc):
        a = doc["artifacts"][1 if companion else 0]
        if companion:
            a["files"] = {path: sha}
        else:
            a["path"], a["sha256"] = path, sha

    edit_manifest(folder, edit)


def _escapes(tmp_path: Path, folder: Path):
    """(path as written in the manifest, sha256): relative, absolute and a symlink leading out."""
    f, sha = _outside(tmp_path)
    os.symlink(f, folder / "link.onnx")
    return [("../x/model.onnx", sha), (str(f), sha), ("link.onnx", sha)]


@pytest.mark.parametrize("companion", [False, True], ids=["main", "companion"])
@pytest.mark.parametrize("case", [0, 1, 2], ids=["dotdot", "absolute", "symlink"])
def test_parity_bench_pack_refuse_paths_leading_out(tmp_path, folder, capsys, case, companion):
    path, sha = _escapes(tmp_path, folder)[case]
    _point(folder, path, sha, companion)
    before = snapshot(tmp_path)
    for cmd in (["parity", folder, "--n", "1"], ["bench", folder, "--runs", "1"]):
        line = one_error(capsys, *cmd)
        assert "export folder" in line and "manifest" in line, line
    pack = tmp_path / "pack"
    assert "export folder" in one_error(capsys, "parity", "pack", folder, "--out", pack)
    assert snapshot(tmp_path) == before and not pack.exists()  # pack wrote nothing anywhere


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_demo_server_cannot_be_made_to_serve_etc_passwd(tmp_path, folder, how):
    sha = hashlib.sha256(PASSWD.read_bytes()).hexdigest()
    rel = {"absolute": str(PASSWD), "dotdot": "../" * 40 + "etc/passwd", "symlink": "p.onnx"}[how]
    if how == "symlink":
        os.symlink(PASSWD, folder / "p.onnx")
    _point(folder, rel, sha)
    with pytest.raises(LightsegError, match="export folder"):
        DemoServer(folder, ort_web=fake_ort_web(tmp_path / "ortweb"))


def test_symlink_inside_a_folder_artifact_is_refused(tmp_path):
    root = tmp_path / "exp"
    fake_export(root, ("onnx-fp32",))
    pkg = root / "m.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    os.symlink(PASSWD, pkg / "Data" / "weight.bin")
    from lightseg.fileio import sha256_path

    def add(doc):
        a = dict(doc["artifacts"][0], name="coreml-fp16", path="m.mlpackage", format="mlpackage")
        doc["artifacts"].append(a | {"backend": "coreml", "sha256": sha256_path(pkg)})

    edit_manifest(root, add)
    m = load_manifest(root)
    with pytest.raises(LightsegError, match="link"):
        m.verify(m.artifact("coreml-fp16"))


def _dup(doc):
    doc["artifacts"].append(dict(doc["artifacts"][0]))


MALFORMED = {
    "not-an-object": lambda d: [d],
    "artifacts-not-a-list": lambda d: d.update(artifacts={"onnx-fp32": {}}),
    "artifact-not-an-object": lambda d: d.update(artifacts=["model.onnx"]),
    "duplicate-names": _dup,
    "name-missing": lambda d: d["artifacts"][0].pop("name"),
    "sha256-not-hex": lambda d: d["artifacts"][0].update(sha256="z" * 64),
    "sha256-short": lambda d: d["artifacts"][0].update(sha256="ab"),
    "sha256-a-number": lambda d: d["artifacts"][0].update(sha256=12),
    "files-a-list": lambda d: d["artifacts"][1].update(files=["openvino/model-fp32.bin"]),
    "files-value-not-hex": lambda d: d["artifacts"][1].update(files={"a.bin": "nope"}),
    "path-a-number": lambda d: d["artifacts"][0].update(path=3),
    "path-empty": lambda d: d["artifacts"][0].update(path=""),
    "inputs-not-tensors": lambda d: d["artifacts"][0].update(inputs=[1, 2]),
    "source-a-string": lambda d: d.update(source="x"),
    "classes-not-strings": lambda d: d.update(classes=[0, 1]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_manifest_is_one_line_exit_2(folder, capsys, case):
    edit_manifest(folder, MALFORMED[case])
    assert "manifest" in one_error(capsys, "parity", folder, "--n", "1")


def test_manifest_not_json_or_huge_is_one_line_exit_2(folder, capsys):
    (folder / "manifest.json").write_bytes(b"\xff\xfe{")
    assert "malformed manifest" in one_error(capsys, "parity", folder, "--n", "1")
    with open(folder / "manifest.json", "wb") as f:
        f.truncate(17 << 20)
    assert "not a manifest" in one_error(capsys, "parity", folder, "--n", "1")
