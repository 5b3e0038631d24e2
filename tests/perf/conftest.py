"""A tiny trained checkpoint (lightunet base=4, 32 px) that segments bright discs."""

from __future__ import annotations

import pytest
import torch

from lightseg.checkpoint import save_checkpoint
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import disc_images
from lightseg.models import create_model

SIZE = 32


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    pre = Preprocessing(size=SIZE)
    model = create_model("lightunet", base=4)
    x, m = disc_images(pre, 32, seed=1)
    xt, mt = torch.from_numpy(x), torch.from_numpy(m)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), mt, weight=torch.tensor([1.0, 3.0])).backward()
        opt.step()
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model.eval(), out, "lightunet", pre)
    return str(out)
