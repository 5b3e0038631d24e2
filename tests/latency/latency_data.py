"""A tiny checkpoint and export folders for the latency tests (a uniquely named module)."""

from __future__ import annotations

from pathlib import Path

import torch

from lightseg.artifact import Artifact, Manifest, TensorSpec
from lightseg.checkpoint import read_meta, save_checkpoint
from lightseg.data.preprocessing import Preprocessing
from lightseg.fileio import sha256_path, size_path
from lightseg.models import create_model

SIZE = 32
PRE = Preprocessing(size=SIZE)


def checkpoint(root: Path, base: int = 4) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = create_model("lightunet", base=base).eval()
    return model, save_checkpoint(model, root / f"ck{base}", "lightunet", PRE)


def onnx_artifact(root: Path, model, name: str, file: str, options: dict | None = None):
    """``model`` exported to ``root/file`` and described as artifact ``name``."""
    torch.onnx.export(
        model,
        torch.zeros(1, 3, SIZE, SIZE),
        str(root / file),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    p = root / file
    return Artifact(
        name=name,
        path=file,
        backend="onnxruntime",
        precision="fp32",
        format="onnx",
        sha256=sha256_path(p),
        size_bytes=size_path(p),
        inputs=[TensorSpec("image", ["batch", 3, SIZE, SIZE])],
        outputs=[TensorSpec("logits", ["batch", 2, SIZE, SIZE])],
        options=options or {},
    )


def manifest(root: Path, ck: Path, artifacts: list[Artifact]) -> Manifest:
    m = Manifest(
        source={"checkpoint": str(ck), "weights_sha256": read_meta(ck)["weights_sha256"]},
        preprocessing=PRE.to_dict(),
        classes=["background", "lesion"],
        artifacts=artifacts,
    )
    m.save(root)
    m.root = root
    return m
