"""TensorRT readiness check and build recipe (TensorRT itself is not installed here)."""

from __future__ import annotations

import onnx
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
