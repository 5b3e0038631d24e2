"""Helpers of the artifact/folder tests: fake export folders, byte flips, manifest edits."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from lightseg.artifact import Artifact, Manifest, TensorSpec
from lightseg.data.preprocessing import Preprocessing
from lightseg.fileio import sha256_path

PRE = Preprocessing(size=16)
IO = {
    "inputs": [TensorSpec("image", ["batch", 3, 16, 16])],
    "outputs": [TensorSpec("logits", ["batch", 2, 16, 16])],
}
#: name -> (path, backend, format, companion paths): every kind the pack has to decide about
KINDS = {
    "onnx-fp32": ("model.onnx", "onnxruntime", "onnx", ()),
    "openvino-fp32": ("openvino/model-fp32.xml", "openvino", "xml", ("openvino/model-fp32.bin",)),
    "ort-fp32": ("ort/model-fp32.ort", "ort-mobile", "ort", ("ort/m.required_operators.config",)),
    "executorch-fp32": ("executorch/model-fp32.pte", "executorch", "pte", ()),
    "tensorrt-fp16": ("tensorrt/build_engines.sh", "tensorrt", "script", ()),
}


def fake_export(root: Path, names=tuple(KINDS)) -> Path:
    """An export folder whose artifacts are a few distinct bytes each, hashed in manifest.json.

    Nothing runs them: every check under test refuses before a runtime would load one.
    """
    arts = []
    for name in names:
        path, backend, fmt, files = KINDS[name]
        for i, rel in enumerate([path, *files]):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(f"{name} {i} ".encode() * 64)
        arts.append(
            Artifact(
                name,
                path,
                backend,
                "fp32",
                fmt,
                sha256_path(root / path),
                files={r: sha256_path(root / r) for r in files},
                **IO,
            )
        )
    Manifest(
        {"checkpoint": "default"}, PRE.to_dict(), ["background", "lesion"], artifacts=arts
    ).save(root)
    return root


def edit_manifest(root: Path, edit) -> None:
    """Apply ``edit(doc)`` to root/manifest.json (the doc may be replaced by returning one)."""
    doc = json.loads((root / "manifest.json").read_text())
    new = edit(doc)
    (root / "manifest.json").write_text(json.dumps(doc if new is None else new))


def flip_byte(path: Path, at: float = 0.5) -> None:
    """Flip the bits of one byte, ``at`` of the way into the file."""
    data = bytearray(path.read_bytes())
    data[int(at * (len(data) - 1))] ^= 0xFF
    path.write_bytes(bytes(data))


def modes(folder: Path) -> set[tuple[str, str]]:
    """(kind, octal mode) of the folder and everything under it."""
    out = set()
    for p in [folder, *folder.rglob("*")]:
        m = os.lstat(p).st_mode
        out.add(("dir" if stat.S_ISDIR(m) else "file", oct(stat.S_IMODE(m))))
    return out


def fake_ort_web(folder: Path) -> Path:
    """A stand-in onnxruntime-web dist folder (the server only needs the file to exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ort.wasm.min.js").write_text("// stand-in\n")
    return folder
