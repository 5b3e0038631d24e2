"""The device protocol: a pack of inputs + artifacts goes to a device; its outputs come back.

PACK/pack.json  {schema_version, kind, manifest, preprocessing, input, output, masks, data}
PACK/inputs.f32 raw little-endian float32 N*C*H*W; PACK/masks.u8 ground truth (optional)
PACK/manifest.json + the artifacts at their manifest paths; PACK/device_script.py
The device writes DIR/outputs.f32 (float32 N*K*H*W logits) + DIR/timings.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_text

SCHEMA_VERSION = 1
KIND = "lightseg-parity-pack"


@dataclass
class Pack:
    root: Path
    doc: dict

    @property
    def artifacts(self) -> list[dict]:
        return self.doc["manifest"]["artifacts"]

    @property
    def input_shape(self) -> list[int]:
        return self.doc["input"]["shape"]

    @property
    def output_shape(self) -> list[int]:
        return self.doc["output"]["shape"]

    def precision_of_results(self, results_dir) -> str:
        """The precision of the packed artifact a device's timings.json names."""
        from lightseg.runtimes.device import TIMINGS

        try:
            art = json.loads((Path(results_dir) / TIMINGS).read_text()).get("artifact", "")
        except (OSError, ValueError, AttributeError):
            return "fp32"  # the runner reports the unreadable file when it opens
        return next((a["precision"] for a in self.artifacts if a["name"] == art), "fp32")

    def inputs(self) -> np.ndarray:
        f = self.root / self.doc["input"]["file"]
        x = np.fromfile(f, dtype="<f4")
        if x.size != int(np.prod(self.input_shape)):
            raise LightsegError(f"{f}: size does not match pack.json input shape")
        return x.reshape(self.input_shape).astype(np.float32)

    def masks(self) -> np.ndarray | None:
        name = self.doc.get("masks")
        if not name:
            return None
        return (
            np.fromfile(self.root / name, dtype=np.uint8)
            .reshape(self.output_shape[:1] + self.output_shape[2:])
            .astype(np.int64)
        )


def write_pack(artifact_dir, out, n: int | None, data: str = "verification", backends=None) -> Path:
    """Write a pack for the artifacts selected (all by default)."""
    from lightseg.artifact import confined, load_manifest
    from lightseg.benchmarks.harness import reference_checkpoint, subjects_for
    from lightseg.benchmarks.inputs import load_inputs
    from lightseg.data.preprocessing import Preprocessing

    manifest = load_manifest(artifact_dir)
    chosen = {s.name for s in subjects_for(manifest, backends, 1)}  # verifies hashes
    pre = Preprocessing.from_dict(manifest.preprocessing)
    x, gt, source = load_inputs(data, pre, n)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LightsegError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    doc_manifest = manifest.to_dict()
    doc_manifest["artifacts"] = [a for a in doc_manifest["artifacts"] if a["name"] in chosen]
    # The reference checkpoint stays where the manifest says (resolved to an absolute path).
    ck = reference_checkpoint(manifest)
    doc_manifest["source"]["checkpoint"] = str(Path(ck).resolve()) if ck != "default" else ck
    for a in manifest.artifacts:
        if a.name not in chosen:
            continue
        for rel in [a.path, *a.files]:  # every file the artifact needs, each confined to out
            src, dst = manifest.path_of(a, rel), confined(out, rel, a.name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    x.astype("<f4").tofile(out / "inputs.f32")
    if gt is not None:
        gt.astype(np.uint8).tofile(out / "masks.u8")
    k = len(manifest.classes) or 2
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "manifest": doc_manifest,
        "preprocessing": manifest.preprocessing,
        "input": {
            "name": "image",
            "shape": list(x.shape),
            "dtype": "float32",
            "file": "inputs.f32",
        },
        "output": {"name": "logits", "shape": [len(x), k, *x.shape[2:]], "dtype": "float32"},
        "masks": "masks.u8" if gt is not None else None,
        "data": source,
    }
    atomic_write_text(out / "manifest.json", json.dumps(doc_manifest, indent=2) + "\n")
    shutil.copy2(Path(__file__).with_name("device_script.py"), out / "device_script.py")
    atomic_write_text(out / "pack.json", json.dumps(doc, indent=2) + "\n")
    return out / "pack.json"


def read_pack(root) -> Pack:
    root = Path(root)
    f = root / "pack.json"
    if not f.is_file():
        raise LightsegError(f"{root}: no pack.json (write one with lightseg parity pack)")
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise LightsegError(f"{f}: not valid JSON ({e})") from None
    if doc.get("kind") != KIND or doc.get("schema_version") != SCHEMA_VERSION:
        raise LightsegError(f"{f}: not a {KIND} v{SCHEMA_VERSION}")
    return Pack(root, doc)


def compare_device(pack_dir, results_dir, tolerances=None):
    """Judge device results like a local backend (a ParityRun)."""
    from lightseg.benchmarks.harness import ParityRun, Subject, judge, machine, reference_logits
    from lightseg.judge.verdict import load_tolerances
    from lightseg.runtimes.device import DeviceResultsRunner

    pack = read_pack(pack_dir)
    tol = load_tolerances(tolerances)
    x, gt = pack.inputs(), pack.masks()
    precision = pack.precision_of_results(results_dir)
    runner = DeviceResultsRunner(results_dir, pack.output_shape, x, precision)
    runner.open()  # wrong sizes are bad input: exit 2 here, before any judging
    src = pack.doc["manifest"]["source"]
    ref, ref_info = reference_logits(
        src.get("checkpoint", "default"), x, 2, src.get("weights_sha256", "")
    )
    name = runner.info.get("artifact") or "device"
    with tempfile.TemporaryDirectory(prefix="lightseg-device-") as tmp:
        x_path = str(Path(tmp) / "inputs.npy")
        np.save(x_path, x)
        msg = {
            "kind": "device",
            "results": str(results_dir),
            "output_shape": pack.output_shape,
            "inputs": x_path,
            "precision": precision,
        }
        subject = Subject(name, runner.backend, runner.precision, msg)
        verdicts, outputs = judge([subject], x, gt, ref, tol, 120, threads=1, isolate=False)
    verdicts[0].info |= {
        "device": runner.info["device"],
        "latency_ms": runner.timings.get("latency_ms"),
        "load_s": runner.timings.get("load_ms", 0) / 1e3,
    }
    meta = {
        "artifact_dir": str(pack_dir),
        "reference": {"checkpoint": src.get("checkpoint"), **ref_info},
        "data": pack.doc.get("data", "pack"),
        "n": len(x),
        "threads": "device",
        "tolerances": str(tolerances or "default"),
        "uncertainty_band": tol["uncertainty_band"],
        "boundary_px": tol["boundary_px"],
        "machine": machine() | {"device": runner.info["device"]},
    }
    return ParityRun(verdicts, x, gt, ref, outputs, meta)
