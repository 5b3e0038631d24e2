#!/usr/bin/env python3
"""Run one artifact of a lightseg parity pack on a device; stdlib + numpy + ONE runtime.

    python device_script.py PACK --out RESULTS [--artifact NAME]
        [--runtime onnxruntime|tensorrt|coreml] [--runs 20] [--threads 2]

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

RUNTIME_OF = {
    "onnxruntime": "onnxruntime",
    "ort-mobile": "onnxruntime",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
}


def sha256_path(p: Path) -> str:
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


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


SESSIONS = {"onnxruntime": ort_session, "coreml": coreml_session, "tensorrt": trt_session}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pack", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--artifact", help="artifact name (defaults to the first for --runtime)")
    ap.add_argument("--runtime", choices=sorted(SESSIONS), default="onnxruntime")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    doc = json.loads((a.pack / "pack.json").read_text())
    arts = doc["manifest"]["artifacts"]
    art = next(
        (
            x
            for x in arts
            if x["name"] == a.artifact
            or (not a.artifact and RUNTIME_OF.get(x["backend"]) == a.runtime)
        ),
        None,
    )
    if art is None:
        sys.exit(
            f"no artifact for {a.artifact or a.runtime} in the pack ({[x['name'] for x in arts]})"
        )
    path = a.pack / art["path"]
    if sha256_path(path) != art["sha256"]:
        sys.exit(f"{path}: sha256 does not match the pack's manifest")
    shape = doc["input"]["shape"]
    x = np.fromfile(a.pack / doc["input"]["file"], dtype="<f4").reshape(shape)
    t0 = time.perf_counter()
    run, device = SESSIONS[a.runtime](path, a.threads)
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
    y.astype("<f4").tofile(a.out / "outputs.f32")
    timings = {
        "backend": art["backend"],
        "device": device,
        "artifact": art["name"],
        "batch": step,
        "latency_ms": ms,
        "load_ms": load_ms,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    (a.out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    p50 = sorted(ms)[len(ms) // 2] if ms else 0.0
    print(f"wrote {a.out}/outputs.f32 {tuple(y.shape)}; p50 {p50:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
