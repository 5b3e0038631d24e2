"""OpenVINO (IR .xml + .bin, or ONNX) on CPU with the inference precision pinned.

On AMX CPUs OpenVINO silently runs bf16 by default; parity needs f32 unless the artifact is
bf16. :func:`compile_model` is the loader; :class:`OpenVinoRunner` opens, infers and closes.
"""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import DEFAULT_THREADS, ArtifactRunner, require

HINT = "pip install openvino"


def compile_model(path, threads: int = DEFAULT_THREADS, config: dict | None = None):
    """A CPU-compiled model of ``path``; ``config`` adds or overrides OpenVINO properties.

    Defaults to INFERENCE_PRECISION_HINT f32 and INFERENCE_NUM_THREADS ``threads``.
    """
    ov = require("openvino", HINT)
    core = ov.Core()
    props = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    props.update(config or {})
    return core.compile_model(core.read_model(str(path)), "CPU", props)


class OpenVinoRunner(ArtifactRunner):
    """Compiles for CPU with INFERENCE_PRECISION_HINT f32 (bf16 for bf16 artifacts).

    ``artifact.options["run_with"]`` adds OpenVINO properties (e.g. EXECUTION_MODE_HINT).
    """

    def open_impl(self) -> None:
        ov = require("openvino", HINT)
        config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32"}
        config.update(self.artifact.options.get("run_with", {}))
        self.compiled = compile_model(self.path, self.threads, config)
        self.request = self.compiled.create_infer_request()
        self.info["versions"]["openvino"] = ov.get_version()
        self.info["inference_precision"] = config["INFERENCE_PRECISION_HINT"]
        self.info["run_with"] = config

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return np.array(result[self.compiled.output(0)])

    def close_impl(self) -> None:
        del self.request, self.compiled
