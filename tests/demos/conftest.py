"""Fixtures for the demo tests: a tiny trained U-Net, its ONNX/ORT export and golden slices."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from demo_data import FIXTURE, PRE, SIZE, synthetic_slice  # noqa: F401 (re-exported)


@pytest.fixture(scope="session")
def tiny_model():
    """lightunet base=4 trained on synthetic slices (made by make_fixture.py); finds the disc."""
    from lightseg.checkpoint import load_checkpoint

    return load_checkpoint(FIXTURE).model.eval()


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory) -> Path:
    """An export folder: model.onnx (fp32), model.ort, manifest.json with their sha256."""
    import torch

    from lightseg.artifact import Artifact, Manifest, TensorSpec
    from lightseg.fileio import sha256_path, size_path

    out = tmp_path_factory.mktemp("export")
    x = torch.from_numpy(PRE(synthetic_slice(SIZE, SIZE, 99)[0])[None])
    with warnings.catch_warnings():  # tracer notes about the padding branches
        warnings.simplefilter("ignore")
        torch.onnx.export(
            tiny_model,
            x,
            str(out / "model.onnx"),
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            dynamo=False,
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxruntime.tools.convert_onnx_models_to_ort",
            str(out / "model.onnx"),
            "--output_dir",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    io = {
        "inputs": [TensorSpec("image", [1, 3, SIZE, SIZE])],
        "outputs": [TensorSpec("logits", [1, 2, SIZE, SIZE])],
    }
    arts = []
    for name, path, backend, fmt in (
        ("onnx-fp32", "model.onnx", "onnxruntime", "onnx"),
        ("ort-fp32", "model.ort", "ort-mobile", "ort"),
    ):
        arts.append(
            Artifact(
                name,
                path,
                backend,
                "fp32",
                fmt,
                sha256_path(out / path),
                size_path(out / path),
                targets=["web-wasm"],
                **io,
            )
        )
    Manifest(
        source={"checkpoint": "tests/demos tiny_model", "architecture": "lightunet"},
        preprocessing=PRE.to_dict(),
        classes=["background", "lesion"],
        targets=["web-wasm"],
        artifacts=arts,
    ).save(out)
    return out
