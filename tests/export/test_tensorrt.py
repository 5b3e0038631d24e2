"""TensorRT readiness check and build recipe (TensorRT itself is not installed here)."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from lightseg.export import tensorrt


def _model(op: str, domain: str = "") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [helper.make_node("Relu", ["image"], ["r"], name="relu")]
    nodes.append(helper.make_node(op, ["r"], ["logits"], name="odd", domain=domain))
    graph = helper.make_graph(nodes, "g", [x], [y])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_table_names_its_source():
    t = tensorrt.load_table()
    assert "onnx-tensorrt" in t["source"] and t["max_opset"] == 17
    assert t["ops"]["Conv"]["supported"] and not t["ops"]["ConvInteger"]["supported"]


def test_readiness_flags_unsupported_op(tmp_path):
    p = tmp_path / "bad.onnx"
    onnx.save(_model("Hardmax"), p)
    r = tensorrt.readiness(p)
    assert r["status"] == "failed"
    assert any("Hardmax" in i and "not supported" in i for i in r["issues"])


def test_readiness_flags_foreign_domain(tmp_path):
    p = tmp_path / "ms.onnx"
    onnx.save(_model("QuickGelu", "com.microsoft"), p)
    r = tensorrt.readiness(p)
    assert any("com.microsoft" in i for i in r["issues"])


def test_lightseg_model_ready_and_u8_qdq_flagged(ort_export):
    root = ort_export.root
    assert tensorrt.readiness(root / "model.onnx")["status"] == "passed"
    assert tensorrt.readiness(root / "model-int8-trt.onnx")["status"] == "passed"
    u8 = tensorrt.readiness(root / "model-int8.onnx")
    assert u8["status"] == "failed"
    assert any("zero point" in i for i in u8["issues"])


def test_tensorrt_qdq_sits_only_where_a_conv_reads_its_input(ort_export):
    """TensorRT's placement: every dequantized tensor feeds a Conv/ConvTranspose, and no conv
    output is quantized (conv + Swish run fused in float)."""
    g = onnx.load(ort_export.root / "model-int8-trt.onnx").graph
    users: dict[str, set[str]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, set()).add(n.op_type)
    makers = {o: n.op_type for n in g.node for o in n.output}
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    assert dq and all(users[n.output[0]] <= {"Conv", "ConvTranspose"} for n in dq)
    q_inputs = {makers.get(n.input[0]) for n in g.node if n.op_type == "QuantizeLinear"}
    assert not q_inputs & {"Conv", "ConvTranspose", "Sigmoid"}, q_inputs


def test_build_script_and_honest_status(ort_export):
    a = ort_export.artifact("tensorrt-int8")
    if tensorrt.available():
        assert a.format == "engine"
        return
    assert a.format == "script" and "not installed" in a.options["what_happened"]
    assert a.verification["status"] == "skipped"
    script = (ort_export.root / a.path).read_text()
    assert "--int8" in script and "model-int8-trt.onnx" in script
    assert "--minShapes=image:1x3x32x32" in script and "jetson_clocks" in script
    assert "--fp16" in script and "timingCacheFile" in script
    v = ort_export.artifact("onnx-int8-trt").verification  # judged on ORT CPU, strict int8 gate
    assert v["status"] in ("pass", "fail", "undecided") and v["gate"].endswith("[int8]")
    assert v["status"] == "pass" or v["reason"]


def test_build_script_builds_the_engines_whose_onnx_was_exported(ort_export, tmp_path):
    """The recipe runs trtexec once per exported ONNX (a jetson-trt-fp16-only folder has no
    int8 file); ``TRTEXEC`` here is a recorder standing in for the Jetson's trtexec."""
    import os
    import shutil
    import subprocess

    if tensorrt.available():
        pytest.skip("TensorRT is installed: engines are built, no script is written")
    (tmp_path / "tensorrt").mkdir()
    script = shutil.copy(ort_export.root / "tensorrt" / "build_engines.sh", tmp_path / "tensorrt")
    calls = tmp_path / "calls"
    fake = tmp_path / "trtexec"
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\n')
    fake.chmod(0o755)

    def engines(*onnx_files: str) -> list[str]:
        for f in onnx_files:
            (tmp_path / f).touch()
        calls.unlink(missing_ok=True)
        env = {**os.environ, "TRTEXEC": str(fake)}
        subprocess.run(["bash", script], check=True, env=env, capture_output=True)
        return [a.split("=", 1)[1] for a in calls.read_text().split() if a.startswith("--save")]

    assert engines("model.onnx") == ["model-fp16.engine"]
    assert engines("model-int8-trt-mixed.onnx") == ["model-fp16.engine", "model-int8-mixed.engine"]
    assert engines("model-int8-trt.onnx") == [
        "model-fp16.engine", "model-int8.engine", "model-int8-mixed.engine"
    ]  # fmt: skip
