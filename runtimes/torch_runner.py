"""PyTorch eager from a checkpoint: the fp32 reference every backend is compared with."""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import DEFAULT_THREADS, Runner


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

        torch.set_num_threads(self.threads)
        if self.model is None:
            from lightseg.checkpoint import load_checkpoint

            self.model = load_checkpoint(self.checkpoint).model
        self.model = self.model.float().eval()
        self.info["versions"]["torch"] = torch.__version__

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()
