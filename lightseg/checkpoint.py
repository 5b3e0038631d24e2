"""Checkpoints: a folder with ``weights.safetensors`` + ``model.json``. No pickles.

``model.json`` holds the architecture and its config, the preprocessing, class names, the
sha256 of the weights file, provenance (command line, data, versions) and metrics. Loading
verifies the hash and that the weights fit the config; every failure is a one-line
:class:`~lightseg.errors.LightsegError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError
from lightseg.models import UNet, model_config

FORMAT = "lightseg-checkpoint"
SCHEMA_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "model.json"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default"
DEFAULT_CLASSES = ("background", "lesion")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and everything that travels with it."""

    model: UNet
    arch: str
    preprocessing: Preprocessing
    classes: list[str]
    weights_sha256: str
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def resolve(path: str | os.PathLike | None) -> Path:
    """``None`` or ``"default"`` -> the shipped checkpoint; else the given folder."""
    return DEFAULT_CHECKPOINT if path in (None, "default") else Path(path)


def save_checkpoint(
    model: UNet,
    out_dir: str | os.PathLike,
    arch: str,
    preprocessing: Preprocessing,
    classes: tuple[str, ...] | list[str] = DEFAULT_CLASSES,
    files: dict[str, bytes] | None = None,
    **meta,
) -> Path:
    """Write ``model`` to ``out_dir`` atomically (a temp folder renamed into place).

    ``meta`` (e.g. ``provenance=..., metrics=...``) is stored verbatim in model.json; ``files``
    (name -> bytes, e.g. training state) are written into the same folder in the same step.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS, metadata={"format": FORMAT})
        for name, data in (files or {}).items():
            (tmp / name).write_bytes(data)
        doc = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "architecture": arch,
            "config": model.config.to_dict(),
            "preprocessing": preprocessing.to_dict(),
            "classes": list(classes),
            "weights_sha256": sha256_file(tmp / WEIGHTS),
            **meta,
        }
        (tmp / META).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_meta(path: str | os.PathLike | None) -> dict:
    """The parsed model.json of a checkpoint folder, validated for format."""
    root = resolve(path)
    meta_file = root / META
    if not root.is_dir():
        raise LightsegError(f"checkpoint {root}: not a folder (expected {WEIGHTS} + {META})")
    if not meta_file.is_file():
        raise LightsegError(f"checkpoint {root}: {META} is missing")
    try:
        doc = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LightsegError(f"checkpoint {root}: {META} is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LightsegError(f"checkpoint {root}: {META} is not a {FORMAT} file")
    for key in ("architecture", "config", "preprocessing", "weights_sha256"):
        if key not in doc:
            raise LightsegError(f"checkpoint {root}: {META} lacks {key!r}")
    return doc


def load_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Load and verify a checkpoint folder (``None``/"default" = the shipped one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = resolve(path)
    doc = read_meta(root)
    weights = root / WEIGHTS
    if not weights.is_file():
        raise LightsegError(f"checkpoint {root}: {WEIGHTS} is missing")
    digest = sha256_file(weights)
    if digest != doc["weights_sha256"]:
        raise LightsegError(
            f"checkpoint {root}: {WEIGHTS} sha256 {digest[:12]} does not match model.json "
            f"({str(doc['weights_sha256'])[:12]}): corrupt or modified"
        )
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        raise LightsegError(f"checkpoint {root}: cannot read {WEIGHTS} ({e})") from None
    try:
        model = UNet(model_config(doc["architecture"], **doc["config"]))
        model.load_state_dict(state, strict=True)
        pre = Preprocessing.from_dict(doc["preprocessing"])
    except (ValueError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise LightsegError(f"checkpoint {root}: weights do not fit the config ({first})") from None
    model.eval()
    extra = {k: v for k, v in doc.items() if k not in ("config", "preprocessing", "classes")}
    return Checkpoint(
        model=model,
        arch=doc["architecture"],
        preprocessing=pre,
        classes=list(doc.get("classes", DEFAULT_CLASSES)),
        weights_sha256=digest,
        meta=extra,
        path=root,
    )


def torch_versions() -> dict:
    """Versions recorded in provenance."""
    import platform

    return {"torch": torch.__version__, "python": platform.python_version()}
