"""PyTorch from a checkpoint: the fp32 eager reference every backend is compared with, and the
torch.compile peers (fp32, bf16 autocast) a latency table needs to show what PyTorch itself can do.
"""

from __future__ import annotations

import contextlib

import numpy as np

from lightseg.errors import LightsegError
from lightseg.runtimes.base import DEFAULT_THREADS, ArtifactRunner, Runner

AUTOCAST = ("", "bf16")


def set_threads(threads: int) -> None:
    """``threads`` intra-op threads and one inter-op thread (the latter only before first use)."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # refused once parallel work has started
        torch.set_num_interop_threads(1)


def _autocast(kind: str):
    import torch

    if kind == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_model(model, autocast: str, example: np.ndarray):
    """``torch.compile(model)``, compiled now on ``example`` so compile time counts as load time."""
    import torch

    if autocast not in AUTOCAST:
        raise LightsegError(f"autocast must be one of {AUTOCAST}, got {autocast!r}")
    compiled = torch.compile(model)
    with torch.inference_mode(), _autocast(autocast):
        compiled(torch.from_numpy(example))
    return compiled


def run(model, x: np.ndarray, autocast: str = "", channels_last: bool = False) -> np.ndarray:
    """float32 logits of ``model`` for ``x``."""
    import torch

    t = torch.from_numpy(x)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _autocast(autocast):
        return model(t).float().contiguous().numpy()


def _example(ck) -> np.ndarray:
    pre = ck.preprocessing
    return np.zeros((1, pre.channels, pre.size, pre.size), np.float32)


_REFERENCES: dict[tuple, object] = {}


def reference_model(checkpoint):
    """The checkpoint's model, loaded once per process for the reference runners.

    Keyed by the folder and its weights' sha256, so a changed checkpoint is loaded afresh; the
    model is only ever run (eval mode, no grad), never changed.
    """
    from lightseg.checkpoint import load_checkpoint, read_meta, resolve

    key = (str(resolve(checkpoint)), read_meta(checkpoint).get("weights_sha256"))
    if key not in _REFERENCES:
        _REFERENCES.clear()  # one reference at a time: a 16 MB model, not a growing cache
        _REFERENCES[key] = load_checkpoint(checkpoint).model.float().eval()
    return _REFERENCES[key]


class TorchRunner(Runner):
    """Runs a checkpoint (folder, "default", or a loaded model) in fp32 eager mode."""

    backend = "pytorch"

    def __init__(self, checkpoint=None, threads: int = DEFAULT_THREADS, model=None) -> None:
        super().__init__("fp32", threads)
        self.checkpoint = checkpoint
        self.model = model
        self.info["artifact"] = "reference"

    def open_impl(self) -> None:
        import torch

        set_threads(self.threads)
        if self.model is None:
            self.model = reference_model(self.checkpoint)
        self.model = self.model.float().eval()
        self.info["versions"]["torch"] = torch.__version__

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return run(self.model, x)


class CheckpointRunner(ArtifactRunner):
    """PyTorch eager fp32 of a checkpoint-folder artifact; ``options.channels_last`` for NHWC."""

    def open_impl(self) -> None:
        import torch

        from lightseg.checkpoint import load_checkpoint

        set_threads(self.threads)
        self.channels_last = bool(self.artifact.options.get("channels_last"))
        self.model = load_checkpoint(self.path).model.float().eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.info["versions"]["torch"] = torch.__version__

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return run(self.model, x, channels_last=self.channels_last)


class CompiledRunner(TorchRunner):
    """torch.compile of a checkpoint, fp32 or under bf16 autocast (``autocast="bf16"``).

    Compiled in ``open`` on a batch-1 input of the checkpoint's size; another batch size
    recompiles on its first run.
    """

    backend = "pytorch-compile"

    def __init__(self, checkpoint=None, threads: int = DEFAULT_THREADS, autocast: str = ""):
        super().__init__(checkpoint, threads)
        self.autocast = autocast
        self.precision = self.info["precision"] = autocast or "fp32"
        self.info["artifact"] = f"torch-compile-{self.precision}"

    def open_impl(self) -> None:
        from lightseg.checkpoint import load_checkpoint

        ck = load_checkpoint(self.checkpoint)
        self.model = ck.model
        super().open_impl()
        self.model = compile_model(self.model, self.autocast, _example(ck))
        self.info["autocast"] = self.autocast or "none"

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return run(self.model, x, self.autocast)


class CompiledCheckpointRunner(ArtifactRunner):
    """torch.compile of a checkpoint-folder artifact; ``options.autocast`` "bf16" or absent."""

    def open_impl(self) -> None:
        import torch

        from lightseg.checkpoint import load_checkpoint

        set_threads(self.threads)
        self.autocast = str(self.artifact.options.get("autocast", ""))
        ck = load_checkpoint(self.path)
        self.model = compile_model(ck.model.float().eval(), self.autocast, _example(ck))
        self.info["versions"]["torch"] = torch.__version__
        self.info["autocast"] = self.autocast or "none"

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return run(self.model, x, self.autocast)
