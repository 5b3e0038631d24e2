"""ONNX Runtime for .onnx and .ort (ORT Mobile format) artifacts, threads and providers explicit.

:func:`session` is the loader (also used by export steps that check a graph before it becomes
an artifact); :class:`OrtRunner` opens, infers and closes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.fileio import sha256_path
from lightseg.runtimes.base import DEFAULT_THREADS, MAX_BATCH, ArtifactRunner, require

HINT = "pip install onnxruntime"
LEVELS = ("disable", "basic", "extended", "all")


def session(
    model,
    threads: int = DEFAULT_THREADS,
    providers: list[str] | None = None,
    level: str = "all",
    spinning: bool = False,
):
    """An InferenceSession for ``model`` (path or serialized bytes).

    Defaults to the CPU provider, all graph optimisations, one inter-op thread and no spinning of
    idle intra-op threads (ORT spins by default, taking CPU from whatever runs next).
    """
    ort = require("onnxruntime", HINT)
    providers = list(providers or ["CPUExecutionProvider"])
    missing = set(providers) - set(ort.get_available_providers())
    if missing:
        raise BackendUnavailable(
            f"onnxruntime {ort.__version__} lacks {sorted(missing)} "
            f"(has {ort.get_available_providers()})"
        )
    levels = dict(
        zip(
            LEVELS,
            (
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            ),
            strict=True,
        )
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[level]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=providers)


@functools.cache
def u8s8_saturates() -> bool:
    """Whether this host's ORT int8 conv kernel saturates (u8 x s8 pairs summed in int16).

    x86 CPUs without VNNI (AVX2 / AVX-512 without VNNI, e.g. AMD Zen 2/3) run ORT's U8S8
    QLinearConv with VPMADDUBSW, which saturates at 32767 (ORT's quantization docs); VNNI, AMX and
    ARM accumulate in int32. Probed, not guessed: one 3x3 conv of u8 228 x s8 114 pairs (each pair
    51984 > 32767), fused int8 kernel vs the same QDQ graph run in float (measured here on an AMD
    EPYC Zen 3: 236 vs 380).
    """
    from onnx import TensorProto, helper, numpy_helper

    c = 16
    init = {
        "s": np.array(0.01, np.float32), "z": np.array(0, np.uint8),
        "w": np.full((1, c, 3, 3), 114, np.int8), "ws": np.full(1, 0.01, np.float32),
        "wz": np.zeros(1, np.int8), "ys": np.array(4.0, np.float32),
    }  # fmt: skip
    node = helper.make_node
    graph = helper.make_graph(
        [
            node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
            node("Conv", ["xd", "wd"], ["y"]),
            node("QuantizeLinear", ["y", "ys", "z"], ["yq"]),
            node("DequantizeLinear", ["yq", "ys", "z"], ["out"]),
        ],
        "u8s8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 3, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in init.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.full((1, c, 3, 3), 2.28, np.float32)
    fused, exact = (run_model(model.SerializeToString(), x, level=lv) for lv in ("all", "basic"))
    return bool(np.abs(fused - exact).max() > 4.0)


#: Export targets whose int8 runs on CPUs of this host's kind (x86); the others (ARM phones,
#: Jetsons, browsers) accumulate int8 products in int32.
HOST_KIND_TARGETS = "x86-"


def int8_arithmetic(artifact, timing: bool = False) -> str | None:
    """How this host runs ``artifact``'s int8 convs when its fused kernel saturates, else None.

    "exact": an int8 ONNX artifact for ARM/Jetson/browser targets only, judged unfused (QDQ
    emulated in float: the int32 accumulation its target does), because this host's fused
    kernel is not the target's. "saturating": this host's fused kernel, as on every x86 CPU
    without VNNI: for x86 targets (and artifacts without targets) that is the truth of such
    CPUs; timing always measures the fused kernel. An ORT-format file has its fusions baked in:
    "exact" runs the ONNX it was converted from (``options["source_onnx"]``), else "saturating".
    """
    if artifact.precision != "int8" or not u8s8_saturates():
        return None
    targets = artifact.targets
    x86 = not targets or any(t.startswith(HOST_KIND_TARGETS) for t in targets)
    fusable = artifact.format == "onnx" or "source_onnx" in artifact.options
    return "saturating" if timing or x86 or not fusable else "exact"


def run_model(model, x: np.ndarray, threads: int = 1, level: str = "all") -> np.ndarray:
    """Logits of an ONNX model (path or bytes) for ``x``, one image at a time if batch is fixed.

    ``level="basic"`` keeps QDQ unfused: int8 arithmetic emulated in float, exact where the
    fused kernel is (see :func:`u8s8_saturates`)."""
    sess = session(model, threads, level=level)
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0].name
    step = 1 if isinstance(inp.shape[0], int) and inp.shape[0] == 1 else MAX_BATCH
    chunks = range(0, len(x), step)
    return np.concatenate([sess.run([out], {inp.name: x[i : i + step]})[0] for i in chunks])


class OrtRunner(ArtifactRunner):
    """An InferenceSession with ``threads`` intra-op threads. Defaults to the CPU provider.

    ``artifact.options["graph_optimization_level"]`` (disable|basic|extended|all) and
    ``["allow_spinning"]`` override the session defaults of :func:`session`;
    ``["defaults"]`` sets nothing at all: ORT's own choices (all cores, spinning on), what a user
    who does not tune anything gets. On a host whose fused int8 conv saturates, an int8 artifact
    for ARM/Jetson/browser targets runs unfused unless timed (:func:`int8_arithmetic`).
    """

    def __init__(self, manifest, artifact, threads: int = DEFAULT_THREADS, providers=None):
        super().__init__(manifest, artifact, threads)
        self.providers = list(providers or ["CPUExecutionProvider"])

    def open_impl(self) -> None:
        ort = require("onnxruntime", HINT)
        level = str(self.artifact.options.get("graph_optimization_level", "all"))
        spinning = bool(self.artifact.options.get("allow_spinning", False))
        if self.artifact.options.get("defaults"):
            self.session = ort.InferenceSession(str(self.path), providers=self.providers)
            level, self.info["threads"] = "all", "default"
        else:
            path, arithmetic = self.path, int8_arithmetic(self.artifact, self.timing)
            if arithmetic:
                self.info["int8_arithmetic"] = arithmetic
            if arithmetic == "exact":
                path = self.exact_model()
                level = "basic" if level in ("extended", "all") else level
            self.session = session(path, self.threads, self.providers, level, spinning)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.info["versions"]["onnxruntime"] = ort.__version__
        self.info["providers"] = self.session.get_providers()
        self.info["graph_optimization_level"] = level

    def exact_model(self) -> Path:
        """The ONNX graph to run unfused: the artifact itself, or the one an ORT-format file was
        converted from (its sha256 checked: a changed source would judge another model)."""
        src = self.artifact.options.get("source_onnx")
        if self.artifact.format == "onnx" or not src:
            return self.path
        path = self.manifest.path_of(self.artifact, src.get("path"))  # inside the export
        if not path.is_file() or path.is_symlink() or sha256_path(path) != src.get("sha256"):
            raise LightsegError(
                f"{self.artifact.name}: {src['path']}, the ONNX it was converted from and the "
                "graph its int8 masks are judged on here, is missing or changed (sha256)"
            )
        self.info["judged_file"] = src["path"]
        return path

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def close_impl(self) -> None:
        del self.session
