"""LiteRT (TFLite) .tflite through ai-edge-litert's Interpreter; int8 I/O are (de)quantized here."""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import ArtifactRunner, require


class LiteRtRunner(ArtifactRunner):
    """Runs a .tflite; quantizes a float input and dequantizes an integer output if needed."""

    def open_impl(self) -> None:
        mod = require("ai_edge_litert.interpreter", "pip install ai-edge-litert")
        self.interp = mod.Interpreter(model_path=str(self.path), num_threads=self.threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self.inp["shape"])

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        if x.shape != tuple(self.inp["shape"]):
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
        if self.inp["dtype"] != np.float32:
            scale, zero = self.inp["quantization"]
            x = np.round(x / scale + zero).astype(self.inp["dtype"])
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if y.dtype != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    def close_impl(self) -> None:
        del self.interp
