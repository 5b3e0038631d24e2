"""Helpers for the parity/runtime tests (a uniquely named module test files can import)."""

from __future__ import annotations

from pathlib import Path

import torch

from lightseg.artifact import Artifact, Manifest, TensorSpec
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import disc_images
from lightseg.fileio import sha256_path, size_path
from lightseg.models import create_model

SIZE = 32
PRE = Preprocessing(size=SIZE)


def train_tiny(steps: int = 60, seed: int = 0):
    """lightunet base=4 trained for a few steps on bright discs: non-trivial masks."""
    torch.manual_seed(seed)
    model = create_model("lightunet", base=4)
    x, m = disc_images(PRE, 32, seed=1)
    xt, mt = torch.from_numpy(x), torch.from_numpy(m)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), mt).backward()
        opt.step()
    return model.eval()


def export_onnx(model, path: Path) -> None:
    torch.onnx.export(
        model,
        torch.zeros(1, 3, SIZE, SIZE),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def artifact(root: Path, name: str, path: str, backend="onnxruntime", precision="fp32"):
    p = root / path
    return Artifact(
        name=name,
        path=path,
        backend=backend,
        precision=precision,
        format=p.suffix.lstrip("."),
        sha256=sha256_path(p),
        size_bytes=size_path(p),
        inputs=[TensorSpec("image", ["batch", 3, SIZE, SIZE])],
        outputs=[TensorSpec("logits", ["batch", 2, SIZE, SIZE])],
    )


def write_manifest(root: Path, ck: Path, artifacts: list[Artifact]) -> Manifest:
    from lightseg.checkpoint import read_meta

    m = Manifest(
        source={"checkpoint": str(ck), "weights_sha256": read_meta(ck)["weights_sha256"]},
        preprocessing=PRE.to_dict(),
        classes=["background", "lesion"],
        artifacts=artifacts,
    )
    m.save(root)
    m.root = root
    return m
