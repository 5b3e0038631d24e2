"""Verification at export: PyTorch reference outputs, probability and mask metrics, budgets.

Every artifact is compared to ONE fp32 PyTorch reference on phantom slices with lesions.
Probabilities (softmax over classes), not logits, are compared; masks are the argmax.
"""

from __future__ import annotations

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.metrics import dice

#: Budgets per precision: max / p99 absolute probability error and the minimum mean lesion Dice
#: of the artifact's masks against the fp32 PyTorch masks. int8 is judged on masks and p99 (its
#: max error sits on a few boundary pixels), so it has no max budget; the max is still reported.
BUDGETS: dict[str, dict[str, float]] = {
    "fp32": {"max_prob_err": 1e-4, "p99_prob_err": 1e-5, "min_dice": 0.999},
    "fp16": {"max_prob_err": 2e-2, "p99_prob_err": 5e-3, "min_dice": 0.98},
    "int8": {"p99_prob_err": 0.15, "min_dice": 0.90},
}


def verification_inputs(pre: Preprocessing, n: int = 4, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` preprocessed phantom slices with lesions (float32 N x C x S x S) and their source."""
    from lightseg.data import lesion_inputs

    x, _ = lesion_inputs(pre, n, seed)
    return np.ascontiguousarray(x, dtype=np.float32), f"lightseg.data.lesion_inputs(n={n})"


def torch_reference(model, x: np.ndarray) -> np.ndarray:
    """fp32 logits of the PyTorch model (eval mode, no grad)."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy().astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def compare(ref_logits: np.ndarray, logits: np.ndarray, precision: str) -> dict:
    """Metrics of ``logits`` against the reference and whether they fit ``precision``'s budget."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape != ref_logits.shape:
        return {"status": "failed", "reason": f"shape {logits.shape} != {ref_logits.shape}"}
    if not np.isfinite(logits).all():
        return {"status": "failed", "reason": "NaN or Inf in outputs"}
    err = np.abs(softmax(logits) - softmax(ref_logits))
    rm, am = ref_logits.argmax(1) > 0, logits.argmax(1) > 0
    dices = [dice(rm[i], am[i]) for i in range(len(rm))]
    budget = BUDGETS[precision]
    m = {
        "max_prob_err": float(err.max()),
        "p99_prob_err": float(np.quantile(err, 0.99)),
        "max_logit_err": float(np.abs(logits - ref_logits).max()),
        "dice_vs_fp32": float(np.mean(dices)),
        "min_dice_vs_fp32": float(np.min(dices)),
        "pixel_disagreement": float(np.mean(rm != am)),
        "lesion_pixels_ref": int(rm.sum()),
    }
    if not rm.any():
        m["note"] = (
            "the fp32 reference predicts no lesion on these slices: mask Dice is trivially 1; "
            "judge by the probability errors (is the checkpoint trained?)"
        )
    ok = (
        m["max_prob_err"] <= budget.get("max_prob_err", 1.0)
        and m["p99_prob_err"] <= budget["p99_prob_err"]
        and m["dice_vs_fp32"] >= budget["min_dice"]
    )
    return {
        "status": "passed" if ok else "failed",
        "budget": {"precision": precision, **budget},
        **m,
    }


def describe(v: dict) -> str:
    """One short line for a summary table."""
    if v.get("status") not in ("passed", "failed") or "max_prob_err" not in v:
        return f"{v.get('status', '?')}: {v.get('reason', '')}".rstrip(": ")
    empty = " (empty ref masks)" if v.get("lesion_pixels_ref") == 0 else ""
    return f"{v['status']}: dice {v['dice_vs_fp32']:.4f}{empty}, max dp {v['max_prob_err']:.1e}"
