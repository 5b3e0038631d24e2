"""The device protocol: a pack of inputs + artifacts goes to a device; its outputs come back.

PACK/pack.json  {schema_version, kind, manifest, preprocessing, input, output, masks, data}
PACK/inputs.f32 raw little-endian float32 N*C*H*W; PACK/masks.u8 ground truth (optional)
PACK/manifest.json + every file of the artifacts (companions too) at their manifest paths;
PACK/device_script.py, which hash-checks each of them before it runs one. Only artifacts the
device script can run are packed. The device writes DIR/outputs.f32 (float32 N*K*H*W logits)
+ DIR/timings.json; ``compare`` checks every size before judging.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg.artifact import confined
from lightseg.errors import LightsegError
from lightseg.fileio import atomic_path, atomic_write_bytes, atomic_write_text, sha256_path

SCHEMA_VERSION = 1
KIND = "lightseg-parity-pack"
DEVICE_SCRIPT = Path(__file__).with_name("device_script.py")


MAX_PACK_JSON = 16 << 20


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

    def _raw(self, name: str, dtype: str, shape: list[int]) -> np.ndarray:
        """A raw little-endian array of the pack, refused unless its size is exactly ``shape``."""
        f = confined(self.root, name, "pack.json", "pack")
        want = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if not f.is_file():
            raise LightsegError(f"{f}: missing from the pack")
        if f.stat().st_size != want:
            raise LightsegError(
                f"{f}: {f.stat().st_size} bytes, pack.json says {'x'.join(map(str, shape))} "
                f"{np.dtype(dtype).name} ({want} bytes)"
            )
        return np.fromfile(f, dtype=dtype).reshape(shape)

    def inputs(self) -> np.ndarray:
        return self._raw(self.doc["input"]["file"], "<f4", self.input_shape).astype(np.float32)

    def masks(self) -> np.ndarray | None:
        name = self.doc.get("masks")
        if not name:
            return None
        shape = self.output_shape[:1] + self.output_shape[2:]
        return self._raw(name, "u1", shape).astype(np.int64)


def device_reason(art) -> str | None:
    """Why device_script.py cannot run ``art`` (an Artifact), or None when it can."""
    from lightseg.benchmarks.device_script import FORMATS, RUNTIME_OF, runnable

    if runnable({"backend": art.backend, "format": art.format}):
        return None
    if art.format == "script":
        return (
            "a TensorRT build script, not a model: pack the ONNX it builds from and run it "
            "with onnxruntime there, or export on the device where TensorRT builds the engine"
        )
    ok = ", ".join(f"{r} ({'/'.join(f)})" for r, f in FORMATS.items())
    runtime = RUNTIME_OF.get(art.backend)
    return f"device_script.py has no {runtime or art.backend} path for {art.format}; it runs {ok}"


def _chosen(manifest, backends) -> tuple[set[str], dict[str, str]]:
    """The artifacts to pack, and those left out because the device script cannot run them.

    Artifacts named in ``backends`` that it cannot run are one error saying which and why.
    """
    from lightseg.benchmarks.harness import subjects_for

    chosen = {s.name for s in subjects_for(manifest, backends, 1)}  # verifies hashes
    left = {n: r for n in chosen if (r := device_reason(manifest.artifact(n)))}
    if left and backends:
        raise LightsegError(
            "the device script cannot run "
            + "; ".join(f"{n} ({manifest.artifact(n).backend}): {r}" for n, r in left.items())
        )
    if chosen == set(left):
        raise LightsegError(f"no artifact the device script can run: {'; '.join(left.values())}")
    return chosen - set(left), left


def _copy_artifact(manifest, a, out: Path) -> None:
    """Copy every file ``a`` needs (main + companions) into ``out``, confined and re-hashed."""
    for rel, want in [(a.path, a.sha256), *a.files.items()]:
        src, dst = manifest.path_of(a, rel), confined(out, rel, a.name)
        with atomic_path(dst) as tmp:
            if src.is_dir():
                shutil.copytree(src, tmp, copy_function=shutil.copyfile)
                for d in [tmp, *(d for d in tmp.rglob("*") if d.is_dir())]:
                    d.chmod(0o755)
            else:
                shutil.copyfile(src, tmp)
            if sha256_path(tmp) != want:  # changed since it was verified
                raise LightsegError(f"artifact {a.name}: {src} changed while being packed")


def write_pack(artifact_dir, out, n: int | None, data: str = "verification", backends=None) -> Path:
    """Write a pack for the artifacts selected (all the device script can run, by default).

    Only ``out`` is written to; pack.json comes last, so a pack without it is unfinished.
    """
    from lightseg.artifact import load_manifest
    from lightseg.benchmarks.harness import reference_checkpoint
    from lightseg.benchmarks.inputs import load_inputs
    from lightseg.data.preprocessing import Preprocessing

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LightsegError(f"--out {out} exists and is not an empty folder")
    manifest = load_manifest(artifact_dir)
    chosen, left_out = _chosen(manifest, backends)
    pre = Preprocessing.from_dict(manifest.preprocessing)
    x, gt, source = load_inputs(data, pre, n)
    out.mkdir(parents=True, exist_ok=True)
    doc_manifest = manifest.to_dict()
    doc_manifest["artifacts"] = [a for a in doc_manifest["artifacts"] if a["name"] in chosen]
    # The reference checkpoint stays where the manifest says (resolved to an absolute path).
    ck = reference_checkpoint(manifest)
    doc_manifest["source"]["checkpoint"] = str(Path(ck).resolve()) if ck != "default" else ck
    for a in manifest.artifacts:
        if a.name in chosen:
            _copy_artifact(manifest, a, out)
    atomic_write_bytes(out / "inputs.f32", x.astype("<f4").tobytes())
    if gt is not None:
        atomic_write_bytes(out / "masks.u8", gt.astype(np.uint8).tobytes())
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
        "left_out": left_out,
    }
    atomic_write_text(out / "manifest.json", json.dumps(doc_manifest, indent=2) + "\n")
    atomic_write_bytes(out / "device_script.py", DEVICE_SCRIPT.read_bytes())
    atomic_write_text(out / "pack.json", json.dumps(doc, indent=2) + "\n")
    return out / "pack.json"


def _shape(v: object, n: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) == n
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d < 1 << 20 for d in v)
    )


def check_pack_doc(doc: object, root: Path) -> None:
    """Raise :class:`LightsegError` naming the first field of pack.json that is unusable."""

    def expect(ok: bool, what: str) -> None:
        if not ok:
            raise LightsegError(what)

    expect(isinstance(doc, dict), "pack.json must be a JSON object")
    kind_ok = doc.get("kind") == KIND and doc.get("schema_version") == SCHEMA_VERSION
    expect(kind_ok, f"not a {KIND} v{SCHEMA_VERSION}")
    m = doc.get("manifest")
    expect(
        isinstance(m, dict) and isinstance(m.get("artifacts"), list), "manifest.artifacts: a list"
    )
    expect(isinstance(m.get("source", {}), dict), "manifest.source must be an object")
    for a in m["artifacts"]:
        named = isinstance(a, dict) and all(
            isinstance(a.get(k), str) for k in ("name", "precision")
        )
        expect(named, "manifest.artifacts: objects with a name and a precision")
    i, o = doc.get("input"), doc.get("output")
    expect(isinstance(i, dict) and _shape(i.get("shape"), 4), "input.shape: 4 positive ints")
    expect(isinstance(i.get("file"), str), "input.file must be a file name")
    expect(isinstance(o, dict) and _shape(o.get("shape"), 4), "output.shape: 4 positive ints")
    expect(
        o["shape"][:1] + o["shape"][2:] == i["shape"][:1] + i["shape"][2:],
        "output.shape must be N x K x H x W for the N x C x H x W input",
    )
    expect(doc.get("masks") is None or isinstance(doc["masks"], str), "masks: a file name or null")
    for name in (i["file"], doc.get("masks")):
        if name is not None:
            confined(root, name, "file", "pack")


def read_pack(root) -> Pack:
    """The pack at ``root``; one error naming what is missing or malformed."""
    root = Path(root)
    f = root / "pack.json"
    if not f.is_file():
        raise LightsegError(f"{root}: no pack.json (write one with lightseg parity pack)")
    if f.stat().st_size > MAX_PACK_JSON:
        raise LightsegError(f"{f}: larger than {MAX_PACK_JSON >> 20} MiB, not a pack")
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LightsegError(f"{f}: not valid JSON ({e})") from None
    try:
        check_pack_doc(doc, root)
    except LightsegError as e:
        raise LightsegError(f"{f}: {e}") from None
    return Pack(root, doc)


def _check_timings(runner) -> None:
    """The device's timings.json values used in the report are numbers."""
    t = runner.timings
    lat = t.get("latency_ms", [])
    num = (int, float)
    if not all(isinstance(v, num) and not isinstance(v, bool) for v in lat) or not isinstance(
        t.get("load_ms", 0), num
    ):
        raise LightsegError(f"{runner.dir}: timings.json latency_ms/load_ms must be numbers")


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
    _check_timings(runner)
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
