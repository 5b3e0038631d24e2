"""manifest.json: what an export folder holds, with hashes that runners verify before loading.

Schema (``schema_version`` 1)::

    {
      "schema_version": 1, "lightseg_version": "...", "created": "ISO-8601",
      "source": {"checkpoint": "...", "weights_sha256": "...", "architecture": "...", "config": {}},
      "preprocessing": {...}, "classes": [...], "targets": [...],
      "artifacts": [Artifact, ...]
    }

Artifact paths are relative to the folder. A directory artifact (``.mlpackage``) is hashed over
its files' relative paths and bytes in sorted order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightseg.errors import LightsegError

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
    verification: dict = field(default_factory=dict)  # {"status": passed|failed|skipped, ...}
    targets: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> Artifact:
        d = dict(d)
        d["inputs"] = [TensorSpec(**t) for t in d.get("inputs", [])]
        d["outputs"] = [TensorSpec(**t) for t in d.get("outputs", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's (relative path, bytes) pairs in sorted order."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_path(path: str | os.PathLike) -> int:
    p = Path(path)
    return (
        sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        if p.is_dir()
        else p.stat().st_size
    )


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    def path_of(self, artifact: Artifact) -> Path:
        if self.root is None:
            raise LightsegError("manifest has no folder")
        return self.root / artifact.path

    def verify(self, artifact: Artifact) -> Path:
        """Return the artifact's path after checking it exists and its sha256 matches."""
        p = self.path_of(artifact)
        if not p.exists():
            raise LightsegError(f"artifact {artifact.name}: {p} is missing")
        digest = sha256_path(p)
        if digest != artifact.sha256:
            raise LightsegError(
                f"artifact {artifact.name}: sha256 of {p.name} is {digest[:12]}, manifest says "
                f"{artifact.sha256[:12]}: the file was modified or corrupted; re-export it"
            )
        return p


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
