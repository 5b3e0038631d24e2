"""Mixed-precision int8: keep float only the layers the masks are sensitive to, within a budget.

A unit is a conv with the Swish on its output, or any other quantizable node
(:func:`lightseg.export.quantize.layer_units`). Its sensitivity is the mean mask Dice against
the fp32 reference with only that unit quantized ("alone") and with every unit but that one
quantized ("all but": what mixed precision gains by keeping it float). The search starts from
the fully quantized model, first keeps the *free* units float (each under FREE_FRACTION of the
model's multiply-accumulates: the 3-channel first conv, the 1x1 logits conv, pools, concats),
then adds units in order of their "all but" Dice while the float units hold at most
MAX_FLOAT_MACS of the MACs, until the judge's int8 gate holds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError
from lightseg.export import quantize as Q
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.export.tensorrt import ACTIVATIONS, PLACEMENT
from lightseg.export.trt_offset import quantize_offset
from lightseg.judge.verdict import Verdict, compare, load_tolerances

#: A unit under this share of the MACs runs float at no measurable cost (docs/int8.md).
FREE_FRACTION = 0.01
#: Float units hold at most this share of the MACs: beyond it the artifact is no longer an int8
#: model. The masks come first; the speed each step costs is recorded (``float_macs``) and the
#: auto-tune times the result against every other candidate. For scale: OpenVINO runs this
#: model's fp32 convs 2.9x slower than its int8 ones (ORT 1.8x), so keeping >= 80% of the int8
#: speed-up allows ~12% float MACs on OpenVINO (1 / (0.88 + 0.12 * 2.9) = 0.81), ~30% on ORT.
MAX_FLOAT_MACS = 0.5
KEEP = ("float", "a16")


def unit_macs(model: Path, units: dict[str, list[str]]) -> dict[str, int]:
    """Multiply-accumulates per unit (its Conv/ConvTranspose nodes) of the batch-1 graph."""
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(model))
    for d in m.graph.input[0].type.tensor_type.shape.dim[:1]:
        d.dim_value = 1  # a dynamic batch gives no spatial sizes to multiply
    g = shape_inference.infer_shapes(m).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*g.value_info, *g.output, *g.input]
    }
    weights = {i.name: list(i.dims) for i in g.initializer}
    nodes = {n.name: n for n in g.node}
    macs = {}
    for unit, names in units.items():
        total = 0
        for n in (nodes[x] for x in names):
            if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in weights:
                # Conv: every weight once per output pixel; ConvTranspose: once per input pixel
                px = shapes[n.output[0] if n.op_type == "Conv" else n.input[0]][-2:]
                total += int(np.prod(weights[n.input[1]])) * int(np.prod(px))
        macs[unit] = total
    return macs


def logits(model: Path, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """ORT logits one image at a time: a 256 px batch of 16 holds gigabytes of activations."""
    from lightseg.runtimes.ort import session

    sess = session(model, threads)
    inp, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    return np.concatenate([sess.run([out], {inp: x[i : i + 1]})[0] for i in range(len(x))])


@dataclass
class Probe:
    """Quantize variants of one fp32 ONNX model and judge them against its fp32 logits.

    ``overrides``: TensorQuantOverrides pinned in every variant (MSE ranges, or the scales of an
    existing artifact); ``calib`` still calibrates whatever they leave open. ``float_nodes``
    stay float in every variant.
    """

    src: Path
    calib: np.ndarray
    x: np.ndarray
    ref: np.ndarray
    masks: np.ndarray | None
    work: Path
    method: str = "minmax"
    silu_float: bool = False
    symmetric: bool = False  # TensorRT's QDQ: zero points 0 (offset grids), on conv inputs
    overrides: dict = field(default_factory=dict)
    float_nodes: tuple[str, ...] = ()
    threads: int = 2
    _n: int = 0

    def __post_init__(self) -> None:
        import onnx

        self.prep = Q.preprocess(self.src, self.work / "prep.onnx")
        graph = onnx.load(str(self.prep)).graph
        self.units = Q.layer_units(graph)
        if self.symmetric:  # QDQ only where a conv reads: no other unit has anything to keep
            ops = {n.name: n.op_type for n in graph.node}
            self.units = {u: n for u, n in self.units.items() if ops[n[0]] in Q.CONV_OPS}
        self.macs = unit_macs(self.prep, self.units)
        self.cache = self.work / "calib.json"

    def mac_share(self, units) -> float:
        """The share of the model's MACs that ``units`` hold."""
        return sum(self.macs[u] for u in units) / max(1, sum(self.macs.values()))

    def quantize(
        self, dst: Path, float_units=(), only_units=(), keep: str = "float"
    ) -> dict[str, list[str]]:
        """Write a variant to ``dst``; returns its float nodes and 16-bit tensors."""
        import onnx

        fl = [n for u in float_units for n in self.units[u]]
        base = list(self.float_nodes)
        only = tuple(n for u in only_units for n in self.units[u])
        a16: list[str] = []
        if keep == "a16":
            a16, fl = Q.unit_tensors(onnx.load(str(self.prep)).graph, fl), []
        method = "minmax" if self.method in ("mse", "trained") else self.method
        if self.symmetric:  # TensorRT: each conv input's uint8 grid, by offsets
            nodes = quantize_offset(
                self.prep, dst, self.calib, method, cache=self.cache, float_nodes=tuple(base + fl),
                only_nodes=only, overrides=self.overrides, preprocessed=True,
            )  # fmt: skip
            return {"float_nodes": nodes, "a16_tensors": []}
        nodes = Q.quantize_int8(
            self.prep, dst, self.calib, method, cache=self.cache, float_nodes=tuple(base + fl),
            only_nodes=only, a16_tensors=tuple(a16), silu_float=self.silu_float,
            overrides=self.overrides, preprocessed=True,
        )  # fmt: skip
        return {"float_nodes": nodes, "a16_tensors": a16}

    def judge(self, model: Path, tolerances: dict) -> Verdict:
        y = logits(model, self.x, self.threads)
        return compare(self.ref, y, self.masks, tolerances, "int8", model.stem, "onnxruntime")

    def variant(self, tolerances: dict, **kw) -> tuple[Verdict, dict]:
        """Quantize a variant in the work folder and judge it."""
        self._n += 1
        path = self.work / f"v{self._n}.onnx"
        info = self.quantize(path, **kw)
        try:
            return self.judge(path, tolerances), info
        finally:
            path.unlink(missing_ok=True)


#: Verdict metrics a search step records (those the judge computes).
SCORE_KEYS = (
    "dice_ref_mean",
    "dice_ref_min",
    "large_dice_mean",
    "large_dice_min",
    "confident_flips",
    "small_boundary_max",
    "gt_dice_ratio",
)


def _score(v: Verdict) -> dict:
    out = {k: v.metrics[k] for k in SCORE_KEYS if k in v.metrics}
    ci = getattr(v, "ci", {}).get("large_dice_mean")
    if ci is not None:
        out["large_dice_mean_ci"] = [float(b) for b in ci]
    out["status"] = v.status
    out["failed_checks"] = len(v.failures())
    out["reason"] = v.reason() if v.status != "pass" else ""
    return out


def closest(steps: list[dict]) -> dict:
    """The step nearest the gate: fewest failed checks, then fewest confident flips, best mean."""
    return min(
        steps,
        key=lambda s: (s["failed_checks"], s.get("confident_flips", 0), -s["dice_ref_mean"]),
    )


def sensitivity(probe: Probe, tolerances: dict, alone: bool = True, progress=None) -> list[dict]:
    """Per unit: Dice vs fp32 with all but it quantized (and, if ``alone``, only it)."""
    rows = []
    for i, unit in enumerate(probe.units, 1):
        if progress:
            progress(f"sensitivity {i}/{len(probe.units)}: {unit}")
        row = {"unit": unit, "nodes": probe.units[unit]}
        row["all_but"] = _score(probe.variant(tolerances, float_units=[unit])[0])
        if alone:
            row["alone"] = _score(probe.variant(tolerances, only_units=[unit])[0])
        rows.append(row)
    return rows


def order_by_gain(rows: list[dict], free: tuple[str, ...] = ()) -> list[str]:
    """Units most worth keeping float first: the ``free`` ones, then highest "all but" Dice,
    then lowest "alone"."""

    def key(r: dict):
        alone = r.get("alone", {}).get("dice_ref_mean", 1.0)
        return (r["unit"] not in free, -r["all_but"]["dice_ref_mean"], alone)

    return [r["unit"] for r in sorted(rows, key=key)]


def within_budget(probe: Probe, order: list[str], budget: float = MAX_FLOAT_MACS) -> list[str]:
    """``order`` without the units that would push the float share of the MACs over ``budget``."""
    kept: list[str] = []
    for u in order:
        if probe.mac_share([*kept, u]) <= budget:
            kept.append(u)
    return kept


def search(
    probe: Probe,
    order: list[str],
    tolerances: dict,
    keep: str = "float",
    max_units: int | None = None,
    progress=None,
) -> dict:
    """Keep units of ``order`` in float one by one until the int8 gate holds.

    Returns ``{"steps": [...], "float_units": [...], "gate_met": bool}``; the chosen step is the
    first that passes, else the one :func:`closest` to the gate within ``max_units`` (default:
    all of ``order``; pass it through :func:`within_budget` first to bound the speed cost).
    """
    if keep not in KEEP:
        raise LightsegError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    cap = len(order) if max_units is None else max_units
    steps: list[dict] = []
    for k in range(min(cap, len(order)) + 1):
        units = order[:k]
        v, _ = probe.variant(tolerances, float_units=units, keep=keep)
        steps.append({"float_units": units, "float_macs": probe.mac_share(units), **_score(v)})
        if progress:
            progress(f"search: {k} float unit(s), Dice {steps[-1]['dice_ref_mean']:.4f} {v.status}")
        if v.status == "pass":
            return {"steps": steps, "float_units": units, "gate_met": True}
    return {"steps": steps, "float_units": closest(steps)["float_units"], "gate_met": False}


def mse_overrides(src: Path, calib: np.ndarray, cache: Path) -> dict:
    """TensorQuantOverrides with the MSE-searched range of every activation tensor."""
    from lightseg.export.calibrate import as_overrides, mse_ranges

    return as_overrides(mse_ranges(src, calib, Q.minmax_ranges(src, calib, cache)))


def plan(
    src: Path,
    calib: np.ndarray,
    x: np.ndarray,
    ref: np.ndarray,
    masks: np.ndarray | None,
    work: Path,
    method: str = "minmax",
    keep: str = "float",
    tolerances: dict | None = None,
    threads: int = 2,
    progress=None,
    overrides: dict | None = None,
    symmetric: bool = False,
) -> tuple[Probe, dict]:
    """Sensitivity ("all but") then the greedy search; returns the probe and the decision.

    ``overrides``: pinned ranges (the "trained" method's); "mse" computes its own.
    ``symmetric``: TensorRT's QDQ (int8, zero points 0, where a conv reads its input).
    """
    tol = load_tolerances() if tolerances is None else tolerances
    probe = Probe(src, calib, x, ref, masks, work, method=method, threads=threads,
                  symmetric=symmetric)  # fmt: skip
    probe.overrides = dict(overrides or {})
    if method == "mse":
        probe.overrides = mse_overrides(probe.prep, calib, probe.cache)
    rows = sensitivity(probe, tol, alone=False, progress=progress)
    total = sum(probe.macs.values())
    free = tuple(u for u, m in probe.macs.items() if m < FREE_FRACTION * total)
    order = within_budget(probe, order_by_gain(rows, free))
    decision = search(probe, order, tol, keep, progress=progress)
    decision.update(sensitivity=rows, free_units=list(free), max_float_macs=MAX_FLOAT_MACS)
    return probe, decision


def holdout(ctx: ExportContext, model: Path) -> dict:
    """The judge's verdict on the held-out ``evaluation`` set (as many slices as the search saw):
    lesion-free and volume-edge slices too, which the lesion-only sets do not have."""
    from lightseg.data.sets import input_set
    from lightseg.export.verify import torch_reference

    held = input_set("evaluation", ctx.pre, len(ctx.x))
    v = compare(
        torch_reference(ctx.model, held.x), logits(model, held.x, ctx.threads), held.masks,
        load_tolerances(), "int8", model.stem, "onnxruntime",
    )  # fmt: skip
    return v.summary(held.describe())


#: The mixed artifacts: (name, file, activations, what runs the float units) by ``symmetric``.
MIXED = {
    False: ("onnx-int8-mixed", "model-int8-mixed.onnx", "uint8", "float32 on the ORT CPU EP"),
    True: ("onnx-int8-trt-mixed", "model-int8-trt-mixed.onnx", ACTIVATIONS,
           "fp16 in a TensorRT engine built with --int8 --fp16 (float32 on the ORT CPU EP here)"),
}  # fmt: skip


def build_int8_mixed(ctx: ExportContext, symmetric: bool = False) -> None:
    """model-int8-mixed.onnx: int8 with the fewest float layers for which the int8 gate holds
    (``symmetric``: model-int8-trt-mixed.onnx, TensorRT's explicit quantization, whose engine
    runs the float layers in fp16).

    The search judges its steps on the ``search`` set (as many slices as the verification set);
    the export's verification, parity and the auto-tune then judge the chosen mix on the
    verification set, which the search never saw: a pass found by search is not a pass
    (measured: a mix searched on the verification set passed there on 64 slices and failed on
    256, docs/int8.md).
    """
    from lightseg.data.sets import input_set
    from lightseg.export.verify import torch_reference

    name, filename, activations, float_runs = MIXED[symmetric]
    src = ctx.files["onnx-fp32"]
    method = ctx.calibration  # the export's --calibration: one choice for every int8 artifact
    seen = input_set("search", ctx.pre, len(ctx.x))
    with timer() as t, tempfile.TemporaryDirectory(prefix=".mixed.", dir=ctx.out) as tmp:
        probe, d = plan(
            src, ctx.calib, seen.x, torch_reference(ctx.model, seen.x), seen.masks, Path(tmp),
            method=method, threads=ctx.threads, overrides=Q.method_overrides(ctx, src),
            symmetric=symmetric,
        )  # fmt: skip
        path = ctx.out / filename
        info = probe.quantize(path, float_units=d["float_units"])
        held = holdout(ctx, path)
    ctx.files[name] = path
    artifact(
        ctx,
        name,
        path,
        t(),
        backend="onnxruntime",
        precision="int8",
        format="onnx",
        tools=Q.ort_tools(),
        options={
            "format": "QDQ",
            "activations": activations,
            **({"placement": PLACEMENT} if symmetric else {}),
            "weights": "int8 per-channel",
            "calibration": method,
            "calibration_images": len(ctx.calib),
            "float_units": d["float_units"],
            "float_units_run": float_runs,
            "float_macs": round(probe.mac_share(d["float_units"]), 4),
            "free_units": d["free_units"],
            "float_nodes": info["float_nodes"],
            "a16_tensors": info["a16_tensors"],
            "gate_met_in_search": d["gate_met"],
            "search_set": seen.describe(),
            "holdout": held,
            "search": d["steps"],
            "dynamic_batch": True,
        },
        **ctx.io("batch"),
    )
