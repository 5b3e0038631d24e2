"""Device results as a runner: outputs a device wrote for a pack, judged like a local backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError
from lightseg.runtimes.base import Runner

OUTPUTS = "outputs.f32"
TIMINGS = "timings.json"


class DeviceResultsRunner(Runner):
    """Replays ``DIR/outputs.f32`` for the pack's inputs (and only for those inputs).

    ``precision`` is the packed artifact's (the caller reads it from the pack).
    """

    def __init__(
        self, results_dir: str | Path, output_shape, inputs: np.ndarray, precision: str = ""
    ) -> None:
        self.dir = Path(results_dir)
        self.output_shape = tuple(int(d) for d in output_shape)
        self.expected_inputs = inputs
        self.timings = self._timings()
        self.backend = str(self.timings.get("backend", "device"))
        art = self.timings.get("artifact", "")
        super().__init__(precision or "fp32", threads=0)
        self.info.update(device=self.timings.get("device", "unknown"), artifact=art)
        self.info["versions"] = self.timings.get("versions", {})

    def _timings(self) -> dict:
        f = self.dir / TIMINGS
        if not f.is_file():
            raise LightsegError(f"{self.dir}: no {TIMINGS} (run device_script.py on the device)")
        try:
            doc = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise LightsegError(f"{f}: not valid JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("latency_ms", []), list):
            raise LightsegError(f"{f}: expected an object with latency_ms: [...]")
        return doc

    def open_impl(self) -> None:
        f = self.dir / OUTPUTS
        if not f.is_file():
            raise LightsegError(f"{self.dir}: no {OUTPUTS}")
        shape = self.output_shape
        data = np.fromfile(f, dtype="<f4")
        if data.size != int(np.prod(shape)):
            raise LightsegError(
                f"{f}: holds {data.size} float32 values, expected {int(np.prod(shape))} "
                f"(N*K*H*W = {'x'.join(map(str, shape))})"
            )
        self.outputs = data.reshape(shape).astype(np.float32)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        if not np.array_equal(x, self.expected_inputs):
            raise LightsegError("device results exist only for the pack's own inputs")
        return self.outputs
