"""The verdict: undecided until the set decides, small lesions judged by their boundary."""

import numpy as np
import pytest
from judge_data import disc, flip_ring, logits
from scipy import ndimage

from lightseg.judge.verdict import compare, load_tolerances

TOL = load_tolerances()


def borderline(n: int = 256):
    """Large lesions (250-800 px); a quarter of the slices lose 20% of their boundary rings,
    the others 4%: a mean mask Dice vs the reference of about 0.9875, just under int8's 0.99."""
    rng = np.random.default_rng(7)
    radii = rng.uniform(9, 16, n)
    masks = np.stack([disc(r, *rng.uniform(26, 38, 2)) for r in radii])
    ref = logits(masks)
    fractions = np.where(rng.random(n) < 0.25, 0.20, 0.04)
    return ref, flip_ring(ref, masks, fractions, seed=1)


def gate(v, metric):
    return next(c for c in v.checks if c.metric == metric)


def test_borderline_artifact_is_undecided_on_16_slices_and_fails_on_128():
    ref, cand = borderline()
    small = compare(ref[:16], cand[:16], None, TOL, "int8")
    dice = gate(small, "large_dice_mean")
    assert small.status == "undecided" and dice.status == "undecided"
    assert dice.value < 0.99 <= dice.ci[1]  # the interval still reaches the limit
    assert [c.metric for c in small.checks if c.status != "pass"] == ["large_dice_mean"]
    assert small.reason().startswith("undecided: extend the set (--n); large_dice_mean")
    assert small.metrics["small_slices"] == 0 and small.metrics["confident_flips"] == 0

    big = compare(ref[:128], cand[:128], None, TOL, "int8")
    dice = gate(big, "large_dice_mean")
    assert big.status == "fail" and dice.status == "fail"
    assert dice.ci[1] < 0.99 and dice.value == pytest.approx(0.9871, abs=5e-4)
    assert [c.metric for c in big.failures()] == ["large_dice_mean"]


def test_identical_output_passes_every_precision_with_zero_width_intervals():
    ref, _ = borderline(8)
    for precision in ("fp32", "fp16", "bf16", "int8"):
        v = compare(ref, ref.copy(), None, TOL, precision)
        assert v.status == "pass", (precision, v.reason())
    assert v.ci["large_dice_mean"] == (1.0, 1.0) and v.ci["flip_rate"] == (0.0, 0.0)


def small_case():
    """Two large lesions and two small ones (28 and 49 px); the reference is unsure
    (|p - 0.5| < 0.1) within 3 px of the small lesions, so moving them makes no confident flip."""
    masks = np.stack([disc(12), disc(14), disc(3), disc(4)])
    ref = logits(masks)
    near = np.stack([ndimage.binary_dilation(m, iterations=3) for m in masks[2:]])
    ref[2:] = np.where(near[:, None], np.clip(ref[2:], -0.15, 0.15), ref[2:])
    return masks, ref


LESION = np.array([-0.15, 0.15], np.float32)[:, None, None]  # unsure logits: p(lesion) 0.57


def moved(ref: np.ndarray, masks: np.ndarray, shift: int) -> np.ndarray:
    """The candidate: the reference with the small lesions moved ``shift`` px to the right."""
    cand = ref.copy()
    for i in (2, 3):
        m = np.roll(masks[i], shift, axis=1) > 0
        near = ndimage.binary_dilation(masks[i] | m, iterations=3)
        cand[i] = np.where(near, np.where(m, LESION, -LESION), ref[i])
    return cand


def test_small_lesion_dice_does_not_gate_but_their_boundary_does():
    masks, ref = small_case()
    one = compare(ref, moved(ref, masks, 1), masks, TOL, "int8")
    assert one.metrics["small_slices"] == 2 and one.metrics["large_slices"] == 2
    assert one.metrics["small_dice_min"] < 0.85  # a 1-px move costs a small lesion > 15% Dice
    assert one.metrics["small_boundary_max"] == 1.0 and one.metrics["small_volume_bias"] == 0
    assert one.metrics["large_dice_min"] == 1.0
    assert not one.failures(), one.reason()  # no gate reads the small slices' Dice

    two = compare(ref, moved(ref, masks, 2), masks, TOL, "int8")
    assert two.status == "fail"
    assert gate(two, "small_boundary_max").status == "fail"
    assert two.metrics["small_boundary_max"] == 2.0 and two.metrics["confident_flips"] == 0


def test_small_lesions_growing_together_fail_on_volume():
    masks, ref = small_case()
    cand = ref.copy()
    for i in (2, 3):
        grown = ndimage.binary_dilation(masks[i])  # one ring: within 1 px, but 40-60% larger
        cand[i] = np.where(grown, LESION, cand[i])
    v = compare(ref, cand, masks, TOL, "int8")
    assert v.metrics["small_boundary_max"] == 1.0
    assert gate(v, "small_volume_bias").status == "fail" and v.metrics["small_volume_bias"] > 0.4


def test_fp32_gates_every_slice_dice_small_ones_included():
    masks, ref = small_case()
    v = compare(ref, moved(ref, masks, 1), masks, TOL, "fp32")
    assert gate(v, "dice_ref_min").status == "fail"


def test_gt_ratio_and_difference_are_paired():
    masks, ref = small_case()
    v = compare(ref, ref.copy(), masks, TOL, "int8")
    assert v.metrics["gt_dice_ratio"] == 1.0 and v.ci["gt_dice_ratio"] == (1.0, 1.0)
    assert v.ci["gt_dice_diff"] == (0.0, 0.0)


def test_mask_shape_mismatch_is_bad_input():
    from lightseg.errors import LightsegError

    masks, ref = small_case()
    with pytest.raises(LightsegError, match="masks shape"):
        compare(ref, ref.copy(), masks[:, :8], TOL, "int8")
