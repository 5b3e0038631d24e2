"""Named targets (recipes of export steps), ``export()`` and the doctor's view of this machine.

``export(checkpoint, targets, out)`` runs the steps the targets need (each once, in order),
verifies every new artifact through its runner and the judge on the named ``verification``
input set (see :mod:`lightseg.export.verify`), and writes ``manifest.json`` last. ``x86-auto``
builds its base artifacts here; choosing among candidates is a pipeline above export
(:mod:`lightseg.pipeline.autopick`), run by the ``lightseg export`` command. A backend that is
not installed: named targets fail with the install command (exit 2); with ``all`` those targets
are reported as skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lightseg.artifact import MANIFEST, Manifest
from lightseg.console import native_output
from lightseg.data.sets import input_set
from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.export.context import CALIBRATION_METHODS, MIN_OPSET, ExportContext, timer
from lightseg.runtimes.ort import u8s8_saturates


@dataclass(frozen=True)
class Target:
    name: str
    device: str
    steps: tuple[str, ...]
    artifacts: tuple[str, ...]
    needs: tuple[str, ...]  # python modules needed to build
    install: str
    run_here: str  # can this machine run it, and how / why not
    optional: tuple[tuple[str, str], ...] = ()  # (step, python module): built where importable
    in_all: bool = True  # False: opt-in only (slow searches); ``--targets all`` leaves it out


ORT = ("onnx", "onnxruntime", "onnxsim")
ORT_HINT = "pip install lightseg (onnx, onnxruntime, onnxsim==0.8.1)"

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "android-ort-int8",
            "Android phone, ONNX Runtime Mobile (CPU/XNNPACK; NNAPI usability reported)",
            ("onnx", "int8", "ort-int8"),
            ("ort-int8",),
            ORT,
            ORT_HINT,
            "yes: the .ort runs on ORT CPU here (x86); on the phone via the Android demo",
        ),
        Target(
            "android-ort-fp32",
            "Android phone, ONNX Runtime Mobile fp32",
            ("onnx", "ort-fp32"),
            ("ort-fp32",),
            ORT,
            ORT_HINT,
            "yes: the .ort runs on ORT CPU here (x86); on the phone via the Android demo",
        ),
        Target(
            "iphone-coreml-fp16",
            "iPhone (iOS 16+), Core ML mlprogram, fp16 compute, fp32 I/O",
            ("coreml-fp16", "coreml-fp32"),
            ("coreml-fp16", "coreml-fp32"),
            ("coremltools",),
            "pip install 'lightseg[coreml]' (coremltools==9.0)",
            "macOS only: Core ML prediction needs macOS (Linux checks the spec)",
        ),
        Target(
            "iphone-coreml-int8",
            "iPhone (Core ML, Neural Engine), compressed weights / W8A8: int8 or 6-bit palettized "
            "weights (iOS 16+), int8 activations and weights (iOS 17+; calibrated on macOS)",
            ("coreml-fp16", "coreml-int8w", "coreml-palettized", "coreml-w8a8"),
            ("coreml-fp16", "coreml-int8w", "coreml-palettized", "coreml-w8a8"),
            ("coremltools",),
            "pip install 'lightseg[coreml]' (coremltools==9.0)",
            "macOS only: Core ML prediction (and W8A8 calibration) needs macOS; Linux checks the "
            "spec, the compressed weights and the sizes",
        ),
        Target(
            "jetson-trt-fp16",
            "NVIDIA Jetson, TensorRT fp16 engine (built on the device)",
            ("onnx", "trt-fp16"),
            ("tensorrt-fp16",),
            ORT,
            ORT_HINT,
            "needs TensorRT + an NVIDIA GPU (JetPack on the Jetson)",
        ),
        Target(
            "jetson-trt-int8",
            "NVIDIA Jetson, TensorRT int8 engine from QDQ ONNX with zero points 0 (uint8 grids "
            "kept by offsets)",
            ("onnx", "trt-int8"),
            ("tensorrt-int8", "onnx-int8-trt"),
            ORT,
            ORT_HINT,
            "needs TensorRT + an NVIDIA GPU (JetPack on the Jetson)",
        ),
        Target(
            "jetson-trt-int8-mixed",
            "NVIDIA Jetson, TensorRT engine from the jetson-trt-int8 QDQ ONNX with the most "
            "sensitive layers left to fp16, searched until the strict int8 gate holds. Opt-in",
            ("onnx", "trt-int8", "int8-trt-mixed", "trt-int8-mixed"),
            ("tensorrt-int8", "onnx-int8-trt", "tensorrt-int8-mixed", "onnx-int8-trt-mixed"),
            ORT,
            ORT_HINT,
            "needs TensorRT + an NVIDIA GPU (JetPack on the Jetson); the QDQ file runs on ORT CPU",
            in_all=False,
        ),
        Target(
            "x86-ort-int8",
            "x86 server, ONNX Runtime CPU, int8 QDQ (U8 activations, S8 per-channel weights)",
            ("onnx", "int8"),
            ("onnx-fp32", "onnx-int8"),
            ORT,
            ORT_HINT,
            "yes (ORT CPU EP)",
        ),
        Target(
            "x86-int8-mixed",
            "x86 server, int8 with the most sensitive layers in float, searched until the strict "
            "int8 gate holds (ORT QDQ; OpenVINO IR where installed). Opt-in: ~24 quantizations",
            ("onnx", "int8", "int8-mixed"),
            ("onnx-int8-mixed", "openvino-int8-mixed"),
            ORT,
            ORT_HINT,
            "yes (ORT CPU EP; OpenVINO where installed)",
            (("openvino-int8-mixed", "openvino"),),
            in_all=False,
        ),
        Target(
            "x86-openvino",
            "x86 server, OpenVINO IR fp32 and int8 (ORT QDQ; NNCF PTQ where installed)",
            ("onnx", "int8", "openvino-fp32", "openvino-int8"),
            ("openvino-fp32", "openvino-int8", "openvino-int8-nncf"),
            ORT + ("openvino",),
            "pip install 'lightseg[openvino]'",
            "yes (OpenVINO CPU plugin, precision pinned f32)",
            (("openvino-int8-nncf", "nncf"),),
        ),
        Target(
            "android-executorch",
            "Android phone, ExecuTorch .pte with the XNNPACK delegate, fp32 and int8",
            ("executorch-fp32", "executorch-int8"),
            ("executorch-fp32", "executorch-int8"),
            ("executorch",),
            "pip install 'lightseg[executorch]' (executorch==1.5.1)",
            "yes (ExecuTorch Python runtime, XNNPACK on x86)",
        ),
        Target(
            "android-litert",
            "Android phone, LiteRT (TFLite) fp32",
            ("litert-fp32",),
            ("litert-fp32",),
            ("litert_torch",),
            "pip install 'lightseg[litert]' (litert-torch==0.10.0, ~2 GB with jax)",
            "where ai-edge-litert is installed",
        ),
        Target(
            "web-wasm",
            "Browser, onnxruntime-web (wasm: fixed-shape fp32/int8; fp16 for WebGPU)",
            ("onnx", "fp16", "int8"),
            ("onnx-fp32-fixed", "onnx-int8-fixed", "onnx-fp16"),
            ORT,
            ORT_HINT,
            "in a browser with onnxruntime-web; here the same files run on ORT CPU",
        ),
        Target(
            "x86-auto",
            "x86 server: the fastest ORT / OpenVINO (fp32, bf16, int8) artifact that passes parity",
            ("onnx", "int8", "int8-variants"),
            (
                "onnx-fp32",
                "onnx-int8",
                "onnx-int8-convt-fp",
                "onnx-int8-convt-last-fp",
                "openvino-fp32",
                "openvino-bf16",
                "openvino-int8",
                "onnx-int8-mixed",  # when x86-int8-mixed is exported with it
                "openvino-int8-mixed",
            ),
            ORT,
            ORT_HINT,
            "yes (ORT CPU EP; OpenVINO candidates where OpenVINO is installed)",
            (
                ("openvino-fp32", "openvino"),
                ("openvino-bf16", "openvino"),
                ("openvino-int8", "openvino"),
            ),
        ),
    )
}


def _steps() -> dict[str, Callable[[ExportContext], None]]:
    from lightseg.export import coreml, executorch, litert, openvino, ort_mobile, quantize, tensorrt
    from lightseg.export import onnx as lonnx
    from lightseg.export.int8_mixed import build_int8_mixed
    from lightseg.export.nncf_int8 import build as build_nncf_int8

    return {
        "onnx": lonnx.build,
        "fp16": quantize.build_fp16,
        "int8": quantize.build_int8,
        "int8-variants": quantize.build_int8_variants,
        "int8-mixed": build_int8_mixed,
        "int8-trt-mixed": lambda c: build_int8_mixed(c, symmetric=True),
        "ort-fp32": lambda c: ort_mobile.build(c, "fp32"),
        "ort-int8": lambda c: ort_mobile.build(c, "int8"),
        "coreml-fp16": lambda c: coreml.build(c, "fp16"),
        "coreml-fp32": lambda c: coreml.build(c, "fp32"),
        "coreml-int8w": lambda c: coreml.build_compressed(c, "int8w"),
        "coreml-palettized": lambda c: coreml.build_compressed(c, "palettized"),
        "coreml-w8a8": lambda c: coreml.build_compressed(c, "w8a8"),
        "trt-fp16": lambda c: tensorrt.build(c, "fp16"),
        "trt-int8": lambda c: tensorrt.build(c, "int8"),
        "trt-int8-mixed": lambda c: tensorrt.build(c, "int8-mixed"),
        "openvino-fp32": lambda c: openvino.build(c, "fp32"),
        "openvino-int8": lambda c: openvino.build(c, "int8"),
        "openvino-bf16": openvino.build_bf16,
        "openvino-int8-mixed": openvino.build_int8_mixed,
        "openvino-int8-nncf": build_nncf_int8,
        "executorch-fp32": lambda c: executorch.build(c, "fp32"),
        "executorch-int8": lambda c: executorch.build(c, "int8"),
        "litert-fp32": lambda c: litert.build(c, "fp32"),
    }


def target_steps(target: Target) -> list[str]:
    """The target's steps, with its optional ones whose module is installed."""
    extra = [s for s, mod in target.optional if importlib.util.find_spec(mod) is not None]
    return list(target.steps) + extra


def missing_modules(target: Target) -> list[str]:
    return [m for m in target.needs if importlib.util.find_spec(m) is None]


def resolve_targets(spec: str | list[str]) -> tuple[list[str], bool]:
    """``"all"`` or a comma list -> (names, is_all); unknown names are one clear error."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return [n for n, t in TARGETS.items() if t.in_all], True
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        raise LightsegError(
            f"unknown target(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from: {', '.join(TARGETS)} or all (see lightseg export --list-targets)"
        )
    return list(dict.fromkeys(names)), False


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightseg")
    except PackageNotFoundError:
        return "0+unknown"


LOCK = ".lightseg.lock"
_HELD: set[Path] = set()  # folders this process holds the lock of (the lock is re-entrant)


@contextmanager
def export_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lightseg.lock`` (flock) while writing ``out``; refuse at once if held.

    Another process holding it is one error naming its pid. The file is removed on release.
    Re-entrant in this process, so a pipeline can hold it across ``export()`` and what it does
    to the folder afterwards.
    """
    if out.exists() and not out.is_dir():
        raise LightsegError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    if key in _HELD:
        yield
        return
    path = out / LOCK
    fd = _take_lock(path, out)
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        path.unlink(missing_ok=True)  # still locked: a newcomer makes and locks a new file
        os.close(fd)


def _take_lock(path: Path, out: Path) -> int:
    """An fd holding the flock on ``path`` (the file now at that name), with our pid in it."""
    import fcntl

    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise LightsegError(
                f"{out} is being written by another lightseg process (pid {pid})"
            ) from None
        try:
            current = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:  # not a file the previous holder unlinked as it let go
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise LightsegError(f"{out}: could not take the lock {path} (it keeps changing)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so ``finally`` blocks and context managers clean up."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn the first SIGTERM into :class:`Terminated` (main thread only); a second one kills."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    previous = signal.SIG_DFL if previous is None else previous  # set outside Python

    def raise_once(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    signal.signal(signal.SIGTERM, raise_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_out(out: Path, force: bool) -> bool:
    """Whether ``out`` holds anything (a file for --out, or a non-empty folder without
    --force, is an error)."""
    if out.exists() and not out.is_dir():
        raise LightsegError(f"--out {out} is a file, not a folder")
    used = out.is_dir() and any(e.name != LOCK for e in out.iterdir())
    if used and not force:
        raise LightsegError(f"{out} is not empty; pass --force to export into it")
    return used


def _prepare_out(out: Path, force: bool) -> None:
    """Make ``out`` ready (the lock is held): empty, or cleared of a previous export (--force)."""
    if not _check_out(out, force):
        return
    (out / MANIFEST).unlink(missing_ok=True)  # an interrupted re-export looks incomplete
    for sub in ("ort", "coreml", "tensorrt", "openvino", "executorch", "litert"):
        if (out / sub).is_symlink():
            (out / sub).unlink()
        shutil.rmtree(out / sub, ignore_errors=True)
    for f in [*out.glob("model*.onnx"), *out.glob(".*.tmp")]:  # and an interrupted run's temps
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)


def _calibration(
    pre, calib_data: str | Path | None, calib_n: int | None
) -> tuple[np.ndarray, dict]:
    """(images, description): the named ``calibration`` set, or the user's preprocessed .npy."""
    if calib_data is None:
        cs = input_set("calibration", pre, calib_n)
        return cs.x, cs.describe()
    p = Path(calib_data)
    if p.suffix.lower() != ".npy":
        raise LightsegError(f"--calib-data {p}: expected a .npy array (N x C x S x S float32)")
    try:
        x = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise LightsegError(f"--calib-data {p}: cannot read a .npy array ({e})") from None
    want = (pre.channels, pre.size, pre.size)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise LightsegError(f"--calib-data {p}: shape {x.shape}, expected N x {want} preprocessed")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise LightsegError(f"--calib-data {p}: dtype {x.dtype} is not a real number type")
    if len(x) == 0:
        raise LightsegError(f"--calib-data {p}: holds no images (N = 0)")
    x = np.array(x if calib_n is None else x[:calib_n], dtype=np.float32)
    if not np.isfinite(x).all():
        raise LightsegError(f"--calib-data {p}: contains NaN or Inf values")
    return x, {"name": "user", "source": p.name, "n": len(x)}


def _buildable(targets: str | list[str]) -> tuple[list[str], dict[str, str]]:
    """The targets asked for, and those skipped (``all`` only) because a module is missing."""
    names, is_all = resolve_targets(targets)
    skipped: dict[str, str] = {}
    for n in names:
        miss = missing_modules(TARGETS[n])
        if miss and not is_all:
            raise BackendUnavailable(
                f"target {n}: {', '.join(miss)} not installed; {TARGETS[n].install}"
            )
        if miss:
            skipped[n] = f"{', '.join(miss)} not installed: {TARGETS[n].install}"
    return names, skipped


def _draft(ckpt, build: list[str], out: Path) -> Manifest:
    """The export's manifest, a draft until saved: runners check new artifacts against it."""
    return Manifest(
        source={
            "checkpoint": str(Path(ckpt.path).resolve()),  # absolute: runs from any folder
            "weights_sha256": ckpt.weights_sha256,
            "architecture": ckpt.arch,
            "config": ckpt.model.config.to_dict(),
        },
        preprocessing=ckpt.preprocessing.to_dict(),
        classes=ckpt.classes,
        targets=build,
        root=out,
    )


def _attach_targets(ctx: ExportContext, build: list[str]) -> None:
    for n in build:
        for a in TARGETS[n].artifacts:
            if a in ctx.artifacts and n not in ctx.artifacts[a].targets:
                ctx.artifacts[a].targets.append(n)


def _run_steps(
    ctx: ExportContext, steps: list[str], build: list[str], draft: Manifest, say
) -> dict[str, float]:
    """Each step builds its artifacts; each new artifact, its targets named (a runner may judge
    an artifact by its target's arithmetic), is then verified through the judge."""
    from lightseg.export.verify import verify_new

    funcs = _steps()
    timings: dict[str, float] = {}
    for i, step in enumerate(steps, 1):
        say(f"[{i}/{len(steps)}] {step} ...")
        with timer() as t, native_output():  # converters' native INFO lines stay out of logs
            funcs[step](ctx)
            _attach_targets(ctx, build)
            draft.artifacts = list(ctx.artifacts.values())
            verify_new(ctx, draft)
        timings[step] = round(t(), 2)
        say(f"[{i}/{len(steps)}] {step} done in {timings[step]:.1f} s")
    return timings


def export(
    checkpoint: str | Path | None,
    targets: str | list[str],
    out: str | Path,
    *,
    force: bool = False,
    opset: int = MIN_OPSET,
    calibration: str = "minmax",
    calib_n: int | None = None,
    calib_data: str | Path | None = None,
    n_verify: int | None = None,
    threads: int = 2,
    equalize: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Export ``checkpoint`` (None = the shipped one) for ``targets`` into ``out``.

    Returns the written :class:`Manifest`. Defaults: opset 17, minmax calibration on the
    ``calibration`` set (128 lesion-rich slices), verification on the ``verification`` set
    (its default size). ``equalize``: equalise the decoder concats before every converter
    (exact in fp32; :mod:`lightseg.models.equalize`).
    """
    from lightseg.checkpoint import load_checkpoint
    from lightseg.export.onnx import check_opset
    from lightseg.export.verify import torch_reference

    say = progress or (lambda _: None)
    check_opset(opset)
    if calibration not in CALIBRATION_METHODS:
        raise LightsegError(f"--calibration must be one of {', '.join(CALIBRATION_METHODS)}")
    if (
        (calib_n is not None and calib_n < 1)
        or (n_verify is not None and n_verify < 1)
        or threads < 1
    ):
        raise LightsegError("--calib-n, the verification count and --threads must be >= 1")
    names, skipped = _buildable(targets)
    ckpt = load_checkpoint(checkpoint)
    ranges = ckpt.meta.get("provenance", {}).get("activation_ranges")
    if calibration == "trained" and not ranges:
        raise LightsegError(
            "--calibration trained needs a QAT checkpoint (one made by lightseg qat); "
            "this one has no trained activation ranges"
        )
    if calibration == "trained" and equalize:
        raise LightsegError(
            "--equalize rescales the tensors a QAT checkpoint's trained ranges describe; "
            "use it with minmax, entropy or percentile calibration"
        )
    pre = ckpt.preprocessing
    calib, calib_src = _calibration(pre, calib_data, calib_n)  # validated before touching out
    vset = input_set("verification", pre, n_verify)
    out = Path(out)
    _check_out(out, force)  # before the lock file is written into a stranger's folder
    with export_lock(out), terminate_as_interrupt():
        _prepare_out(out, force)
        ctx = ExportContext(
            model=ckpt.model,
            pre=pre,
            classes=ckpt.classes,
            out=out,
            verify_set=vset,
            ref=torch_reference(ckpt.model, vset.x),
            calib=calib,
            calib_source=calib_src,
            source_sha256=ckpt.weights_sha256,
            opset=opset,
            calibration=calibration,
            activation_ranges=ranges if calibration == "trained" else None,
            threads=threads,
            version=_version(),
            equalize=equalize,
        )
        build = [n for n in names if n not in skipped]
        steps = list(dict.fromkeys(["onnx"] + [s for n in build for s in target_steps(TARGETS[n])]))
        manifest = _draft(ckpt, build, out)
        with tempfile.TemporaryDirectory(prefix="lightseg-export.") as scratch:
            ctx.cache_dir = Path(scratch)
            timings = _run_steps(ctx, steps, build, manifest, say)
            ctx.cache_dir = None
        manifest.artifacts = list(ctx.artifacts.values())
        manifest.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest.lightseg_version = ctx.version
        manifest.extra = {
            "skipped_targets": skipped,
            "not_built": ctx.not_built,
            "step_seconds": timings,
            "input_sets": {"verification": vset.describe(), "calibration": calib_src},
            "calibration": {"method": calibration, "data": calib_src, "equalize": equalize},
            "threads": threads,
            "host": f"{platform.system()} {platform.machine()}",
            # True: x86 without VNNI, int8 verdicts say which arithmetic judged them
            "host_int8_saturates": u8s8_saturates(),
        }
        manifest.save(out)  # last: a folder without it is not a finished export
    return manifest


def doctor() -> list[dict]:
    """Per target: can this machine build it, can it run it, and if not why and how."""
    from lightseg.export.tensorrt import available as trt_available

    rows = []
    for t in TARGETS.values():
        miss = missing_modules(t)
        build = "yes" if not miss else f"no: {', '.join(miss)} missing; {t.install}"
        run = t.run_here
        if t.name.startswith("jetson"):
            build = (
                "engines: yes (TensorRT found)"
                if trt_available()
                else "readiness check + build script only (TensorRT not installed; "
                "engines are built on the Jetson)"
            ) + ("" if not miss else f"; {', '.join(miss)} missing")
        if t.name.startswith("iphone-coreml") and platform.system() == "Darwin":
            run = "yes (macOS)"
        rows.append({"target": t.name, "device": t.device, "build": build, "run": run})
    return rows
