"""What every export step shares: the model, the data, the folder, and artifact bookkeeping."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.export.manifest import Artifact, TensorSpec, sha256_path, size_path

MIN_OPSET = 17
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class ExportContext:
    """State of one export run; ``files`` caches intermediate artifacts by name ("onnx-fp32")."""

    model: object  # torch.nn.Module, eval mode
    pre: Preprocessing
    classes: list[str]
    out: Path
    x: np.ndarray  # verification inputs (N x C x S x S float32)
    ref: np.ndarray  # fp32 PyTorch logits on x
    inputs_source: str
    source_sha256: str = ""
    opset: int = MIN_OPSET
    calibration: str = "minmax"
    calib: np.ndarray | None = None  # calibration inputs (defaults to x)
    version: str = ""
    cache_dir: Path | None = None  # scratch space shared by steps (e.g. calibration ranges)
    files: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (1, self.pre.channels, self.pre.size, self.pre.size)

    def io(self, batch: int | str = 1, dtype: str = "float32") -> dict:
        """Input/output TensorSpecs for a model of this checkpoint."""
        s, c, k = self.pre.size, self.pre.channels, len(self.classes)
        return {
            "inputs": [TensorSpec("image", [batch, c, s, s], dtype)],
            "outputs": [TensorSpec("logits", [batch, k, s, s], dtype)],
        }


def artifact(ctx: ExportContext, name: str, path: Path, seconds: float, **kw) -> Artifact:
    """An Artifact for ``path`` (inside ctx.out) with hash and size filled in; registered."""
    kw.setdefault("inputs", ctx.io()["inputs"])
    kw.setdefault("outputs", ctx.io()["outputs"])
    a = Artifact(
        name=name,
        path=path.relative_to(ctx.out).as_posix(),
        sha256=sha256_path(path),
        size_bytes=size_path(path),
        seconds=round(seconds, 3),
        **kw,
    )
    ctx.artifacts[name] = a
    return a


@contextmanager
def timer():
    """``with timer() as t: ...; t()`` -> seconds elapsed."""
    t0 = time.perf_counter()
    yield lambda: time.perf_counter() - t0


@contextmanager
def atomic_path(final: Path):
    """Yield a temp path beside ``final`` (file or folder); rename it into place on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tmp = tmpdir / final.name
    try:
        yield tmp
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
