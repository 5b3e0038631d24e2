"""ExecuTorch .pte programs (XNNPACK-delegated) through the Python runtime bindings."""

from __future__ import annotations

import numpy as np

from lightseg.runtimes.base import ArtifactRunner, require


class ExecuTorchRunner(ArtifactRunner):
    """Loads the program's ``forward`` method. Thread count is the runtime's own pool."""

    def open_impl(self) -> None:
        rt = require("executorch.runtime", "pip install executorch")
        import torch

        torch.set_num_threads(self.threads)
        self.program = rt.Runtime.get().load_program(str(self.path))
        self.method = self.program.load_method("forward")
        self.info["versions"]["torch"] = torch.__version__

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self.method.execute([torch.from_numpy(x)])[0].numpy()

    def close_impl(self) -> None:
        del self.method, self.program
