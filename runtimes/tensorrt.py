"""TensorRT serialized engines (.engine), TensorRT 10 API, buffers as torch CUDA tensors.

Engines are not portable across GPUs or TensorRT versions: build them on the target (Jetson).
"""

from __future__ import annotations

import numpy as np

from lightseg.errors import BackendUnavailable
from lightseg.runtimes.base import ArtifactRunner, require

HINT = (
    "TensorRT is not on PyPI in usable form: use JetPack on a Jetson or an NVIDIA NGC "
    "container, or run the artifact there with `lightseg parity pack` + device_script.py"
)


class TensorRtRunner(ArtifactRunner):
    """Deserializes the engine and runs it on the current CUDA device."""

    def open_impl(self) -> None:
        trt = require("tensorrt", HINT)
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("TensorRT needs a CUDA device; torch sees none")
        self.torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"{self.path.name}: engine built for another GPU/TensorRT")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.in_name = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.out_name = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self.info["versions"]["tensorrt"] = trt.__version__
        self.info["device"] = torch.cuda.get_device_name()

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        xin = torch.from_numpy(x).cuda()
        self.context.set_input_shape(self.in_name, tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.out_name)), device="cuda")
        self.context.set_tensor_address(self.in_name, xin.data_ptr())
        self.context.set_tensor_address(self.out_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return out.cpu().numpy()

    def close_impl(self) -> None:
        del self.context, self.engine
