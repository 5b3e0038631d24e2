"""Peers: what a user gets from the runtimes without lightseg's tuning, as manifest artifacts.

Each peer is an existing file of the export with another backend or options (like
openvino-bf16's ``run_with``), so the bench times it beside the artifacts and the parity judge
can judge it like any artifact (its sha256 is the file's):

- ``ort-defaults``: the fp32 ONNX in a plain ORT session (all cores, idle spinning on);
- ``openvino-defaults``: the fp32 ONNX compiled by OpenVINO with nothing pinned (bf16 where
  the CPU has AMX/AVX512-BF16: its precision is set so the judge uses that precision's gates);
- ``torch-compile-fp32`` / ``torch-compile-bf16``: torch.compile of a checkpoint-folder
  artifact (fp32, bf16 autocast), where the export holds one.
"""

from __future__ import annotations

import copy

from lightseg.artifact import Artifact

NAMES = ("ort-defaults", "openvino-defaults", "torch-compile-fp32", "torch-compile-bf16")
COMPILE = {"torch-compile-fp32": "fp32", "torch-compile-bf16": "bf16"}


def fp32_onnx(manifest) -> Artifact | None:
    """The export's fp32 ONNX artifact (``onnx-fp32`` first), or None."""
    found = [a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"]
    found.sort(key=lambda a: a.name != "onnx-fp32")
    return found[0] if found else None


def checkpoint_artifact(manifest) -> Artifact | None:
    """A checkpoint folder held by the export (``pytorch-eager``), or None."""
    return next((a for a in manifest.artifacts if a.backend == "pytorch-eager"), None)


def _peer(base: Artifact, name: str, backend: str, precision: str, options: dict) -> Artifact:
    a = copy.deepcopy(base)
    a.name, a.backend, a.precision = name, backend, precision
    a.options = {"peer_of": base.name, **options}
    a.verification, a.targets, a.seconds = {}, [], 0.0
    return a


def peer_artifacts(manifest) -> list[Artifact]:
    """The peers this export allows (see the module docstring), in table order."""
    from lightseg.benchmarks.peaks import has_bf16

    peers = []
    onnx = fp32_onnx(manifest)
    if onnx is not None:
        ov_precision = "bf16" if has_bf16() else "fp32"
        peers.append(_peer(onnx, "ort-defaults", "onnxruntime", "fp32", {"defaults": True}))
        peers.append(_peer(onnx, "openvino-defaults", "openvino", ov_precision, {"defaults": True}))
    ck = checkpoint_artifact(manifest)
    if ck is not None:
        for name, prec in COMPILE.items():
            options = {"autocast": "bf16"} if prec == "bf16" else {}
            peers.append(_peer(ck, name, "pytorch-compile", prec, options))
    return peers
