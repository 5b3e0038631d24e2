"""Tiny trained checkpoints (lightunet base=4, 32 px) shared by the export tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightseg.checkpoint import save_checkpoint
from lightseg.data.preprocessing import Preprocessing
from lightseg.models import create_model

SIZE = 32


def discs(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """HU slices with bright discs (lesions) and their masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    hu, masks = [], []
    for _ in range(n):
        img = rng.normal(-100.0, 30.0, (size, size))
        m = np.zeros((size, size), np.int64)
        cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
        r = rng.uniform(0.1 * size, 0.2 * size)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[inside] += 180.0
        m[inside] = 1
        hu.append(img)
        masks.append(m)
    return np.stack(hu), np.stack(masks)


def train_tiny(steps: int = 60, seed: int = 3, **cfg) -> torch.nn.Module:
    """A base=4 lightunet trained briefly so it segments discs (non-trivial masks).

    Trained in float64 and cast to float32, so every host gets the same weights (float32 training
    differs per CPU ISA). steps/seed give a model whose reference on the verification set has no
    pixel within 0.05 of p = 0.5 whose lone flip would move a lesion boundary by more than 1 px
    (test_onnx_export's margin test): the fp16 and fp32 checks then measure the export, not a
    coin flip.
    (Seed 0, 30 steps had two such pixels: onnx-fp16 failed small_boundary_max on some hosts.)
    """
    torch.manual_seed(seed)
    pre = Preprocessing(size=SIZE)
    model = create_model("lightunet", base=4, **cfg).double()
    hu, masks = discs(8, seed)
    x = torch.from_numpy(np.stack([pre(h) for h in hu])).double()
    y = torch.from_numpy(masks)
    weight = torch.tensor([1.0, 3.0], dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y, weight=weight)
        loss.backward()
        opt.step()
    return model.float().eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    model = train_tiny()
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, out, "lightunet", Preprocessing(size=SIZE))
    return str(out)


@pytest.fixture(scope="session")
def make_ctx(tiny_checkpoint):
    """Build an ExportContext for the tiny checkpoint in a given folder, ONNX step done."""
    from lightseg.checkpoint import load_checkpoint
    from lightseg.data.sets import input_set
    from lightseg.export import onnx as lonnx
    from lightseg.export.context import ExportContext
    from lightseg.export.verify import torch_reference

    ck = load_checkpoint(tiny_checkpoint)
    vset = input_set("verification", ck.preprocessing)
    calib = input_set("calibration", ck.preprocessing, 8)
    ref = torch_reference(ck.model, vset.x)

    def make(out):
        ctx = ExportContext(
            model=ck.model,
            pre=ck.preprocessing,
            classes=ck.classes,
            out=out,
            verify_set=vset,
            ref=ref,
            calib=calib.x,
            calib_source=calib.describe(),
            source_sha256=ck.weights_sha256,
            version="test",
        )
        lonnx.build(ctx)
        return ctx

    return make


@pytest.fixture(scope="session")
def ort_export(tiny_checkpoint, tmp_path_factory):
    """One export of every ONNX-based target (ORT, ORT Mobile, web, TensorRT recipe)."""
    from lightseg.export.targets import export

    out = tmp_path_factory.mktemp("exp") / "ort"
    targets = (
        "android-ort-int8,android-ort-fp32,x86-ort-int8,web-wasm,jetson-trt-fp16,jetson-trt-int8"
    )
    return export(tiny_checkpoint, targets, out)
