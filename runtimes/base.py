"""The Runner interface every backend implements, and the registry that picks one.

A runner is opened (loads/compiles the artifact after checking its sha256 against the
manifest), then ``infer(x)`` takes float32 NCHW and returns float32 logits NKHW, then closed.
Like Polygraphy's runners, :meth:`Runner.infer` checks the input and wraps ``infer_impl``.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from pathlib import Path

import numpy as np

from lightseg.errors import BackendUnavailable, LightsegError

#: backend name -> "module:Class" or "/path/to/file.py:Class" (imported only when used, so heavy
#: runtimes stay lazy). Extend it with :func:`register_runner`; the worker process receives the
#: entry with each ``open`` message, so it needs no environment or shared state.
RUNNERS: dict[str, str] = {
    "pytorch": "lightseg.runtimes.torch_runner:TorchRunner",
    "onnxruntime": "lightseg.runtimes.ort:OrtRunner",
    "ort-mobile": "lightseg.runtimes.ort:OrtRunner",
    "openvino": "lightseg.runtimes.openvino:OpenVinoRunner",
    "executorch": "lightseg.runtimes.executorch:ExecuTorchRunner",
    "litert": "lightseg.runtimes.litert:LiteRtRunner",
    "coreml": "lightseg.runtimes.coreml:CoreMlRunner",
    "tensorrt": "lightseg.runtimes.tensorrt:TensorRtRunner",
    "pytorch-eager": "lightseg.runtimes.torch_runner:CheckpointRunner",
    "pytorch-compile": "lightseg.runtimes.torch_runner:CompiledCheckpointRunner",
}
DEFAULT_THREADS = 2
#: Larger inputs are run in chunks of this many images (memory stays that of one chunk).
MAX_BATCH = 8


def require(module: str, hint: str):
    """Import ``module`` or raise :class:`BackendUnavailable` with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"{module} is not importable ({e}); {hint}") from None


class Runner:
    """open / infer / close, usable as a context manager. Subclasses define ``*_impl``."""

    backend = "?"
    #: Set before ``open`` when the runner is opened to be timed, not judged (a backend may then
    #: run its production kernels where it would otherwise emulate its target's arithmetic).
    timing = False

    def __init__(self, precision: str = "fp32", threads: int = DEFAULT_THREADS) -> None:
        self.precision = precision
        self.threads = threads
        self.is_open = False
        self.input_shape: tuple | None = None  # fixed (N, C, H, W) if the artifact is static
        self.info: dict = {
            "backend": self.backend,
            "precision": precision,
            "device": "cpu",
            "threads": threads,
            "versions": {"python": platform.python_version(), "numpy": np.__version__},
        }

    def open_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close_impl(self) -> None:
        """Release the session. Defaults to doing nothing."""

    def open(self) -> Runner:
        if not self.is_open:
            self.open_impl()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self.close_impl()
            self.is_open = False

    def __enter__(self) -> Runner:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits (float32 N x K x H x W) for ``x`` (float32 N x C x H x W)."""
        if not self.is_open:
            raise LightsegError(f"{self.backend}: runner is not open")
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            got = getattr(x, "dtype", type(x).__name__), getattr(x, "shape", None)
            raise LightsegError(f"{self.backend}: input must be float32 NCHW, got {got}")
        fixed = self.input_shape
        if fixed and any(
            isinstance(f, int) and f != s for f, s in zip(fixed, x.shape, strict=False)
        ):
            if x.shape[1:] == tuple(fixed[1:]) and fixed[0] == 1:
                return np.concatenate([self._infer1(x[i : i + 1]) for i in range(len(x))])
            raise LightsegError(f"{self.backend}: input shape {x.shape} != artifact's {fixed}")
        if len(x) > MAX_BATCH:  # a judged set of 64-256 slices would need GBs of activations
            chunks = range(0, len(x), MAX_BATCH)
            return np.concatenate([self._infer1(x[i : i + MAX_BATCH]) for i in chunks])
        return self._infer1(np.ascontiguousarray(x))

    def _infer1(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.infer_impl(x))
        if y.dtype != np.float32:
            y = y.astype(np.float32)
        return y


class ArtifactRunner(Runner):
    """A runner for one manifest artifact: verifies its sha256 before loading it."""

    def __init__(self, manifest, artifact, threads: int = DEFAULT_THREADS) -> None:
        self.manifest = manifest
        self.artifact = artifact
        self.backend = artifact.backend
        super().__init__(artifact.precision, threads)
        self.info["artifact"] = artifact.name
        self.info["format"] = artifact.format
        shape = artifact.inputs[0].shape if artifact.inputs else None
        if shape and all(isinstance(d, int) for d in shape):
            self.input_shape = tuple(shape)

    def open(self) -> Runner:
        if not self.is_open:
            self.path: Path = self.manifest.verify(self.artifact)
        return super().open()


def register_runner(backend: str, spec: str) -> None:
    """Add or replace the runner of ``backend``: ``"module:Class"`` or ``"/file.py:Class"``."""
    if ":" not in spec:
        raise LightsegError(f"runner spec {spec!r} must be 'module:Class' or '/path.py:Class'")
    RUNNERS[backend] = spec


def runner_spec(backend: str) -> str:
    """The registry entry of ``backend``; unknown backends are unavailable, with the list."""
    if backend not in RUNNERS:
        known = ", ".join(RUNNERS)
        raise BackendUnavailable(f"no runner for backend {backend!r} (known: {known})")
    return RUNNERS[backend]


def load_runner_class(spec: str) -> type[Runner]:
    """Import the class a registry entry names."""
    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        mod_spec = importlib.util.spec_from_file_location(f"lightseg_runner_{name}", where)
        if mod_spec is None or mod_spec.loader is None:
            raise BackendUnavailable(f"runner file {where} cannot be imported")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def runner_for(manifest, artifact, threads: int = DEFAULT_THREADS, spec: str | None = None):
    """A (not yet opened) runner for ``artifact`` of ``manifest``."""
    cls = load_runner_class(spec or runner_spec(artifact.backend))
    return cls(manifest, artifact, threads=threads)
