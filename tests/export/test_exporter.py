"""The dynamo exporter is the default; TorchScript is the fallback, with its reason recorded."""

from __future__ import annotations

import onnx

from lightseg.export import onnx as lonnx


def test_dynamo_is_the_default_and_verified(ort_export):
    a = ort_export.artifact("onnx-fp32")
    assert a.options["exporter"] == "dynamo"
    assert "exporter_fallback_reason" not in a.options
    assert a.verification["status"] == "pass"
    model = onnx.load(ort_export.root / a.path)
    assert model.opset_import[0].version == 17  # down-converted from dynamo's 18
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_torchscript_fallback_records_why(make_ctx, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::made_up")

    monkeypatch.setattr(lonnx, "dynamo_to_onnx", broken)
    ctx = make_ctx(tmp_path)  # runs the onnx step with the dynamo exporter failing
    a = ctx.artifacts["onnx-fp32"]
    assert a.options["exporter"] == "torchscript"
    assert "aten::made_up" in a.options["exporter_fallback_reason"]
    assert (tmp_path / "model.onnx").stat().st_size > 0


def test_a_relative_checkpoint_is_recorded_absolute(tiny_checkpoint, tmp_path, monkeypatch):
    """parity, bench and tune run from any folder: the manifest must not depend on the cwd."""
    from pathlib import Path

    from lightseg.benchmarks.harness import reference_checkpoint
    from lightseg.checkpoint import load_checkpoint
    from lightseg.export.targets import export

    ck = Path(tiny_checkpoint)
    monkeypatch.chdir(ck.parent)
    m = export(ck.name, "android-ort-fp32", tmp_path / "out", n_verify=4)
    assert m.source["checkpoint"] == str(ck.resolve())
    monkeypatch.chdir(tmp_path)
    assert load_checkpoint(reference_checkpoint(m)).weights_sha256 == m.source["weights_sha256"]
