"""Activation ranges that respect the model: a clip per tensor searched for the least MSE.

MinMax spends the 256 levels on rare outliers; entropy (KL) calibration is known to hurt SiLU
nets (YOLOv7: entropy -5.5 mAP, MSE -0.2). Here each activation tensor's range [rmin, rmax] is
the one that minimises the mean squared quantize-dequantize error over the calibration
activations. The search runs on a histogram of each tensor (clipping error exact per bin,
rounding error step^2/12 for the values kept), and the ranges go to ONNX Runtime's
``quantize_static`` as ``TensorQuantOverrides`` (``rmin``/``rmax``), so ORT still computes the
scales and zero points. Cross-layer equalisation and bias correction are not in ORT's toolkit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

BINS = 2048  # histogram resolution per tensor
CANDIDATES = 256  # clip candidates per side
SAVED = "_ReshapedSavedOutput"  # suffix qdq_loss_debug gives the tensors it exposes


def mse_range(hist: np.ndarray, edges: np.ndarray, levels: int = 256) -> tuple[float, float]:
    """The clip range [lo, hi] (lo <= 0 <= hi) of least expected quantize-dequantize MSE.

    ``hist``/``edges``: a histogram of the tensor's values whose range contains 0 (ORT keeps
    zero exactly representable, so every candidate range does too).
    """
    n = hist.astype(np.float64)
    c = 0.5 * (edges[:-1] + edges[1:])
    if n.sum() == 0 or edges[-1] <= edges[0]:
        return float(edges[0]), float(edges[-1])
    # prefix sums over bins: count, first and second moments of the values below each edge
    p0, p1, p2 = (np.concatenate([[0.0], np.cumsum(n * c**k)]) for k in (0, 1, 2))
    total = p0[-1], p1[-1], p2[-1]
    lo_idx = np.flatnonzero(edges <= 0)
    hi_idx = np.flatnonzero(edges >= 0)
    lo_idx = lo_idx[np.unique(np.linspace(0, len(lo_idx) - 1, CANDIDATES).round().astype(int))]
    hi_idx = hi_idx[np.unique(np.linspace(0, len(hi_idx) - 1, CANDIDATES).round().astype(int))]
    a, b = edges[lo_idx], edges[hi_idx]
    below = p2[lo_idx] - 2 * a * p1[lo_idx] + a**2 * p0[lo_idx]  # values < a clip to a
    s0, s1, s2 = (t - p[hi_idx] for t, p in zip(total, (p0, p1, p2), strict=True))
    above = s2 - 2 * b * s1 + b**2 * s0  # values > b clip to b
    inside = total[0] - p0[lo_idx][:, None] - s0[None, :]
    step = (b[None, :] - a[:, None]) / (levels - 1)
    err = below[:, None] + above[None, :] + inside * step**2 / 12.0
    i, j = np.unravel_index(np.argmin(err), err.shape)
    return float(a[i]), float(b[j])


def _bounds(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def activation_histograms(
    model: Path, x: np.ndarray, ranges: dict[str, tuple[float, float]], bins: int = BINS
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Histograms of the named activation tensors of ``model`` over the images ``x``.

    ``ranges``: the tensors and their (min, max) over the same images (e.g. MinMax
    calibration); the bins span each range widened to contain 0. One image at a time, so memory
    stays at one image's activations.
    """
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    from lightseg.runtimes.ort import session

    bounds = {k: _bounds(*v) for k, v in ranges.items()}
    hists = {k: np.zeros(bins, np.int64) for k in bounds}
    with tempfile.TemporaryDirectory(prefix=".calib.") as tmp:
        aug = Path(tmp) / "aug.onnx"
        modify_model_output_intermediate_tensors(str(model), str(aug))
        sess = session(aug, level="disable")
        names = [o.name for o in sess.get_outputs()]
        inp = sess.get_inputs()[0].name
        for i in range(len(x)):
            for name, v in zip(names, sess.run(None, {inp: x[i : i + 1]}), strict=True):
                key = name.removesuffix(SAVED)
                if not name.endswith(SAVED) or key not in bounds:
                    continue
                lo, hi = bounds[key]
                idx = ((v.astype(np.float32) - lo) * (bins / (hi - lo))).astype(np.int64)
                hists[key] += np.bincount(np.clip(idx, 0, bins - 1), minlength=bins)
    return {k: (h, np.linspace(*bounds[k], bins + 1)) for k, h in hists.items()}


def mse_ranges(
    model: Path, x: np.ndarray, ranges: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """MSE-searched (rmin, rmax) per activation tensor named in ``ranges``."""
    return {k: mse_range(h, e) for k, (h, e) in activation_histograms(model, x, ranges).items()}


def as_overrides(ranges: dict[str, tuple[float, float]]) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` for quantize_static that pin each tensor's calibration range."""
    return {
        k: [{"rmin": np.array(lo, np.float32), "rmax": np.array(hi, np.float32)}]
        for k, (lo, hi) in ranges.items()
    }


#: The graph op that produces each kind of QAT quantization point (the key's last part).
QAT_POINT_OPS = {
    "image": "input",
    "conv0": "Conv",
    "conv1": "Conv",
    "logits": "Conv",
    "sig0": "Sigmoid",
    "sig1": "Sigmoid",
    "mid": "Mul",
    "out": "Mul",
    "up": "ConvTranspose",
    "cat": "Concat",
}


def trained_ranges(prep: Path, model, ranges: dict[str, list[float]]) -> dict[str, tuple]:
    """The activation ranges a QAT checkpoint was trained with, keyed by ``prep``'s tensors.

    ``model``: the checkpoint's (folded) UNet; ``ranges``: its ``provenance.activation_ranges``.
    QAT's quantization points (:class:`lightseg.qat.QuantSim`) and the graph's quantizable
    activations (the input, then each Conv/ConvTranspose/Sigmoid/Mul/Concat output in graph
    order) are matched one to one in order; any count or op mismatch refuses the ranges rather
    than pin one to the wrong tensor.
    The input gets the window's range (``INPUT_RANGE``) whatever the checkpoint recorded: QAT
    runs before that range was fixed observed it (the shipped QAT checkpoint: 0 to 0.803), and
    pinning that would clip every pixel above +182 HU that the fp32 model sees.
    """
    import onnx

    from lightseg.data.preprocessing import INPUT_RANGE
    from lightseg.errors import LightsegError
    from lightseg.qat import QuantSim

    graph = onnx.load(str(prep)).graph
    acts = [(graph.input[0].name, "input")] + [
        (n.output[0], n.op_type) for n in graph.node if n.op_type in set(QAT_POINT_OPS.values())
    ]
    order = QuantSim(model).order()
    missing = sorted(set(order) - set(ranges))
    if missing or len(order) != len(acts):
        raise LightsegError(
            f"the checkpoint's trained ranges do not fit this graph ({len(ranges)} ranges, "
            f"{len(acts)} quantizable tensors{', missing ' + missing[0] if missing else ''})"
        )
    out = {}
    for key, (tensor, op) in zip(order, acts, strict=True):
        if QAT_POINT_OPS[key.rsplit("_", 1)[-1]] != op:
            raise LightsegError(f"trained range {key} would land on a {op} output ({tensor})")
        out[tensor] = INPUT_RANGE if op == "input" else tuple(float(v) for v in ranges[key])
    return out
