"""manifest.json: what an export folder holds, with hashes that runners verify before loading.

Schema (``schema_version`` 1)::

    {
      "schema_version": 1, "lightseg_version": "...", "created": "ISO-8601",
      "source": {"checkpoint": "...", "weights_sha256": "...", "architecture": "...", "config": {}},
      "preprocessing": {...}, "classes": [...], "targets": [...],
      "artifacts": [Artifact, ...]
    }

Artifact paths are relative to the folder and must stay inside it (no absolute paths, no
``..``, no symlinks leading out). ``sha256`` covers the artifact's main file; a directory
artifact (``.mlpackage``) is hashed over its files' relative paths and bytes in sorted order.
Every other file an artifact needs to run (OpenVINO's ``.bin`` weights, external ONNX data) is
listed in ``files`` with its own sha256: :meth:`Manifest.verify` checks all of them, and every
consumer (runners, parity, bench, pack, the web demo) goes through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_text, sha256_path

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class TensorSpec:
    name: str
    shape: list  # ints, or strings for dynamic dims ("batch")
    dtype: str = "float32"
    layout: str = "NCHW"


@dataclass
class Artifact:
    """One exported file or folder and how it was made and verified."""

    name: str  # unique id, e.g. "onnx-fp32", "ort-int8", "coreml-fp16"
    path: str  # relative to the export folder
    backend: str  # onnxruntime | ort-mobile | coreml | tensorrt | openvino | executorch | litert
    precision: str  # fp32 | fp16 | int8 | bf16
    format: str  # onnx | ort | mlpackage | engine | xml | pte | tflite | script
    sha256: str = ""
    size_bytes: int = 0
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    tools: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    seconds: float = 0.0
    verification: dict = field(default_factory=dict)  # the judge's verdict summary
    targets: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # companion file (relative) -> sha256

    @classmethod
    def from_dict(cls, d: dict) -> Artifact:
        d = dict(d)
        d["inputs"] = [TensorSpec(**t) for t in d.get("inputs", [])]
        d["outputs"] = [TensorSpec(**t) for t in d.get("outputs", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Manifest:
    source: dict
    preprocessing: dict
    classes: list[str]
    targets: list[str] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    created: str = ""
    lightseg_version: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)  # e.g. auto-pick decisions
    root: Path | None = None

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise LightsegError(f"manifest has no artifact {name!r} (has: {self.names()})")

    def names(self) -> str:
        return ", ".join(a.name for a in self.artifacts) or "none"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("root")
        return d

    def save(self, root: str | os.PathLike) -> Path:
        out = Path(root) / MANIFEST
        atomic_write_text(out, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return out

    def path_of(self, artifact: Artifact, rel: str | None = None) -> Path:
        """The path of ``artifact`` (or of one of its companion files), confined to the folder."""
        if self.root is None:
            raise LightsegError("manifest has no folder")
        return confined(self.root, artifact.path if rel is None else rel, artifact.name)

    def paths(self, artifact: Artifact) -> list[Path]:
        """Every file or folder ``artifact`` needs: its main path, then its companions."""
        return [self.path_of(artifact)] + [self.path_of(artifact, r) for r in artifact.files]

    def verify(self, artifact: Artifact) -> Path:
        """The artifact's path, after checking it and every companion file against its sha256."""
        main = self.path_of(artifact)
        for p, want in [(main, artifact.sha256)] + [
            (self.path_of(artifact, r), h) for r, h in sorted(artifact.files.items())
        ]:
            if not p.exists():
                raise LightsegError(f"artifact {artifact.name}: {p} is missing")
            digest = sha256_path(p)
            if digest != want:
                raise LightsegError(
                    f"artifact {artifact.name}: sha256 of {p.name} is {digest[:12]}, manifest "
                    f"says {str(want)[:12]}: the file was modified or corrupted; re-export it"
                )
        return main


def confined(root: Path, rel: str, what: str = "artifact") -> Path:
    """``root / rel``, refused unless it stays inside ``root`` (symlinks resolved)."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or "\\" in rel:
        raise LightsegError(f"{what}: path {rel!r} must be relative to the export folder")
    base = root.resolve()
    p = (root / rel).resolve()
    if p != base and base not in p.parents:
        raise LightsegError(f"{what}: path {rel!r} leads outside the export folder {root}")
    return root / rel


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read ``root/manifest.json``; one clear error if it is missing or malformed."""
    root = Path(root)
    f = root / MANIFEST
    if not f.is_file():
        raise LightsegError(
            f"{root}: no {MANIFEST} (is this an export folder? run lightseg export)"
        )
    try:
        d = json.loads(f.read_text())
        if d.get("schema_version") != SCHEMA_VERSION:
            raise LightsegError(f"{f}: schema_version {d.get('schema_version')!r} is not supported")
        return Manifest(
            source=d["source"],
            preprocessing=d["preprocessing"],
            classes=d.get("classes", []),
            targets=d.get("targets", []),
            artifacts=[Artifact.from_dict(a) for a in d.get("artifacts", [])],
            created=d.get("created", ""),
            lightseg_version=d.get("lightseg_version", ""),
            extra=d.get("extra", {}),
            root=root,
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise LightsegError(f"{f}: malformed manifest ({type(e).__name__}: {e})") from None
