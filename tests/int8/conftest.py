"""A tiny trained checkpoint (lightunet base=4, 32 px) and its x86 int8 export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightseg.checkpoint import save_checkpoint
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import disc_images
from lightseg.models import create_model

SIZE = 32


def train_tiny(steps: int = 40, seed: int = 0) -> torch.nn.Module:
    """A base=4 lightunet trained briefly on discs, so its masks are not trivial."""
    torch.manual_seed(seed)
    pre = Preprocessing(size=SIZE)
    x, y = (torch.from_numpy(a) for a in disc_images(pre, 8, seed))
    model = create_model("lightunet", base=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y, weight=torch.tensor([1.0, 3.0]))
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("int8-ckpt") / "tiny"
    save_checkpoint(train_tiny(), out, "lightunet", Preprocessing(size=SIZE))
    return str(out)


@pytest.fixture(scope="session")
def tiny_export(tiny_ckpt, tmp_path_factory):
    """x86-ort-int8 + x86-int8-mixed + jetson-trt-int8-mixed export of the tiny checkpoint: fp32,
    int8, int8-mixed ONNX and the TensorRT QDQ files (all int8 and mixed)."""
    from lightseg.export.targets import export

    out = tmp_path_factory.mktemp("int8-exp") / "x86"
    return export(tiny_ckpt, "x86-ort-int8,x86-int8-mixed,jetson-trt-int8-mixed", out, calib_n=8)


@pytest.fixture(scope="session")
def tiny_probe_data(tiny_ckpt):
    """(fp32 model, calibration images, verification set, fp32 logits) of the tiny model."""
    from lightseg.checkpoint import load_checkpoint
    from lightseg.data.sets import input_set
    from lightseg.export.verify import torch_reference

    ck = load_checkpoint(tiny_ckpt)
    vset = input_set("verification", ck.preprocessing, 8)
    calib = input_set("calibration", ck.preprocessing, 8).x
    return ck, calib, vset, torch_reference(ck.model, vset.x).astype(np.float32)
