"""Export converts the beta-folded model; verification against the unfolded model proves it.

The fold's 1e-5 bound is measured where the fold acts: the exported folded graph against the
unfolded model exported the same way, both run by ONNX Runtime. ORT against PyTorch is judged by
the fp32 gate: its own kernel differences (8e-6 in probability on this tiny model with no fold at
all, onnxruntime 1.32) are not the fold's.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from lightseg.checkpoint import load_checkpoint
from lightseg.data.sets import input_set
from lightseg.export import onnx as lonnx
from lightseg.export.context import ExportContext
from lightseg.export.verify import torch_reference, verify_new
from lightseg.models import Swish
from lightseg.runtimes.ort import run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def context(model, pre, classes, out) -> ExportContext:
    vset = input_set("verification", pre)
    calib = input_set("calibration", pre, 4)
    return ExportContext(
        model=model, pre=pre, classes=classes, out=out, verify_set=vset,
        ref=torch_reference(model, vset.x), calib=calib.x, calib_source=calib.describe(),
    )  # fmt: skip


def swish_muls(path) -> int:
    """Mul nodes feeding a Sigmoid: the beta scale of an unfolded Swish."""
    graph = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return sum(producer.get(n.input[0]) == "Mul" for n in graph.node if n.op_type == "Sigmoid")


def exported(ctx: ExportContext) -> dict:
    lonnx.build(ctx)
    verify_new(ctx)
    return ctx.artifacts["onnx-fp32"].verification


def fold_error(ctx: ExportContext) -> float:
    """Max |probability| difference: exported model.onnx vs the unfolded model's ONNX, in ORT."""
    c, s = ctx.pre.channels, ctx.pre.size
    unfolded = lonnx.torch_to_onnx(ctx.model, c, s, ctx.opset, dynamic_batch=True)
    a, b = (
        torch.softmax(torch.from_numpy(run_model(m, ctx.x)), 1)
        for m in (unfolded.SerializeToString(), ctx.files["onnx-fp32"].read_bytes())
    )
    return float((a - b).abs().max())


def test_folded_graph_is_plain_silu_and_passes_fp32(tiny_checkpoint, tmp_path):
    ck = load_checkpoint(tiny_checkpoint)
    ctx = context(ck.model, ck.preprocessing, ck.classes, tmp_path)
    assert len(ctx.fold["folded"]) == 14 and not ctx.fold["kept"]
    assert not any(isinstance(m, Swish) for m in ctx.export_model.modules())
    v = exported(ctx)
    assert v["status"] == "pass", v
    assert fold_error(ctx) <= 1e-5
    for name in ("onnx-fp32", "onnx-fp32-fixed"):
        assert ctx.artifacts[name].options["swish_beta"] == "folded"
        assert swish_muls(ctx.files[name]) == 0
    ops = [n.op_type for n in onnx.load(str(ctx.files["onnx-fp32"])).graph.node]
    assert ops.count("Mul") == ops.count("Sigmoid") == 14


def test_negative_beta_stays_unfolded_and_passes(tiny_checkpoint, tmp_path):
    ck = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        ck.model.inc.beta[0] = -0.5
    ctx = context(ck.model, ck.preprocessing, ck.classes, tmp_path)
    assert list(ctx.fold["kept"]) == ["inc.double_conv.2"]
    v = exported(ctx)
    assert v["status"] == "pass", v
    assert fold_error(ctx) <= 1e-5
    opt = ctx.artifacts["onnx-fp32"].options["swish_beta"]
    assert opt == {"kept": ["inc.double_conv.2"], "folded": 13}
    assert swish_muls(ctx.files["onnx-fp32"]) == 1


def test_model_without_swish_records_nothing(tmp_path):
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.models import create_model

    model = create_model("lightunet", base=4, activation="silu").eval()
    ctx = context(model, Preprocessing(size=32), ["background", "lesion"], tmp_path)
    assert ctx.fold == {}
    lonnx.build(ctx)
    assert "swish_beta" not in ctx.artifacts["onnx-fp32"].options
