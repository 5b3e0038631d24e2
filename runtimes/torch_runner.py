"""PyTorch eager from a checkpoint: the fp32 reference every backend is compared with."""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import DEFAULT_THREADS, ArtifactRunner, Runner


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


class CheckpointRunner(ArtifactRunner):
    """PyTorch eager fp32 of a checkpoint-folder artifact; ``options.channels_last`` for NHWC."""

    def open_impl(self) -> None:
        import torch

        from lightseg.checkpoint import load_checkpoint

        torch.set_num_threads(self.threads)
        self.channels_last = bool(self.artifact.options.get("channels_last"))
        self.model = load_checkpoint(self.path).model.float().eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.info["versions"]["torch"] = torch.__version__

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(x)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(t).contiguous().numpy()
