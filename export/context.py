"""What every export step shares: the model, the data, the folder, and artifact bookkeeping.

Converters take ``ctx.export_model``: the checkpoint's model with the learnable Swish beta folded
(``fold_swish_beta``), so every runtime sees a plain SiLU (ORT Mobile fuses it, int8 quantizers
see no extra Mul). ``ctx.ref`` stays the original model's output, so verification proves the
fold; every artifact records it in its options (``swish_beta``). With ``equalize`` the decoder's
concats are equalised too (:func:`lightseg.models.equalize.equalize_concats`, exact in fp32, its
ranges from ``calib``), recorded as ``equalized``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.artifact import Artifact, TensorSpec
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import InputSet
from lightseg.fileio import sha256_path, size_path

MIN_OPSET = 17
#: "trained": the activation ranges a QAT checkpoint was trained with (``lightseg qat``).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile", "trained")


@dataclass
class ExportContext:
    """State of one export run; ``files`` caches intermediate artifacts by name ("onnx-fp32")."""

    model: object  # torch.nn.Module, eval mode: the checkpoint's model as trained
    pre: Preprocessing
    classes: list[str]
    out: Path
    verify_set: InputSet  # every artifact is judged on it (the same set as lightseg parity)
    ref: np.ndarray  # fp32 PyTorch logits on verify_set.x
    calib: np.ndarray  # calibration inputs (preprocessed N x C x S x S float32)
    calib_source: dict  # the named set's description, or the user's file
    source_sha256: str = ""
    opset: int = MIN_OPSET
    calibration: str = "minmax"
    activation_ranges: dict | None = None  # a QAT checkpoint's trained ranges (its provenance)
    threads: int = 2
    version: str = ""
    cache_dir: Path | None = None  # scratch space shared by steps (e.g. calibration ranges)
    equalize: bool = False  # equalise the decoder concats (int8 resolution of the skips)
    files: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    not_built: dict[str, str] = field(default_factory=dict)  # artifact -> why its step built none
    export_model: object = field(init=False, repr=False)  # what the converters convert
    fold: dict = field(init=False, repr=False)  # fold_swish_beta's report ({}: no Swish)
    equalized: dict = field(init=False, repr=False)  # equalize_concats' report ({}: not asked)

    def __post_init__(self) -> None:
        from lightseg.models import fold_swish_beta
        from lightseg.models.equalize import equalize_concats

        self.export_model, self.fold = fold_swish_beta(self.model)
        self.equalized = {}
        if self.equalize:
            self.export_model, self.equalized = equalize_concats(self.export_model, self.calib)

    def model_options(self) -> dict:
        """What the exact transforms did: ``swish_beta`` ("folded", or the activations kept
        unfolded; absent without Swish) and ``equalized`` (per Up block; absent unless asked)."""
        opts: dict = {}
        if self.fold:
            kept = sorted(self.fold["kept"])
            opts["swish_beta"] = (
                {"kept": kept, "folded": len(self.fold["folded"])} if kept else "folded"
            )
        if self.equalized:
            opts["equalized"] = self.equalized
        return opts

    @property
    def x(self) -> np.ndarray:
        """The verification inputs (also the example inputs of converters)."""
        return self.verify_set.x

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


def artifact(
    ctx: ExportContext, name: str, path: Path, seconds: float, files: list[Path] = (), **kw
) -> Artifact:
    """An Artifact for ``path`` (inside ctx.out) with hashes and size filled in; registered.

    ``files``: the other files it needs to run (hashed too; the size counts them).
    """
    kw.setdefault("inputs", ctx.io()["inputs"])
    kw["options"] = {**kw.get("options", {}), **ctx.model_options()}
    kw.setdefault("outputs", ctx.io()["outputs"])
    a = Artifact(
        name=name,
        path=path.relative_to(ctx.out).as_posix(),
        sha256=sha256_path(path),
        size_bytes=size_path(path) + sum(size_path(f) for f in files),
        seconds=round(seconds, 3),
        files={f.relative_to(ctx.out).as_posix(): sha256_path(f) for f in files},
        **kw,
    )
    ctx.artifacts[name] = a
    return a


@contextmanager
def timer():
    """``with timer() as t: ...; t()`` -> seconds elapsed."""
    t0 = time.perf_counter()
    yield lambda: time.perf_counter() - t0
