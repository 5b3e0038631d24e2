"""This machine's matmul peak (GFLOP/s) for fp32, bf16 and int8, to put model speed in context."""

from __future__ import annotations

import time


def _rate(fn, flops: float, seconds: float = 0.3) -> float:
    fn()  # warm-up (and kernel selection)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return flops * n / (time.perf_counter() - t0) / 1e9


def peak_gflops(threads: int = 2, size: int = 1024) -> dict[str, float | None]:
    """Best-effort peaks with ``threads`` torch threads; ``None`` where a dtype has no kernel."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    flops = 2.0 * size**3
    out: dict[str, float | None] = {}
    try:
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
            out[name] = _rate(lambda a=a, b=b: torch.mm(a, b), flops)
        a = torch.randint(-128, 127, (size, size), dtype=torch.int8)
        b = torch.randint(-128, 127, (size, size), dtype=torch.int8)
        try:
            out["int8"] = _rate(lambda: torch._int_mm(a, b), flops)
        except (RuntimeError, AttributeError):
            out["int8"] = None
    finally:
        torch.set_num_threads(old)
    return out
