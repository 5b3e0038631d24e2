#!/usr/bin/env python3
"""Run one artifact of a lightseg parity pack on a device; stdlib + numpy + ONE runtime.

    python device_script.py PACK --out RESULTS [--artifact NAME]
        [--runtime onnxruntime|openvino|tensorrt|coreml] [--runs 20] [--threads 2]

Before running, every file of the artifact (its main file or folder and each companion, e.g.
OpenVINO's .bin) must lie inside PACK and match the sha256 the pack's manifest gives it.
Writes RESULTS/outputs.f32 (raw little-endian float32 N*K*H*W logits) and RESULTS/timings.json
{backend, device, artifact, latency_ms: [...], load_ms}. Bring both back and run
``lightseg parity compare PACK --device-results RESULTS``.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RUNTIME_OF = {  # artifact backend -> the runtime this script runs it with
    "onnxruntime": "onnxruntime",
    "ort-mobile": "onnxruntime",
    "openvino": "openvino",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
}
FORMATS = {  # runtime -> the artifact formats it loads
    "onnxruntime": ("onnx", "ort"),
    "openvino": ("xml",),
    "tensorrt": ("engine",),
    "coreml": ("mlpackage",),
}


def runnable(art: dict) -> bool:
    """Whether this script can run ``art`` (a manifest artifact entry)."""
    return art.get("format") in FORMATS.get(RUNTIME_OF.get(art.get("backend", "")), ())


def sha256_path(p: Path) -> str:
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def checked(pack: Path, art: dict) -> Path:
    """The artifact's main path, after every file it needs was confined and hash-checked."""
    base = pack.resolve()
    files = [(art["path"], art["sha256"]), *sorted(art.get("files", {}).items())]
    for rel, want in files:
        p = pack / rel
        inside = not Path(rel).is_absolute() and base in p.resolve().parents
        links = [f for f in p.rglob("*") if f.is_symlink()] if p.is_dir() else []
        if not inside or p.is_symlink() or links:
            sys.exit(f"{rel}: a link, or a path outside the pack: refused")
        if not p.exists():
            sys.exit(f"{p}: missing from the pack")
        if sha256_path(p) != want:
            sys.exit(f"{p}: sha256 does not match the pack's manifest: refused")
    return pack / art["path"]


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    providers = [
        p
        for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if p in ort.get_available_providers()
    ]
    sess = ort.InferenceSession(str(path), so, providers=providers)
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x})[0]), f"onnxruntime {ort.__version__} {providers[0]}"


def coreml_session(path: Path, threads: int):
    import coremltools as ct

    m = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    spec = m.get_spec()
    i, o = spec.description.input[0].name, spec.description.output[0].name
    return (
        lambda x: np.asarray(m.predict({i: x})[o], np.float32)
    ), f"Core ML on {platform.machine()} macOS {platform.mac_ver()[0]}"


def trt_session(path: Path, threads: int):
    import tensorrt as trt

    cuda = ctypes.CDLL("libcudart.so")
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        sys.exit("engine does not deserialize here: build it on this device (trtexec --saveEngine)")
    ctx = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    out = next(n for n in names if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT)

    def run(x: np.ndarray) -> np.ndarray:
        ctx.set_input_shape(inp, x.shape)
        y = np.empty(tuple(ctx.get_tensor_shape(out)), np.float32)
        d_in, d_out = ctypes.c_void_p(), ctypes.c_void_p()
        cuda.cudaMalloc(ctypes.byref(d_in), ctypes.c_size_t(x.nbytes))
        cuda.cudaMalloc(ctypes.byref(d_out), ctypes.c_size_t(y.nbytes))
        cuda.cudaMemcpy(d_in, x.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(x.nbytes), 1)
        ctx.set_tensor_address(inp, d_in.value)
        ctx.set_tensor_address(out, d_out.value)
        ctx.execute_async_v3(0)
        cuda.cudaDeviceSynchronize()
        cuda.cudaMemcpy(y.ctypes.data_as(ctypes.c_void_p), d_out, ctypes.c_size_t(y.nbytes), 2)
        cuda.cudaFree(d_in)
        cuda.cudaFree(d_out)
        return y

    return run, f"TensorRT {trt.__version__} on {platform.node()}"


def openvino_session(path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
    )
    return (
        lambda x: np.asarray(compiled(x)[0], np.float32)
    ), f"OpenVINO {ov.__version__} CPU on {platform.machine()}"


SESSIONS = {
    "onnxruntime": ort_session,
    "openvino": openvino_session,
    "coreml": coreml_session,
    "tensorrt": trt_session,
}


def write(path: Path, data: bytes) -> None:
    """Write to a temp name and rename, so an interrupted run leaves no complete-looking file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pack", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--artifact", help="artifact name (defaults to the first for --runtime)")
    ap.add_argument(
        "--runtime",
        choices=sorted(SESSIONS),
        help="defaults to the artifact's (onnxruntime when no --artifact is given)",
    )
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    doc = json.loads((a.pack / "pack.json").read_text())
    arts = doc["manifest"]["artifacts"]
    want = a.runtime or "onnxruntime"
    art = next(
        (
            x
            for x in arts
            if x["name"] == a.artifact
            or (not a.artifact and runnable(x) and RUNTIME_OF[x["backend"]] == want)
        ),
        None,
    )
    if art is None:
        sys.exit(f"no artifact for {a.artifact or want} in the pack ({[x['name'] for x in arts]})")
    runtime = a.runtime or RUNTIME_OF.get(art["backend"], "")
    if not runnable(art) or RUNTIME_OF[art["backend"]] != runtime:
        sys.exit(
            f"{art['name']} ({art['backend']} {art['format']}) does not run with "
            f"{runtime or 'any runtime of this script'}"
        )
    path = checked(a.pack, art)
    shape = doc["input"]["shape"]
    x = np.fromfile(a.pack / Path(doc["input"]["file"]).name, dtype="<f4").reshape(shape)
    t0 = time.perf_counter()
    run, device = SESSIONS[runtime](path, a.threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    fixed = art["inputs"][0]["shape"][0] if art.get("inputs") else None
    step = 1 if fixed == 1 else len(x)
    y = np.concatenate([run(np.ascontiguousarray(x[i : i + step])) for i in range(0, len(x), step)])
    ms = []
    for _ in range(a.runs):
        t = time.perf_counter()
        run(np.ascontiguousarray(x[:step]))
        ms.append((time.perf_counter() - t) * 1e3)
    a.out.mkdir(parents=True, exist_ok=True)
    write(a.out / "outputs.f32", y.astype("<f4").tobytes())
    timings = {
        "backend": art["backend"],
        "device": device,
        "artifact": art["name"],
        "batch": step,
        "latency_ms": ms,
        "load_ms": load_ms,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    write(a.out / "timings.json", (json.dumps(timings, indent=2) + "\n").encode())
    p50 = sorted(ms)[len(ms) // 2] if ms else 0.0
    print(f"wrote {a.out}/outputs.f32 {tuple(y.shape)}; p50 {p50:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
