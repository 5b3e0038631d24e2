"""Core ML .mlpackage through ``MLModel.predict``, which only exists on macOS."""

from __future__ import annotations

import platform

import numpy as np

from lightseg.errors import BackendUnavailable
from lightseg.runtimes.base import ArtifactRunner, require

COMPUTE_UNITS = "CPU_ONLY"  # parity default; ALL lets Core ML pick GPU/Neural Engine (fp16)


class CoreMlRunner(ArtifactRunner):
    """Predicts with compute units pinned (defaults to CPU_ONLY for parity)."""

    compute_units = COMPUTE_UNITS

    def open_impl(self) -> None:
        if platform.system() != "Darwin":
            raise BackendUnavailable("Core ML prediction needs macOS")
        ct = require("coremltools", "pip install coremltools")
        units = getattr(ct.ComputeUnit, self.compute_units)
        self.model = ct.models.MLModel(str(self.path), compute_units=units)
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_name = spec.description.output[0].name
        self.info["versions"]["coremltools"] = ct.__version__
        self.info["device"] = self.compute_units

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        out = self.model.predict({self.input_name: x})
        return np.asarray(out[self.output_name], dtype=np.float32)

    def close_impl(self) -> None:
        del self.model
