"""The layered parity verdict of one backend against the fp32 reference.

``compare(reference_logits, candidate_logits, gt_masks, tolerances)`` checks structure, then
probabilities, then masks (small-lesion slices by boundary distance, the others by Dice), where
flips happen, and Dice against ground truth relative to the reference (MLPerf style). A gate on a
mean over slices is judged on its confidence interval, so a set too small to tell gives
"undecided", never a pass. Gates come from tolerances.toml beside this module, per precision:
the one tolerance file of the project, used by export verification and ``lightseg parity``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

from lightseg.errors import LightsegError
from lightseg.judge import metrics as M
from lightseg.judge.aggregate import aggregates

DEFAULT_TOLERANCES = Path(__file__).with_name("tolerances.toml")


UNDECIDED = "undecided: extend the set (--n)"
CI_METHOD = "Student t over slices (ratio: delta method); no interval below 2 slices"


@dataclass
class Check:
    """One gate. ``status`` pass | fail | undecided; a gate on a mean reads its interval ``ci``
    (``ci_limit``: the bound the interval must clear, defaults to ``limit``)."""

    metric: str
    value: float
    limit: float
    op: str  # "<=" or ">="
    ok: bool
    status: str = ""
    ci: tuple[float, float] | None = None
    ci_limit: float | None = None

    def describe(self) -> str:
        text = f"{self.metric} = {self.value:.6g}"
        if self.ci is not None:
            text += f" (95% CI {self.ci[0]:.4g} to {self.ci[1]:.4g})"
        text += f", limit {self.op} {self.limit:g}"
        if self.ci is not None and self.ci_limit != self.limit:
            side = "low" if self.op == ">=" else "high"
            text += f", CI {side} {self.op} {self.ci_limit:g}"
        return text


def decide(op: str, value: float, ci: tuple[float, float], limit: float, ci_limit: float) -> str:
    """Pass when the point clears ``limit`` and the interval's near bound clears ``ci_limit``;
    fail when the whole interval lies on the wrong side of ``limit``; else undecided."""
    lo, hi = ci
    if math.isnan(lo) or math.isnan(hi):
        return "undecided"
    if op == ">=":
        if value >= limit and lo >= ci_limit:
            return "pass"
        return "fail" if hi < limit else "undecided"
    if value <= limit and hi <= ci_limit:
        return "pass"
    return "fail" if lo > limit else "undecided"


@dataclass
class Verdict:
    """Outcome for one backend: status pass | fail | undecided | error | skipped."""

    name: str
    backend: str
    precision: str
    status: str
    message: str = ""
    metrics: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)
    per_image: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def undecided(self) -> list[Check]:
        return [c for c in self.checks if c.status == "undecided"]

    def reason(self) -> str:
        """One line: the first failing gate, the error, or why the set is too small to decide."""
        if self.status == "undecided":
            first = self.undecided()
            return f"{UNDECIDED}; {first[0].describe()}" if first else UNDECIDED
        if self.status in ("error", "skipped") or not self.failures():
            return self.message
        more = len(self.failures()) - 1
        return self.failures()[0].describe() + (f" (+{more} more)" if more else "")

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, inputs: dict | None = None) -> dict:
        """What a manifest records: status, the first failing gate, headline metrics with their
        intervals, inputs."""
        out = {"status": self.status, "reason": self.reason() if self.status != "pass" else ""}
        out.update({k: self.metrics[k] for k in SUMMARY_KEYS if k in self.metrics})
        out["ci"] = {k: list(v) for k, v in self.ci.items()}
        out["ci_method"] = CI_METHOD
        out["failed_checks"] = [asdict(c) for c in self.failures()]
        out["undecided_checks"] = [asdict(c) for c in self.undecided()]
        out["gate"] = f"lightseg.judge tolerances [{self.precision}]"
        if inputs:
            out["inputs"] = inputs
        return out


SUMMARY_KEYS = (
    "prob_abs_max", "prob_abs_p99", "slices", "dice_ref_mean", "dice_ref_min", "large_slices",
    "large_dice_mean", "large_dice_min", "small_slices", "small_boundary_max",
    "small_volume_bias", "flip_rate", "confident_flips", "hd95_max", "gt_dice_ratio",
    "gt_dice_diff", "ref_lesion_pixels",
)  # fmt: skip


def load_tolerances(path: str | Path | None = None) -> dict:
    """Parse a tolerances TOML (defaults to the shipped lightseg/judge/tolerances.toml)."""
    p = Path(path) if path else DEFAULT_TOLERANCES
    if not p.is_file():
        raise LightsegError(f"tolerances file {p} does not exist")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LightsegError(f"{p}: invalid TOML ({e})") from None
    for key in ("uncertainty_band", "boundary_px", "small_lesion_px", "ci_level"):
        if not isinstance(doc.get(key), int | float) or isinstance(doc.get(key), bool):
            raise LightsegError(f"{p}: {key} must be a number")
    if not 0 < doc["ci_level"] < 1:
        raise LightsegError(f"{p}: ci_level must lie between 0 and 1, got {doc['ci_level']}")
    return doc


def gates_for(tolerances: dict, precision: str) -> dict:
    if precision not in tolerances:
        known = [k for k, v in tolerances.items() if isinstance(v, dict)]
        raise LightsegError(f"tolerances have no [{precision}] section (have {known})")
    return tolerances[precision]


def checks(metrics: dict, ci: dict, gates: dict) -> list[Check]:
    """Every gate whose metric was measured; a metric with an interval is judged on it."""
    out = []
    for op, section in (("<=", "max"), (">=", "min")):
        for metric, limit in gates.get(section, {}).items():
            if metric not in metrics:
                continue
            value, limit = float(metrics[metric]), float(limit)
            if metric in ci:
                ci_limit = float(gates.get(f"ci_{section}", {}).get(metric, limit))
                interval = tuple(float(b) for b in ci[metric])
                status = decide(op, value, interval, limit, ci_limit)
                out.append(Check(metric, value, limit, op, status == "pass", status, interval,
                                 ci_limit))  # fmt: skip
                continue
            ok = value <= limit if op == "<=" else value >= limit
            out.append(Check(metric, value, limit, op, ok, "pass" if ok else "fail"))
    return out


def _per_image(lab_ref, lab_cand, p_ref, gt, tolerances: dict) -> list[dict]:
    band, k = float(tolerances["uncertainty_band"]), float(tolerances["boundary_px"])
    rows = []
    for i in range(len(lab_ref)):
        r = M.mask_metrics(lab_ref[i], lab_cand[i], p_ref[i], band, k)
        r["small"] = r["ref_pixels"] < tolerances["small_lesion_px"]
        if gt is not None:
            r["gt_dice_ref"], r["gt_dice"] = M.dice(lab_ref[i], gt[i]), M.dice(lab_cand[i], gt[i])
        rows.append(r)
    return rows


def compare(
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    gt_masks: np.ndarray | None,
    tolerances: dict,
    precision: str = "fp32",
    name: str = "candidate",
    backend: str = "?",
) -> Verdict:
    """Judge ``candidate_logits`` (N x K x H x W) against the fp32 ``reference_logits``."""
    v = Verdict(name, backend, precision, "pass")
    errors = M.structure_errors(reference_logits, np.asarray(candidate_logits))
    if errors:
        v.status, v.message = "fail", "structure: " + "; ".join(errors)
        v.checks.append(Check("structure", len(errors), 0, "<=", False, "fail"))
        return v
    gates = gates_for(tolerances, precision)
    p_ref, p_cand = M.softmax(reference_logits), M.softmax(candidate_logits)
    lab_ref, lab_cand = p_ref.argmax(1), p_cand.argmax(1)
    if gt_masks is not None and np.shape(gt_masks) != lab_ref.shape:
        raise LightsegError(f"masks shape {np.shape(gt_masks)}, expected {lab_ref.shape}")
    v.per_image = _per_image(lab_ref, lab_cand, p_ref, gt_masks, tolerances)
    m, v.ci = aggregates(v.per_image, lab_ref[0].size, float(tolerances["ci_level"]))
    v.metrics = dict(M.prob_errors(p_ref, p_cand)) | m
    v.checks = checks(v.metrics, v.ci, gates)
    if v.failures():
        v.status = "fail"
    elif v.undecided():
        v.status = "undecided"
    return v


def not_passed(
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    gt_masks: np.ndarray | None,
    precision: str = "int8",
) -> dict:
    """A training loop's validation verdict under the shipped gates: the checks the candidate
    does not pass (failed or undecided) and its confident flips."""
    v = compare(reference_logits, candidate_logits, gt_masks, load_tolerances(), precision)
    return {"confident_flips": int(v.metrics.get("confident_flips", 0)),
            "gate_failures": [c.metric for c in v.checks if c.status != "pass"]}  # fmt: skip
