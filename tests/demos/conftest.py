"""Fixtures for the demo tests: a tiny trained U-Net, its ONNX/ORT export and golden slices."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from lightseg.data.preprocessing import Preprocessing

SIZE = 64
PRE = Preprocessing(window_level=0.0, window_width=600.0, channels=3, size=SIZE, fit="pad")


def synthetic_slice(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A breast-like HU slice (air, fat, glandular tissue, one bright lesion) and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
    body = ((yy - cy) / (0.45 * h)) ** 2 + ((xx - cx) / (0.45 * w)) ** 2 < 1
    hu = np.where(body, -100.0, -1000.0).astype(np.float32)
    gland = body & (((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.25 * w)) ** 2 < 1)
    hu[gland] = 20.0
    r = rng.uniform(0.08, 0.14) * min(h, w)
    ly, lx = cy + rng.uniform(-0.15, 0.15) * h, cx + rng.uniform(-0.15, 0.15) * w
    lesion = (yy - ly) ** 2 + (xx - lx) ** 2 < r**2
    hu[lesion] = 120.0
    hu += rng.normal(0, 15, hu.shape).astype(np.float32) * body
    return hu.astype(np.float32), lesion.astype(np.uint8)


FIXTURE = Path(__file__).parent / "fixtures" / "tiny_lightunet"


@pytest.fixture(scope="session")
def tiny_model():
    """lightunet base=4 trained on synthetic slices (made by make_fixture.py); finds the disc."""
    from lightseg.checkpoint import load_checkpoint

    return load_checkpoint(FIXTURE).model.eval()


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory) -> Path:
    """An export folder: model.onnx (fp32), model.ort, manifest.json with their sha256."""
    import torch

    from lightseg.export.manifest import Artifact, Manifest, TensorSpec, sha256_path, size_path

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
