"""This CPU's compute peaks per precision: measured with OpenVINO's own conv kernels, and
documented (from the CPU flags, the cores used and the clock) beside them.

A torch matmul is not a ceiling for the runtimes: OpenVINO's bf16 conv beats torch's bf16 matmul
on AMX. So %-of-peak divides a backend's effective GFLOP/s by the peak a runtime's kernels reach
at that precision (a chain of 3x3 convs, 128 -> 128 channels, 64x64 px, compiled by OpenVINO with
the precision pinned; int8 from a QDQ ONNX model, which OpenVINO runs with int8 kernels).
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import numpy as np

CH, HW, DEPTH = 128, 64, 4  # conv chain of the microbenchmark
CONV_FLOP = 2.0 * CH * CH * 9 * HW * HW * DEPTH


def cpu_flags() -> set[str]:
    """The ``flags`` of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def clock_ghz() -> float | None:
    """Nominal clock: cpufreq's max, else the '@ x.xxGHz' of the model name, else 'cpu MHz'."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1e6
    except (OSError, ValueError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    if m := re.search(r"model name.*@\s*([\d.]+)\s*GHz", text):
        return float(m.group(1))
    if m := re.search(r"cpu MHz\s*:\s*([\d.]+)", text):
        return float(m.group(1)) / 1e3
    return None


def flop_per_cycle(flags: set[str]) -> dict[str, int | None]:
    """Documented peak FLOP (int8: ops) per cycle per core, by precision.

    Sources: Intel 64 and IA-32 Architectures Optimization Reference Manual, AMX chapter (one
    AMX unit per core: 1024 BF16 FLOP and 2048 INT8 OP per cycle), and the AVX-512 ports of Xeon
    Scalable cores (two 512-bit FMA units: 2 x 16 fp32 lanes x 2 = 64 fp32 FLOP/cycle;
    VDPBF16PS doubles that, VPDPBUSD makes 4 int8 MACs per lane: 256 int8 OP/cycle). AVX2: two
    256-bit FMA units, 32 fp32 FLOP/cycle. Assumes two FMA units where AVX-512 is present (some
    parts have one): an upper bound, not a promise.
    """
    if "avx512f" in flags:
        fp32 = 64
    elif "avx2" in flags and "fma" in flags:
        fp32 = 32
    else:
        fp32 = None
    bf16 = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else None
    int8 = 2048 if "amx_int8" in flags else 256 if "avx512_vnni" in flags else None
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def documented_peaks(cores: int, flags: set[str] | None = None, ghz: float | None = None) -> dict:
    """GFLOP/s = FLOP/cycle/core x ``cores`` x GHz (None where the clock or unit is unknown)."""
    flags = cpu_flags() if flags is None else flags
    ghz = clock_ghz() if ghz is None else ghz
    per = flop_per_cycle(flags)
    return {k: (v * cores * ghz if v and ghz else None) for k, v in per.items()}


def has_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has bf16 matrix/vector instructions (AMX-BF16 or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & (cpu_flags() if flags is None else flags))


def _conv_chain(int8: bool):
    """An ONNX model: DEPTH x (3x3 conv + ReLU); with ``int8`` every conv is QDQ (u8 x s8)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(DEPTH):
        w = (rng.standard_normal((CH, CH, 3, 3)) * 0.05).astype(np.float32)
        if int8:
            wq = np.round(w / 0.002).clip(-127, 127).astype(np.int8)
            inits += [
                numpy_helper.from_array(wq, f"wq{i}"),
                numpy_helper.from_array(np.float32(0.002), f"ws{i}"),
                numpy_helper.from_array(np.int8(0), f"wz{i}"),
                numpy_helper.from_array(np.float32(0.02), f"as{i}"),
                numpy_helper.from_array(np.uint8(0), f"az{i}"),
            ]
            nodes += [
                helper.make_node("DequantizeLinear", [f"wq{i}", f"ws{i}", f"wz{i}"], [f"w{i}"]),
                helper.make_node("QuantizeLinear", [x, f"as{i}", f"az{i}"], [f"q{i}"]),
                helper.make_node("DequantizeLinear", [f"q{i}", f"as{i}", f"az{i}"], [f"d{i}"]),
            ]
            x = f"d{i}"
        else:
            inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [
            helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CH, HW, HW])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, CH, HW, HW])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rate(request, x, seconds: float) -> float:
    """GFLOP/s of the conv chain: the best of several short bursts (a peak, not a mean)."""
    request.infer({0: x})  # warm-up
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(3):
            request.infer({0: x})
        best = min(best, (time.perf_counter() - t0) / 3)
    return CONV_FLOP / best / 1e9


def peak_gflops(threads: int = 2, seconds: float = 0.5) -> dict[str, float | None]:
    """Measured OpenVINO conv peaks (GFLOP/s; int8 in OP/s) with ``threads`` threads.

    ``None`` where OpenVINO is missing or the CPU has no kernel for the precision (bf16 needs
    AMX-BF16 or AVX512-BF16).
    """
    import onnx

    from lightseg.errors import BackendUnavailable
    from lightseg.runtimes.openvino import compile_model

    x = np.random.default_rng(1).random((1, CH, HW, HW), dtype=np.float32)
    plan = [("fp32", False, "f32"), ("bf16", False, "bf16"), ("int8", True, "f32")]
    out: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="lightseg-peak-") as tmp:
        for name, int8, hint in plan:
            if name == "bf16" and not has_bf16():
                out[name] = None
                continue
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(_conv_chain(int8), str(path))
            try:
                compiled = compile_model(path, threads, {"INFERENCE_PRECISION_HINT": hint})
            except BackendUnavailable:
                return {"fp32": None, "bf16": None, "int8": None}
            out[name] = _rate(compiled.create_infer_request(), x, seconds)
    return out


def peaks_doc(threads: int) -> dict:
    """Measured and documented peaks, the CPU facts behind the latter, and how each is made."""
    flags = cpu_flags()
    ghz = clock_ghz()
    return {
        "measured_gflops": peak_gflops(threads),
        "documented_gflops": documented_peaks(threads, flags, ghz),
        "threads": threads,
        "clock_ghz": ghz,
        "flags": sorted(
            flags
            & {
                "avx2",
                "fma",
                "avx512f",
                "avx512_bf16",
                "avx512_vnni",
                "amx_bf16",
                "amx_int8",
                "amx_tile",
            }
        ),
        "method": "OpenVINO 3x3 conv chain (128 ch, 64 px), precision pinned; int8 from QDQ. "
        "Documented: FLOP/cycle/core (flop_per_cycle) x threads x clock.",
    }
