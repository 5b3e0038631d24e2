"""One runner, one judge: export verification and ``lightseg parity`` give the same verdict.

A borderline artifact (fp32 ONNX whose lesion logit is shifted so that the largest probability
error sits at the fp32 gate) is judged by export verification and by ``lightseg parity``: same
status, same numbers, because both run it through the same runner on the same named input set
and judge it with the same function and tolerance file.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from lightseg.artifact import Manifest
from lightseg.cli import main
from lightseg.export.context import artifact
from lightseg.export.onnx import save, torch_to_onnx
from lightseg.export.verify import verify_new
from lightseg.judge.verdict import load_tolerances

GATE = load_tolerances()["fp32"]["max"]["prob_abs_max"]


@pytest.mark.parametrize("shift", [3.6 * GATE, 4.4 * GATE])  # dp <= shift/4: just in, just out
def test_export_verification_and_parity_agree_on_a_borderline_artifact(
    make_ctx, tiny_checkpoint, tmp_path, shift
):
    ctx = make_ctx(tmp_path / "e")
    model = copy.deepcopy(ctx.model)
    with torch.no_grad():
        model.outc.conv.bias[1] += shift
    path = ctx.out / "border.onnx"
    save(torch_to_onnx(model, ctx.pre.channels, ctx.pre.size, ctx.opset, True), path)
    art = artifact(
        ctx, "onnx-border", path, 0.0, backend="onnxruntime", precision="fp32", format="onnx",
        **ctx.io("batch"),
    )  # fmt: skip
    verify_new(ctx)
    exported = art.verification
    assert abs(exported["prob_abs_max"] / GATE - 1) < 0.2, exported  # really borderline
    assert (exported["prob_abs_max"] <= GATE) == (shift < 4 * GATE)

    Manifest(
        source={"checkpoint": tiny_checkpoint, "weights_sha256": ctx.source_sha256},
        preprocessing=ctx.pre.to_dict(),
        classes=ctx.classes,
        artifacts=list(ctx.artifacts.values()),
        root=ctx.out,
    ).save(ctx.out)
    report = tmp_path / "parity.json"
    rc = main(["parity", str(ctx.out), "--backends", "onnx-border", "--json", str(report)])
    judged = json.loads(report.read_text())
    row = next(b for b in judged["backends"] if b["name"] == "onnx-border")

    assert row["status"] == exported["status"]
    assert rc == (0 if exported["status"] == "pass" else 1)
    for k in ("prob_abs_max", "prob_abs_p99", "dice_ref_mean", "ref_lesion_pixels"):
        assert row["metrics"][k] == pytest.approx(exported[k], rel=1e-6), k
    assert judged["meta"]["data"].startswith("verification set")
    assert judged["meta"]["n"] == exported["inputs"]["n"]
