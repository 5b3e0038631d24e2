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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_text, sha256_path

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TENSOR_KEYS = {"name", "shape", "dtype", "layout"}


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
            _plain(p, artifact.name)
            digest = sha256_path(p)
            if digest != want:
                raise LightsegError(
                    f"artifact {artifact.name}: sha256 of {p} is {digest[:12]}, manifest "
                    f"says {str(want)[:12]}: the file was modified or corrupted; re-export it"
                )
        return main


def _plain(p: Path, what: str) -> None:
    """Refuse anything but a regular file, or a folder of regular files without symlinks."""
    inner = list(p.rglob("*")) if p.is_dir() and not p.is_symlink() else []
    for f in [p, *inner]:
        if (f is not p and f.is_symlink()) or not (f.is_file() or f.is_dir()):
            raise LightsegError(f"artifact {what}: {f} is a link or not a regular file")


def confined(root: Path, rel: str, what: str = "artifact", folder: str = "export folder") -> Path:
    """``root / rel``, refused unless it stays inside ``root`` (symlinks resolved)."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or "\\" in rel:
        raise LightsegError(f"{what}: path {rel!r} must be relative to the {folder}")
    base = root.resolve()
    p = (root / rel).resolve()
    if p != base and base not in p.parents:
        raise LightsegError(f"{what}: path {rel!r} leads outside the {folder} {root}")
    return root / rel


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read ``root/manifest.json``; one clear error if it is missing, malformed or leads out."""
    root = Path(root)
    f = root / MANIFEST
    if not f.is_file():
        raise LightsegError(
            f"{root}: no {MANIFEST} (is this an export folder? run lightseg export)"
        )
    if f.stat().st_size > MAX_MANIFEST_BYTES:
        raise LightsegError(f"{f}: larger than {MAX_MANIFEST_BYTES >> 20} MiB, not a manifest")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LightsegError(f"{f}: malformed manifest ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
        got = d.get("schema_version") if isinstance(d, dict) else type(d).__name__
        raise LightsegError(f"{f}: schema_version {got!r} is not supported")
    try:
        check_manifest_dict(d, root)
    except LightsegError as e:
        raise LightsegError(f"{f}: malformed manifest ({e})") from None
    return Manifest(
        source=d["source"],
        preprocessing=d["preprocessing"],
        classes=d.get("classes", []),
        targets=d.get("targets", []),
        artifacts=[Artifact.from_dict(a) for a in d["artifacts"]],
        created=d.get("created", ""),
        lightseg_version=d.get("lightseg_version", ""),
        extra=d.get("extra", {}),
        root=root,
    )


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise LightsegError(what)


def _is_sha(v: object) -> bool:
    return isinstance(v, str) and _SHA256.fullmatch(v) is not None


def _str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _check_tensors(v: object, where: str) -> None:
    _expect(isinstance(v, list), f"{where} must be a list")
    for t in v:
        _expect(
            isinstance(t, dict)
            and set(t) <= _TENSOR_KEYS
            and isinstance(t.get("name"), str)
            and isinstance(t.get("shape"), list)
            and all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in t["shape"])
            and all(isinstance(t.get(k, ""), str) for k in ("dtype", "layout")),
            f"{where}: each entry is {{name: str, shape: [int|str], dtype: str, layout: str}}",
        )


def _check_artifact(a: object, i: int, root: Path | None) -> str:
    _expect(isinstance(a, dict), f"artifacts[{i}] must be an object")
    name = a.get("name")
    _expect(isinstance(name, str) and bool(name), f"artifacts[{i}].name must be a non-empty string")
    for k in ("path", "backend", "precision", "format"):
        _expect(isinstance(a.get(k), str), f"artifact {name}: {k} must be a string")
    _expect(_is_sha(a.get("sha256")), f"artifact {name}: sha256 must be 64 hex digits")
    files = a.get("files", {})
    _expect(
        isinstance(files, dict) and all(isinstance(k, str) and _is_sha(files[k]) for k in files),
        f"artifact {name}: files must map relative paths to sha256 hex strings",
    )
    for k in ("tools", "options", "verification"):
        _expect(isinstance(a.get(k, {}), dict), f"artifact {name}: {k} must be an object")
    _expect(_str_list(a.get("targets", [])), f"artifact {name}: targets must be a list of strings")
    for k in ("size_bytes", "seconds"):
        v = a.get(k, 0)
        _expect(
            isinstance(v, (int, float)) and not isinstance(v, bool),
            f"artifact {name}: {k} must be a number",
        )
    _check_tensors(a.get("inputs", []), f"artifact {name}: inputs")
    _check_tensors(a.get("outputs", []), f"artifact {name}: outputs")
    if root is not None:
        for rel in [a["path"], *files]:
            confined(root, rel, f"artifact {name}")
    return name


def check_manifest_dict(d: object, root: Path | None = None) -> None:
    """Raise :class:`LightsegError` naming the first field of ``d`` that breaks the schema.

    With ``root``, every artifact path and companion path must also stay inside ``root``.
    """
    _expect(isinstance(d, dict), "the manifest must be a JSON object")
    for k in ("source", "preprocessing"):
        _expect(isinstance(d.get(k), dict), f"{k} must be an object")
    _expect(isinstance(d.get("extra", {}), dict), "extra must be an object")
    for k in ("classes", "targets"):
        _expect(_str_list(d.get(k, [])), f"{k} must be a list of strings")
    arts = d.get("artifacts")
    _expect(isinstance(arts, list), "artifacts must be a list of objects")
    seen: set[str] = set()
    for i, a in enumerate(arts):
        name = _check_artifact(a, i, root)
        _expect(name not in seen, f"artifact name {name!r} appears twice")
        seen.add(name)
