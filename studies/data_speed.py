"""Phantom generation speed: ``.venv/bin/python studies/data_speed.py [--n 128] [--size 256]``.

Prints slices/second for lesion, lesion-free and mixed slices (one process, one thread).
"""

from __future__ import annotations

import argparse
import time

from lightseg.data.phantom import synth_slices


def slices_per_second(n: int = 128, size: int = 256, lesion: bool | None = True) -> float:
    """Slices/second for ``n`` slices of ``size`` x ``size`` (after a small warm-up)."""
    synth_slices(2, 12345, size=size, lesion=lesion)
    t = time.perf_counter()
    synth_slices(n, 0, size=size, lesion=lesion)
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    for name, lesion in (("lesion", True), ("lesion-free", False), ("mixed", None)):
        rate = slices_per_second(args.n, args.size, lesion)
        print(f"{name:12s} {args.size}x{args.size}: {rate:6.1f} slices/s")


if __name__ == "__main__":
    main()
