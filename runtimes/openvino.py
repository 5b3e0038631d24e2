"""OpenVINO (IR .xml + .bin, or ONNX) on CPU with the inference precision pinned.

On AMX CPUs OpenVINO silently runs bf16 by default; parity needs f32 unless the artifact is
bf16. :func:`compile_model` is the loader; :class:`OpenVinoRunner` opens, infers and closes.
"""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import DEFAULT_THREADS, ArtifactRunner, require

HINT = "pip install openvino"


def compile_model(
    path, threads: int = DEFAULT_THREADS, config: dict | None = None, defaults: bool = False
):
    """A CPU-compiled model of ``path``; ``config`` adds or overrides OpenVINO properties.

    Defaults to INFERENCE_PRECISION_HINT f32 and INFERENCE_NUM_THREADS ``threads``; with
    ``defaults`` only ``config`` is set: OpenVINO's out-of-the-box choices (bf16 on AMX, its own
    thread count), what a user who does not pin anything gets.
    """
    ov = require("openvino", HINT)
    core = ov.Core()
    props: dict = {}
    if not defaults:
        props = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    props.update(config or {})
    return core.compile_model(core.read_model(str(path)), "CPU", props)


def used_properties(compiled) -> dict:
    """The precision and threads a compiled model actually uses (whatever was asked)."""
    names = ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "NUM_STREAMS")
    got = {n: compiled.get_property(n) for n in names}
    return {n: v.to_string() if hasattr(v, "to_string") else str(v) for n, v in got.items()}


class OpenVinoRunner(ArtifactRunner):
    """Compiles for CPU with INFERENCE_PRECISION_HINT f32 (bf16 for bf16 artifacts).

    ``artifact.options["run_with"]`` adds OpenVINO properties (e.g. EXECUTION_MODE_HINT);
    ``options["defaults"]`` pins nothing (see :func:`compile_model`). ``info`` records the
    precision and threads OpenVINO actually used.
    """

    def open_impl(self) -> None:
        ov = require("openvino", HINT)
        defaults = bool(self.artifact.options.get("defaults"))
        config = {} if defaults else {"INFERENCE_PRECISION_HINT": "f32"}
        if self.precision == "bf16" and not defaults:
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        config.update(self.artifact.options.get("run_with", {}))
        self.compiled = compile_model(self.path, self.threads, config, defaults)
        self.request = self.compiled.create_infer_request()
        used = used_properties(self.compiled)
        self.info["versions"]["openvino"] = ov.get_version()
        self.info["inference_precision"] = used["INFERENCE_PRECISION_HINT"]
        self.info["threads"] = int(used["INFERENCE_NUM_THREADS"] or 0) or self.threads
        self.info["run_with"] = config
        self.info["used"] = used

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return np.array(result[self.compiled.output(0)])

    def close_impl(self) -> None:
        del self.request, self.compiled
