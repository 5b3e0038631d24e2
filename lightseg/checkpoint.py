"""Checkpoints: a folder with ``weights.safetensors`` + ``model.json``. No pickles.

``model.json`` holds the architecture and its config, the preprocessing, class names, the
sha256 of the weights file, provenance (command line, data, versions) and metrics. Loading
treats both files as untrusted: it bounds and validates model.json, checks the hash, compares
the safetensors header's tensor shapes with the config before building anything, and refuses
NaN/Inf weights. Every failure is a one-line :class:`~lightseg.errors.LightsegError`.

Replacing a checkpoint folder moves the old one to ``.<name>.old`` first and deletes it only
after the new one is in place; a kill in between leaves the backup, which loading (and the
next save) moves back.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError, one_line
from lightseg.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from lightseg.models import MODELS, UNet, UNetConfig, model_config

FORMAT = "lightseg-checkpoint"
SCHEMA_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "model.json"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default"
DEFAULT_CLASSES = ("background", "lesion")
#: Files a checkpoint folder may hold (training state travels in ``last``).
CHECKPOINT_FILES = frozenset(
    {META, WEIGHTS, "train_state.json", "train_state.safetensors", "heldout_eval.json"}
)
MAX_JSON_BYTES = 16 << 20  # model.json / training state larger than this is refused unread
MAX_HEADER_BYTES = 16 << 20  # safetensors header
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                      "I8": 1, "U8": 1, "BOOL": 1}  # fmt: skip

__all__ = ["sha256_file"]  # re-exported: milesial and older callers import it from here


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
    """``None`` or ``"default"`` -> the shipped checkpoint; else the given folder (recovered
    from its backup when a replacement was interrupted, see :func:`recover`)."""
    return DEFAULT_CHECKPOINT if path in (None, "default") else recover(Path(path))


def backup_path(out: str | os.PathLike) -> Path:
    """Where :func:`save_checkpoint` keeps the previous folder while replacing it."""
    out = Path(out)
    return out.with_name(f".{out.name}.old")


def recover(out: str | os.PathLike) -> Path:
    """Move ``out``'s backup back when ``out`` is missing (a kill between the two renames of
    a replacement). Returns the folder to read: ``out``, or the backup if it cannot move."""
    out = Path(out)
    old = backup_path(out)
    if os.path.lexists(out) or not old.is_dir():
        return out
    try:
        old.rename(out)
    except OSError:
        return old
    return out


def is_checkpoint_folder(path: str | os.PathLike) -> bool:
    """A real folder holding model.json + weights.safetensors and only checkpoint files."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    names = {c.name for c in p.iterdir()}
    return {META, WEIGHTS} <= names and names <= CHECKPOINT_FILES


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and write (and delete) a temp file in it; a one-line LightsegError
    when that fails, so a command refuses before its heavy work, not after."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LightsegError(f"output {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".lightseg-write-test-"):
            pass
    except OSError as e:
        raise LightsegError(f"cannot write to {folder}: {e.strerror or one_line(e)}") from None
    return folder


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
    An existing ``out_dir`` is replaced only if it is a checkpoint folder (or empty).
    """
    from safetensors.torch import save

    out = recover(out_dir)
    if out != Path(out_dir):
        raise LightsegError(f"{out_dir}: cannot restore it from its backup {out}")
    if os.path.lexists(out) and not (
        is_checkpoint_folder(out)
        or (out.is_dir() and not out.is_symlink() and not any(out.iterdir()))
    ):
        raise LightsegError(
            f"{out} exists and is not a lightseg checkpoint folder; not replacing it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(tmp / WEIGHTS, save(state, metadata={"format": FORMAT}))
        for name, data in (files or {}).items():
            atomic_write_bytes(tmp / name, data)
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
        atomic_write_text(tmp / META, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755 & ~_umask())
        old = backup_path(out)
        if out.exists():  # out is complete, so a stale backup can go
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)  # a kill before this line leaves the backup, which recover() restores
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json_file(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> object:
    """Parse a JSON file of at most ``limit`` bytes; one-line LightsegError otherwise."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise LightsegError(f"{path}: {what} is {size:,} bytes (at most {limit:,})")
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as e:
        raise LightsegError(f"{path}: {what} is not valid JSON ({one_line(e)})") from None


def _parse_meta(root: Path) -> tuple[dict, UNetConfig, Preprocessing, list[str]]:
    """Read and validate model.json: architecture bounds, preprocessing, classes, hash."""
    meta_file = root / META
    if not root.exists():
        raise LightsegError(f"checkpoint {root}: not a folder (no such path; expected {META})")
    if not root.is_dir():
        raise LightsegError(f"checkpoint {root}: not a folder (a file; expected a folder)")
    if meta_file.is_dir():
        raise LightsegError(f"checkpoint {root}: {META} is a directory")
    if not meta_file.is_file():
        raise LightsegError(f"checkpoint {root}: {META} is missing")
    doc = read_json_file(meta_file, META)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LightsegError(f"checkpoint {root}: {META} is not a {FORMAT} file")
    for key in ("architecture", "config", "preprocessing", "weights_sha256"):
        if key not in doc:
            raise LightsegError(f"checkpoint {root}: {META} lacks {key!r}")
    version = doc.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise LightsegError(f"checkpoint {root}: unsupported schema_version {version!r}")
    arch = doc["architecture"]
    if not isinstance(arch, str) or arch not in MODELS:
        raise LightsegError(
            f"checkpoint {root}: unknown architecture {one_line(repr(arch), 60)} "
            f"(one of {', '.join(MODELS)})"
        )
    if not isinstance(doc["config"], dict):
        raise LightsegError(f"checkpoint {root}: {META} 'config' is not an object")
    try:
        cfg = model_config(arch, **doc["config"])
    except (ValueError, TypeError) as e:
        raise LightsegError(f"checkpoint {root}: bad config ({one_line(e, 160)})") from None
    if not isinstance(doc["preprocessing"], dict):
        raise LightsegError(f"checkpoint {root}: {META} 'preprocessing' is not an object")
    try:
        pre = Preprocessing.from_dict(doc["preprocessing"])
    except LightsegError as e:
        raise LightsegError(f"checkpoint {root}: {one_line(e, 200)}") from None
    if pre.channels != cfg.n_channels:
        raise LightsegError(
            f"checkpoint {root}: preprocessing gives {pre.channels} channels, "
            f"the model takes {cfg.n_channels}"
        )
    classes = doc.get("classes", list(DEFAULT_CLASSES))
    if not (
        isinstance(classes, list)
        and all(isinstance(c, str) and 0 < len(c) <= 100 for c in classes)
        and len(classes) == cfg.n_classes
    ):
        raise LightsegError(
            f"checkpoint {root}: 'classes' must be {cfg.n_classes} names (the model's outputs)"
        )
    digest = doc["weights_sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise LightsegError(f"checkpoint {root}: 'weights_sha256' is not a sha256 hex digest")
    return doc, cfg, pre, classes


def read_meta(path: str | os.PathLike | None) -> dict:
    """The parsed model.json of a checkpoint folder, validated (format, config, bounds)."""
    return _parse_meta(resolve(path))[0]


def expected_shapes(cfg: UNetConfig) -> dict[str, tuple[int, ...]]:
    """Tensor shapes the config builds, computed on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = UNet(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors file's header, reading only the header."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise LightsegError(f"{path}: not a safetensors file (header length {n})")
        try:
            doc = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise LightsegError(f"{path}: safetensors header is not JSON ({one_line(e)})") from None
    if not isinstance(doc, dict):
        raise LightsegError(f"{path}: safetensors header is not an object")
    data_len = size - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, entry in doc.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (a, b) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (
                dtype in SAFETENSORS_DTYPES
                and all(type(d) is int and 0 <= d <= 1 << 31 for d in shape)
                and type(a) is int
                and type(b) is int
                and 0 <= a <= b <= data_len
                and b - a == math.prod(shape) * SAFETENSORS_DTYPES[dtype]
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise LightsegError(f"{path}: bad safetensors entry {one_line(repr(name), 80)}")
        out[name] = (dtype, tuple(shape))
    return out


def check_shapes(found: dict[str, tuple[int, ...]], cfg: UNetConfig, where: str) -> None:
    """Refuse weights whose names or shapes differ from what ``cfg`` builds."""
    want = expected_shapes(cfg)
    missing = sorted(set(want) - set(found))
    extra = sorted(set(found) - set(want))
    wrong = [k for k in want if k in found and tuple(found[k]) != want[k]]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            why = f"{k} has shape {list(found[k])}, the config needs {list(want[k])}"
        elif missing:
            why = f"missing {missing[0]}" + (
                f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            )
        else:
            why = f"unexpected {extra[0]}" + (
                f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            )
        raise LightsegError(f"{where}: weights do not fit the config ({one_line(why, 200)})")


def check_finite(state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse a state dict with a NaN or Inf in any floating-point tensor (names it)."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise LightsegError(f"{where}: tensor {name} has NaN or Inf values")


def load_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Load and verify a checkpoint folder (``None``/"default" = the shipped one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = resolve(path)
    doc, cfg, pre, classes = _parse_meta(root)
    weights = root / WEIGHTS
    if weights.is_dir():
        raise LightsegError(f"checkpoint {root}: {WEIGHTS} is a directory")
    if not weights.is_file():
        raise LightsegError(f"checkpoint {root}: {WEIGHTS} is missing")
    digest = sha256_file(weights)
    if digest != doc["weights_sha256"]:
        raise LightsegError(
            f"checkpoint {root}: {WEIGHTS} sha256 {digest[:12]} does not match model.json "
            f"({doc['weights_sha256'][:12]}): corrupt or modified"
        )
    header = safetensors_header(weights)
    check_shapes({k: s for k, (_, s) in header.items()}, cfg, f"checkpoint {root}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        raise LightsegError(f"checkpoint {root}: cannot read {WEIGHTS} ({one_line(e)})") from None
    check_finite(state, f"checkpoint {root}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = UNet(cfg)
            model.load_state_dict(state, strict=True)
    except (ValueError, TypeError, RuntimeError) as e:
        raise LightsegError(
            f"checkpoint {root}: weights do not fit the config ({one_line(e, 200)})"
        ) from None
    model.eval()
    extra = {k: v for k, v in doc.items() if k not in ("config", "preprocessing", "classes")}
    return Checkpoint(
        model=model,
        arch=doc["architecture"],
        preprocessing=pre,
        classes=list(classes),
        weights_sha256=digest,
        meta=extra,
        path=root,
    )


def torch_versions() -> dict:
    """Versions recorded in provenance."""
    import platform

    return {"torch": torch.__version__, "python": platform.python_version()}
