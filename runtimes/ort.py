"""ONNX Runtime for .onnx and .ort (ORT Mobile format) artifacts, threads and providers explicit.

:func:`session` is the loader (also used by export steps that check a graph before it becomes
an artifact); :class:`OrtRunner` opens, infers and closes.
"""

from __future__ import annotations

import numpy as np

from lightseg.errors import BackendUnavailable
from lightseg.runtimes.base import DEFAULT_THREADS, MAX_BATCH, ArtifactRunner, require

HINT = "pip install onnxruntime"
LEVELS = ("disable", "basic", "extended", "all")


def session(
    model,
    threads: int = DEFAULT_THREADS,
    providers: list[str] | None = None,
    level: str = "all",
    spinning: bool = False,
):
    """An InferenceSession for ``model`` (path or serialized bytes).

    Defaults to the CPU provider, all graph optimisations, one inter-op thread and no spinning of
    idle intra-op threads (ORT spins by default, taking CPU from whatever runs next).
    """
    ort = require("onnxruntime", HINT)
    providers = list(providers or ["CPUExecutionProvider"])
    missing = set(providers) - set(ort.get_available_providers())
    if missing:
        raise BackendUnavailable(
            f"onnxruntime {ort.__version__} lacks {sorted(missing)} "
            f"(has {ort.get_available_providers()})"
        )
    levels = dict(
        zip(
            LEVELS,
            (
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            ),
            strict=True,
        )
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[level]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=providers)


def run_model(model, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Logits of an ONNX model (path or bytes) for ``x``, one image at a time if batch is fixed."""
    sess = session(model, threads)
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0].name
    step = 1 if isinstance(inp.shape[0], int) and inp.shape[0] == 1 else MAX_BATCH
    chunks = range(0, len(x), step)
    return np.concatenate([sess.run([out], {inp.name: x[i : i + step]})[0] for i in chunks])


class OrtRunner(ArtifactRunner):
    """An InferenceSession with ``threads`` intra-op threads. Defaults to the CPU provider.

    ``artifact.options["graph_optimization_level"]`` (disable|basic|extended|all) and
    ``["allow_spinning"]`` override the session defaults of :func:`session`;
    ``["defaults"]`` sets nothing at all: ORT's own choices (all cores, spinning on), what a user
    who does not tune anything gets.
    """

    def __init__(self, manifest, artifact, threads: int = DEFAULT_THREADS, providers=None):
        super().__init__(manifest, artifact, threads)
        self.providers = list(providers or ["CPUExecutionProvider"])

    def open_impl(self) -> None:
        ort = require("onnxruntime", HINT)
        level = str(self.artifact.options.get("graph_optimization_level", "all"))
        spinning = bool(self.artifact.options.get("allow_spinning", False))
        if self.artifact.options.get("defaults"):
            self.session = ort.InferenceSession(str(self.path), providers=self.providers)
            level, self.info["threads"] = "all", "default"
        else:
            self.session = session(self.path, self.threads, self.providers, level, spinning)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.info["versions"]["onnxruntime"] = ort.__version__
        self.info["providers"] = self.session.get_providers()
        self.info["graph_optimization_level"] = level

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def close_impl(self) -> None:
        del self.session
