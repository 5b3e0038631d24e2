"""One backend in its own process, driven by JSON lines, so a native crash or hang is contained.

Commands (one JSON object per line on stdin; one reply per line on the protocol pipe):
``pin`` {cpus} (before ``open``), ``open`` {kind: reference|artifact|device, timing: true when
opened to be timed, ...}, ``infer`` {inputs, out}, ``time`` {inputs, n}, ``close``. Library
output that goes to stdout is redirected to stderr.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np

from lightseg.errors import BackendUnavailable, LightsegError


def open_runner(msg: dict):
    """The runner an ``open`` message describes (not yet opened).

    kinds: ``reference`` {checkpoint, compile: absent | "fp32" | "bf16" (torch.compile, autocast)},
    ``artifact`` {manifest, artifact, runner, artifact_doc: an artifact not in the manifest file,
    e.g. a peer: options on one of its files}, ``device`` {results, output_shape, inputs,
    precision}.
    """
    kind = msg["kind"]
    if kind == "reference" and msg.get("compile"):
        from lightseg.runtimes.torch_runner import CompiledRunner

        autocast = "" if msg["compile"] == "fp32" else msg["compile"]
        return CompiledRunner(msg.get("checkpoint"), msg["threads"], autocast)
    if kind == "reference":
        from lightseg.runtimes.torch_runner import TorchRunner

        return TorchRunner(msg.get("checkpoint"), threads=msg["threads"])
    if kind == "device":
        from lightseg.runtimes.device import DeviceResultsRunner

        return DeviceResultsRunner(
            msg["results"], msg["output_shape"], np.load(msg["inputs"]), msg.get("precision", "")
        )
    from lightseg.artifact import Artifact, load_manifest
    from lightseg.runtimes.base import runner_for

    manifest = load_manifest(msg["manifest"])
    doc = msg.get("artifact_doc")
    art = Artifact.from_dict(doc) if doc else manifest.artifact(msg["artifact"])
    return runner_for(manifest, art, threads=msg["threads"], spec=msg.get("runner"))


def pin(cpus: list[int]) -> list[int] | None:
    """Bind this process (and the threads it starts later) to ``cpus``; the CPUs it runs on
    afterwards, or None where the OS has no affinity call (macOS)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    os.sched_setaffinity(0, cpus)
    return sorted(os.sched_getaffinity(0))


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec (ru_maxrss would carry the
    parent's peak across fork+exec). Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class Session:
    """The state of one backend; ``handle`` answers one command (also used in-process)."""

    def __init__(self) -> None:
        self.runner = None
        self.cache: dict[str, np.ndarray] = {}

    def _inputs(self, path: str) -> np.ndarray:
        if path not in self.cache:
            self.cache[path] = np.load(path)
        return self.cache[path]

    def handle(self, msg: dict) -> dict:
        cmd = msg["cmd"]
        try:
            if cmd == "pin":
                return {"ok": True, "cpus": pin([int(c) for c in msg["cpus"]])}
            if cmd == "open":
                t0 = time.perf_counter()
                self.runner = open_runner(msg)
                self.runner.timing = bool(msg.get("timing"))
                self.runner.open()
                return {"ok": True, "load_s": time.perf_counter() - t0, "info": self.runner.info}
            if cmd == "infer":
                t0 = time.perf_counter()
                y = self.runner.infer(self._inputs(msg["inputs"]))
                np.save(msg["out"], y)
                return {"ok": True, "seconds": time.perf_counter() - t0}
            if cmd == "time":
                x = self._inputs(msg["inputs"])
                ms = []
                for _ in range(int(msg["n"])):
                    t0 = time.perf_counter()
                    self.runner.infer(x)
                    ms.append((time.perf_counter() - t0) * 1e3)
                return {"ok": True, "ms": ms}
            if cmd == "close":
                if self.runner is not None:
                    self.runner.close()
                return {"ok": True, "peak_rss_mb": peak_rss_mb()}
            return {"ok": False, "status": "error", "message": f"unknown command {cmd!r}"}
        except BackendUnavailable as e:
            return {"ok": False, "status": "skipped", "message": str(e)}
        except LightsegError as e:
            return {"ok": False, "status": "error", "message": str(e)}
        except Exception as e:  # a runtime's own exception: that backend's failure
            first = (str(e).strip().splitlines() or [""])[0][:300]
            return {"ok": False, "status": "error", "message": f"{type(e).__name__}: {first}"}


def main() -> None:
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # native libraries printing to stdout must not corrupt the protocol
    session = Session()
    for line in sys.stdin:
        msg = json.loads(line)
        proto.write(json.dumps(session.handle(msg)) + "\n")
        proto.flush()
        if msg["cmd"] == "close":
            break


if __name__ == "__main__":
    main()
