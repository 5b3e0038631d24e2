"""ONNX Runtime for .onnx and .ort (ORT Mobile format) artifacts, threads and providers explicit."""

from __future__ import annotations

import numpy as np

from lightseg.errors import BackendUnavailable
from lightseg.runtimes.base import DEFAULT_THREADS, ArtifactRunner, require


class OrtRunner(ArtifactRunner):
    """An InferenceSession with ``threads`` intra-op threads. Defaults to the CPU provider."""

    def __init__(self, manifest, artifact, threads: int = DEFAULT_THREADS, providers=None):
        super().__init__(manifest, artifact, threads)
        self.providers = list(providers or ["CPUExecutionProvider"])

    def open_impl(self) -> None:
        ort = require("onnxruntime", "pip install onnxruntime")
        missing = set(self.providers) - set(ort.get_available_providers())
        if missing:
            raise BackendUnavailable(
                f"onnxruntime {ort.__version__} lacks {sorted(missing)} "
                f"(has {ort.get_available_providers()})"
            )
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(self.path), so, providers=self.providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.info["versions"]["onnxruntime"] = ort.__version__
        self.info["providers"] = self.session.get_providers()

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def close_impl(self) -> None:
        del self.session
