"""The layered parity verdict of one backend against the fp32 reference.

``compare(reference_logits, candidate_logits, gt_masks, tolerances)`` checks structure, then
probabilities, then masks, where flips happen, and Dice against ground truth relative to the
reference (MLPerf style). Gates come from tolerances.toml beside this module, per precision: the
one tolerance file of the project, used by export verification and ``lightseg parity`` alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

from lightseg.errors import LightsegError
from lightseg.judge import metrics as M

DEFAULT_TOLERANCES = Path(__file__).with_name("tolerances.toml")


@dataclass
class Check:
    metric: str
    value: float
    limit: float
    op: str  # "<=" or ">="
    ok: bool


@dataclass
class Verdict:
    """Outcome for one backend: status pass | fail | error | skipped."""

    name: str
    backend: str
    precision: str
    status: str
    message: str = ""
    metrics: dict = field(default_factory=dict)
    per_image: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def reason(self) -> str:
        """One line: the first failing gate or the error."""
        if self.status in ("error", "skipped") or not self.failures():
            return self.message
        c = self.failures()[0]
        more = len(self.failures()) - 1
        extra = f" (+{more} more)" if more else ""
        return f"{c.metric} = {c.value:.6g}, limit {c.op} {c.limit:g}{extra}"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, inputs: dict | None = None) -> dict:
        """What a manifest records: status, the first failing gate, headline metrics, inputs."""
        keys = ("prob_abs_max", "prob_abs_p99", "dice_ref_mean", "dice_ref_min",
                "confident_flips", "hd95_max", "gt_dice_ratio", "ref_lesion_pixels")  # fmt: skip
        out = {"status": self.status, "reason": self.reason() if self.status != "pass" else ""}
        out.update({k: self.metrics[k] for k in keys if k in self.metrics})
        out["failed_checks"] = [asdict(c) for c in self.failures()]
        out["gate"] = f"lightseg.judge tolerances [{self.precision}]"
        if inputs:
            out["inputs"] = inputs
        return out


def load_tolerances(path: str | Path | None = None) -> dict:
    """Parse a tolerances TOML (defaults to the shipped benchmarks/tolerances.toml)."""
    p = Path(path) if path else DEFAULT_TOLERANCES
    if not p.is_file():
        raise LightsegError(f"tolerances file {p} does not exist")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LightsegError(f"{p}: invalid TOML ({e})") from None
    for key in ("uncertainty_band", "boundary_px"):
        if not isinstance(doc.get(key), int | float):
            raise LightsegError(f"{p}: {key} must be a number")
    return doc


def gates_for(tolerances: dict, precision: str) -> dict:
    if precision not in tolerances:
        known = [k for k, v in tolerances.items() if isinstance(v, dict)]
        raise LightsegError(f"tolerances have no [{precision}] section (have {known})")
    return tolerances[precision]


def _gt_dice(labels: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([M.dice(a, b) for a, b in zip(labels, gt, strict=True)]))


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
        v.checks.append(Check("structure", len(errors), 0, "<=", False))
        return v
    gates = gates_for(tolerances, precision)
    band, k = float(tolerances["uncertainty_band"]), float(tolerances["boundary_px"])
    p_ref, p_cand = M.softmax(reference_logits), M.softmax(candidate_logits)
    lab_ref, lab_cand = p_ref.argmax(1), p_cand.argmax(1)
    v.per_image = [
        M.mask_metrics(lab_ref[i], lab_cand[i], p_ref[i], band, k) for i in range(len(lab_ref))
    ]
    pixels = lab_ref.size
    m = dict(M.prob_errors(p_ref, p_cand))
    m.update(
        ref_lesion_pixels=int((lab_ref > 0).sum()),
        dice_ref_min=min(r["dice"] for r in v.per_image),
        dice_ref_mean=float(np.mean([r["dice"] for r in v.per_image])),
        iou_ref_min=min(r["iou"] for r in v.per_image),
        flip_rate=sum(r["flips"] for r in v.per_image) / pixels,
        confident_flip_rate=sum(r["confident_flips"] for r in v.per_image) / pixels,
        confident_flips=sum(r["confident_flips"] for r in v.per_image),
        hd95_max=max(r["hd95"] for r in v.per_image),
        component_diff_max=max(r["component_diff"] for r in v.per_image),
        volume_diff_max=max(r["volume_diff"] for r in v.per_image),
    )
    if gt_masks is not None:
        ref_d, cand_d = _gt_dice(lab_ref, gt_masks), _gt_dice(lab_cand, gt_masks)
        m.update(
            gt_dice_ref=ref_d,
            gt_dice=cand_d,
            gt_dice_ratio=1.0 if ref_d == 0 else cand_d / ref_d,
        )
    v.metrics = m
    for op, section in (("<=", "max"), (">=", "min")):
        for metric, limit in gates.get(section, {}).items():
            if metric not in m:
                continue
            value = m[metric]
            ok = value <= limit if op == "<=" else value >= limit
            v.checks.append(Check(metric, float(value), float(limit), op, bool(ok)))
    if v.failures():
        v.status = "fail"
    return v
