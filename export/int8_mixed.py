"""Mixed-precision int8: keep in float only the layers the masks are sensitive to.

A unit is a conv with the Swish on its output, or any other quantizable node
(:func:`lightseg.export.quantize.layer_units`). Its sensitivity is the mean mask Dice against
the fp32 reference with only that unit quantized ("alone") and with every unit but that one
quantized ("all but": what mixed precision gains by keeping it float). The search starts from
the fully quantized model and keeps units in float (or at 16-bit activations) in order of their
"all but" Dice until the judge's int8 gate holds: as few float units as possible, since each
runs in fp32 on the CPU EP.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightseg.errors import LightsegError
from lightseg.export import quantize as Q
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.judge.verdict import Verdict, compare, load_tolerances

#: The calibration the search starts from: the best of the measured ones (docs/int8.md).
MIXED_CALIBRATION = "percentile"
MAX_FLOAT_FRACTION = 0.5  # beyond this the artifact is no longer an int8 model
KEEP = ("float", "a16")


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
    overrides: dict = field(default_factory=dict)
    float_nodes: tuple[str, ...] = ()
    threads: int = 2
    _n: int = 0

    def __post_init__(self) -> None:
        import onnx

        self.prep = Q.preprocess(self.src, self.work / "prep.onnx")
        self.units = Q.layer_units(onnx.load(str(self.prep)).graph)
        self.cache = self.work / "calib.json"

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
        method = "minmax" if self.method == "mse" else self.method
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
SCORE_KEYS = ("dice_ref_mean", "dice_ref_min", "large_dice_mean", "large_dice_min", "gt_dice_ratio")


def _score(v: Verdict) -> dict:
    out = {k: v.metrics[k] for k in SCORE_KEYS if k in v.metrics}
    ci = getattr(v, "ci", {}).get("large_dice_mean")
    if ci is not None:
        out["large_dice_mean_ci"] = [float(b) for b in ci]
    out["status"] = v.status
    out["reason"] = v.reason() if v.status != "pass" else ""
    return out


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


def order_by_gain(rows: list[dict]) -> list[str]:
    """Units most worth keeping float first: highest "all but" Dice, then lowest "alone"."""

    def key(r: dict):
        alone = r.get("alone", {}).get("dice_ref_mean", 1.0)
        return (-r["all_but"]["dice_ref_mean"], alone)

    return [r["unit"] for r in sorted(rows, key=key)]


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
    first that passes, else the best mean Dice within ``max_units`` (defaults to
    MAX_FLOAT_FRACTION of the units).
    """
    if keep not in KEEP:
        raise LightsegError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    cap = int(len(probe.units) * MAX_FLOAT_FRACTION) if max_units is None else max_units
    steps: list[dict] = []
    for k in range(min(cap, len(order)) + 1):
        units = order[:k]
        v, _ = probe.variant(tolerances, float_units=units, keep=keep)
        steps.append({"float_units": units, **_score(v)})
        if progress:
            progress(f"search: {k} float unit(s), Dice {steps[-1]['dice_ref_mean']:.4f} {v.status}")
        if v.status == "pass":
            return {"steps": steps, "float_units": units, "gate_met": True}
    best = max(steps, key=lambda s: s["dice_ref_mean"])
    return {"steps": steps, "float_units": best["float_units"], "gate_met": False}


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
    method: str = MIXED_CALIBRATION,
    keep: str = "float",
    tolerances: dict | None = None,
    threads: int = 2,
    progress=None,
) -> tuple[Probe, dict]:
    """Sensitivity ("all but") then the greedy search; returns the probe and the decision."""
    tol = load_tolerances() if tolerances is None else tolerances
    probe = Probe(src, calib, x, ref, masks, work, method=method, threads=threads)
    if method == "mse":
        probe.overrides = mse_overrides(probe.prep, calib, probe.cache)
    rows = sensitivity(probe, tol, alone=False, progress=progress)
    decision = search(probe, order_by_gain(rows), tol, keep, progress=progress)
    decision["sensitivity"] = rows
    return probe, decision


def build_int8_mixed(ctx: ExportContext) -> None:
    """model-int8-mixed.onnx: int8 with the fewest float layers for which the int8 gate holds."""
    with timer() as t, tempfile.TemporaryDirectory(prefix=".mixed.", dir=ctx.out) as tmp:
        probe, d = plan(
            ctx.files["onnx-fp32"], ctx.calib, ctx.x, ctx.ref, ctx.verify_set.masks, Path(tmp),
            threads=ctx.threads,
        )  # fmt: skip
        path = ctx.out / "model-int8-mixed.onnx"
        info = probe.quantize(path, float_units=d["float_units"])
    ctx.files["onnx-int8-mixed"] = path
    artifact(
        ctx,
        "onnx-int8-mixed",
        path,
        t(),
        backend="onnxruntime",
        precision="int8",
        format="onnx",
        tools=Q.ort_tools(),
        options={
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8 per-channel",
            "calibration": MIXED_CALIBRATION,
            "calibration_images": len(ctx.calib),
            "float_units": d["float_units"],
            "float_nodes": info["float_nodes"],
            "a16_tensors": info["a16_tensors"],
            "gate_met_in_search": d["gate_met"],
            "search": d["steps"],
            "dynamic_batch": True,
        },
        **ctx.io("batch"),
    )
