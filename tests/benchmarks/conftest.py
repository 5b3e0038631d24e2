"""A tiny trained checkpoint and an export folder with ONNX artifacts, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from bench_data import PRE, artifact, export_onnx, train_tiny, write_manifest

from lightseg.checkpoint import save_checkpoint
from lightseg.models import create_model


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(model, checkpoint folder)."""
    model = train_tiny()
    ck = save_checkpoint(model, tmp_path_factory.mktemp("ck") / "tiny", "lightunet", PRE)
    return model, ck


@pytest.fixture(scope="session")
def export_dir(trained, tmp_path_factory) -> Path:
    """A folder with onnx-fp32 (exact) and onnx-bad (perturbed weights, consistent hash)."""
    model, ck = trained
    root = tmp_path_factory.mktemp("export")
    export_onnx(model, root / "model.onnx")
    bad = create_model("lightunet", base=4)
    bad.load_state_dict(model.state_dict())
    with torch.no_grad():
        bad.outc.conv.bias[1] += 2.0  # pushes many pixels to "lesion"
    export_onnx(bad.eval(), root / "bad.onnx")
    write_manifest(
        root,
        ck,
        [artifact(root, "onnx-fp32", "model.onnx"), artifact(root, "onnx-bad", "bad.onnx")],
    )
    return root


@pytest.fixture
def good_dir(export_dir, trained, tmp_path) -> Path:
    """A copy holding only onnx-fp32."""
    root = tmp_path / "good"
    root.mkdir()
    shutil.copy2(export_dir / "model.onnx", root / "model.onnx")
    write_manifest(root, trained[1], [artifact(root, "onnx-fp32", "model.onnx")])
    return root
