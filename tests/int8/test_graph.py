"""Swish detection and layer units on both graphs (learnable beta and folded SiLU); float
nodes really stay float in the quantized graph."""

from __future__ import annotations

import onnx
import pytest
import torch

from lightseg.export import quantize as Q
from lightseg.models.fold import fold_swish_beta


def _onnx(model: torch.nn.Module, path) -> onnx.GraphProto:
    x = torch.zeros(1, 3, 32, 32)
    torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"],
                      opset_version=17, dynamo=False)  # fmt: skip
    return onnx.load(str(path)).graph


@pytest.fixture(scope="module")
def graphs(tiny_probe_data, tmp_path_factory):
    ck = tiny_probe_data[0]
    tmp = tmp_path_factory.mktemp("graphs")
    folded, report = fold_swish_beta(ck.model)
    assert report["folded"]  # the tiny model's betas fold
    return {"beta": _onnx(ck.model, tmp / "beta.onnx"), "silu": _onnx(folded, tmp / "silu.onnx")}


@pytest.mark.parametrize("kind,per_act", [("beta", 3), ("silu", 2)])
def test_every_swish_is_found_on_both_graphs(graphs, kind, per_act):
    acts = Q.silu_nodes(graphs[kind])
    assert len(acts) == 14  # one after each conv + BN of the light U-Net
    assert all(len(nodes) == per_act for nodes in acts.values())
    ops = {n.name: n.op_type for n in graphs[kind].node}
    assert all(ops[nodes[-1]] == "Mul" and ops[nodes[-2]] == "Sigmoid" for nodes in acts.values())


def test_units_are_the_same_on_both_graphs(graphs):
    units = {k: Q.layer_units(g) for k, g in graphs.items()}
    ops = {k: [next(n.op_type for n in g.node if n.name == u) for u in units[k]]
           for k, g in graphs.items()}  # fmt: skip
    assert ops["beta"] == ops["silu"]
    assert ops["beta"].count("Conv") == 15 and ops["beta"].count("ConvTranspose") == 3
    conv_units = [u for u, nodes in units["silu"].items() if len(nodes) > 1]
    assert len(conv_units) == 14  # the 1x1 output conv has no activation


def test_float_nodes_and_silu_float_stay_float(tiny_probe_data, tmp_path):
    ck, calib, _, _ = tiny_probe_data
    src = tmp_path / "m.onnx"
    graph = _onnx(ck.model, src)
    units = Q.layer_units(graph)
    first = next(iter(units))
    dst = tmp_path / "q.onnx"
    excl = Q.quantize_int8(src, dst, calib, "minmax", float_nodes=tuple(units[first]),
                           silu_float=True)  # fmt: skip
    q = onnx.load(str(dst)).graph
    dq_out = {o for n in q.node if n.op_type == "DequantizeLinear" for o in n.output}
    q_in = {n.input[0] for n in q.node if n.op_type == "QuantizeLinear"}
    by_name = {n.name: n for n in q.node}
    head = by_name[first]
    assert head.input[1] not in dq_out  # the float conv reads fp32 weights
    assert head.output[0] not in q_in  # and its output is not quantized
    for nodes in Q.silu_nodes(graph).values():
        assert set(nodes) <= set(excl)
        sig = next(by_name[n] for n in nodes if by_name[n].op_type == "Sigmoid")
        assert sig.output[0] not in q_in  # Swish internals run in fp32
    quantized = [n for n in q.node if n.op_type == "Conv" and n.input[1] in dq_out]
    assert len(quantized) == 14  # every other conv is int8
