"""Export folders sharing one tiny reference checkpoint: a normal one and a regressed one."""

from __future__ import annotations

import pytest
from latency_data import checkpoint, manifest, onnx_artifact


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, checkpoint folder) of a tiny lightunet."""
    return checkpoint(tmp_path_factory.mktemp("ck"))


@pytest.fixture(scope="session")
def normal_dir(tiny, tmp_path_factory):
    """onnx-fp32: the tiny model itself."""
    model, ck = tiny
    root = tmp_path_factory.mktemp("normal")
    manifest(root, ck, [onnx_artifact(root, model, "onnx-fp32", "model.onnx")])
    return root


@pytest.fixture(scope="session")
def slowed_dir(tiny, tmp_path_factory):
    """onnx-fp32 regressed on purpose: a model 8x wider under the same name, same reference."""
    _, ck = tiny
    wide, _ = checkpoint(tmp_path_factory.mktemp("wide"), base=32)
    root = tmp_path_factory.mktemp("slowed")
    manifest(root, ck, [onnx_artifact(root, wide, "onnx-fp32", "model.onnx")])
    return root
