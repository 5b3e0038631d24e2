"""x86-auto: the fastest candidate that passes parity is kept, a broken one is rejected."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from lightseg.artifact import load_manifest
from lightseg.export.onnx import save
from lightseg.export.quantize import quantize_int8
from lightseg.export.targets import export
from lightseg.pipeline import autopick as auto
from lightseg.pipeline.autotune import Effort, choose

QUICK = Effort(parity_cap=64, max_blocks=2)


def _add_zeros_candidate(folder) -> None:
    """A real, very fast ONNX model that ignores the image (logits all zero), as a candidate.

    Written into the export folder and judged exactly like the export judges every artifact.
    """
    from lightseg.artifact import Artifact, TensorSpec, load_manifest
    from lightseg.data.sets import input_set
    from lightseg.export.verify import torch_reference
    from lightseg.fileio import sha256_path
    from lightseg.judge.verdict import compare, load_tolerances
    from lightseg.runtimes.base import runner_for

    m = load_manifest(folder)
    s, k = m.preprocessing["size"], len(m.classes)
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [k])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["sl"]),
            helper.make_node("Mul", ["sl", "zero"], ["logits"]),
        ],
        "broken",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, s, s])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k, s, s])],
        [starts, ends, axes, zero],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "z.onnx")
    a = Artifact(
        "onnx-broken", "z.onnx", "onnxruntime", "fp32", "onnx", sha256_path(folder / "z.onnx"),
        inputs=[TensorSpec("image", ["batch", 3, s, s])], targets=["x86-auto"],
    )  # fmt: skip
    m.artifacts.append(a)
    from lightseg.checkpoint import load_checkpoint

    ck = load_checkpoint(m.source["checkpoint"])
    vset = input_set("verification", ck.preprocessing)
    with runner_for(m, a) as r:
        y = r.infer(vset.x)
    ref = torch_reference(ck.model, vset.x)
    a.verification = compare(ref, y, vset.masks, load_tolerances(), "fp32").summary()
    m.save(folder)


def test_auto_pick_rejects_broken_and_records_evidence(tiny_checkpoint, tmp_path):
    lines: list[str] = []
    out = tmp_path / "auto"
    export(tiny_checkpoint, "x86-auto", out, progress=lines.append)
    _add_zeros_candidate(out)
    pick = auto.pick(out, runs=4, peers=False, effort=QUICK, say=lines.append)
    m = load_manifest(out)

    rows = {r["name"]: r for r in pick["rows"]}
    broken = rows["onnx-broken"]
    assert broken["parity"] == "fail" and broken["passed"] is False
    assert broken["reason"]  # the first failing gate

    assert pick["chosen"] != "onnx-broken"
    chosen = rows[pick["chosen"]]
    assert chosen["passed"] is True and chosen["parity"] == "pass"
    passing = [r for r in rows.values() if r.get("passed")]
    assert chosen["p50_ms"] == min(r["p50_ms"] for r in passing)
    assert {"onnx-fp32", "onnx-int8", "onnx-int8-convt-fp", "pytorch-reference"} <= set(rows)
    assert pick["parity_inputs"]["name"] == "verification"
    for r in rows.values():  # every judged candidate carries its verdict and CI
        if r["parity"] not in ("reference",):
            assert r["parity"] in ("pass", "fail", "undecided", "error", "skipped")

    # only the chosen artifact stays, in the manifest and on disk; the manifest on disk agrees
    assert [a.name for a in m.artifacts] == [pick["chosen"]]
    assert m.artifacts[0].targets == ["x86-auto"]
    assert not (out / "z.onnx").exists()
    assert not (out / "model-int8-convt-fp.onnx").exists() or pick["chosen"] == "onnx-int8-convt-fp"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["extra"]["auto_pick"]["chosen"] == pick["chosen"]
    assert on_disk["extra"]["auto_tune"]["x86"]["chosen"] == pick["chosen"]
    m.verify(m.artifacts[0])
    assert any("<- chosen" in line and pick["chosen"] in line for line in lines)


def test_tune_reuses_its_cache(tiny_checkpoint, tmp_path):
    from lightseg.pipeline.autotune import tune

    out = tmp_path / "t"
    export(tiny_checkpoint, "x86-ort-int8", out)
    lines: list[str] = []
    first = tune(out, "x86", runs=4, peers=False, effort=QUICK, say=lines.append)
    second = tune(out, "x86", runs=4, peers=False, effort=QUICK, say=lines.append)
    assert any("cached result" in line for line in lines)
    assert second["rows"] == first["rows"] and second["chosen"] == first["chosen"]
    m = load_manifest(out)
    assert not [a for a in m.artifacts if "tune_variant" in a.options and a.name != first["chosen"]]


def test_choose_fastest_passing():
    rows = [
        {"name": "a", "p50_ms": 1.0, "passed": False},
        {"name": "b", "p50_ms": 3.0, "passed": True},
        {"name": "c", "p50_ms": 2.0, "passed": True},
        {"name": "ref", "p50_ms": 9.0, "passed": None},
    ]
    assert choose(rows)["name"] == "c"
    assert choose(rows[:1]) is None


def test_int8_variant_leaves_convtranspose_and_last_conv_in_float(tiny_checkpoint, tmp_path):
    from lightseg.export.targets import export as ex

    m = ex(tiny_checkpoint, "x86-ort-int8", tmp_path / "e")
    src = tmp_path / "e" / "model.onnx"
    dst = tmp_path / "v.onnx"
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    excl = quantize_int8(
        src, dst, x, "minmax", exclude_ops=("ConvTranspose",), exclude_last_conv=True
    )
    g = onnx.load(str(dst)).graph
    convt = [n for n in g.node if n.op_type == "ConvTranspose"]
    assert convt and all(n.name in excl for n in convt)
    assert len(excl) == len(convt) + 1  # plus the last conv
    dq_outputs = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in g.node:
        if n.name in excl:  # float nodes read no dequantized weight
            assert not (set(n.input[1:2]) & dq_outputs), n.name
    assert sum(n.op_type == "QuantizeLinear" for n in g.node) > 0
    assert m.artifact("onnx-int8").precision == "int8"
