"""OpenVINO (IR .xml or ONNX) on CPU with the inference precision pinned.

On AMX CPUs OpenVINO silently runs bf16 by default; parity needs f32 unless the artifact is bf16.
"""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import ArtifactRunner, require


class OpenVinoRunner(ArtifactRunner):
    """Compiles for CPU with INFERENCE_PRECISION_HINT f32 (bf16 for bf16 artifacts)."""

    def open_impl(self) -> None:
        ov = require("openvino", "pip install openvino")
        hint = "bf16" if self.precision == "bf16" else "f32"
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": self.threads}
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.info["versions"]["openvino"] = ov.get_version()
        self.info["inference_precision"] = hint

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return np.array(result[self.compiled.output(0)])

    def close_impl(self) -> None:
        del self.request, self.compiled
