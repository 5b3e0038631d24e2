"""Regenerate fixtures/tiny_lightunet: `.venv/bin/python tests/demos/make_fixture.py` (~30 s)."""

from __future__ import annotations

import numpy as np
import torch
from demo_data import FIXTURE, PRE, SIZE, synthetic_slice

from lightseg.checkpoint import save_checkpoint
from lightseg.models import create_model


def train_tiny(steps: int = 60, n: int = 16) -> torch.nn.Module:
    """lightunet base=4, Adam, weighted cross-entropy on ``n`` synthetic slices."""
    torch.manual_seed(0)
    model = create_model("lightunet", base=4)
    data = [synthetic_slice(SIZE, SIZE, s) for s in range(n)]
    x = torch.from_numpy(np.stack([PRE(hu) for hu, _ in data]))
    y = torch.from_numpy(np.stack([PRE.mask(m) for _, m in data]))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    weight = torch.tensor([1.0, 4.0])
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y, weight=weight).backward()
        opt.step()
    return model.eval()


if __name__ == "__main__":
    path = save_checkpoint(
        train_tiny(),
        FIXTURE,
        "lightunet",
        PRE,
        provenance={"script": "tests/demos/make_fixture.py"},
    )
    print(f"wrote {path}")
