"""torchstat-convention figures equal the paper's; modern MACs equal torch's flop counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lightseg.models import create_model
from lightseg.profile import PAPER, profile_model


@pytest.mark.parametrize("name", ["unet", "lightunet"])
def test_torchstat_figures_equal_paper(name):
    s = profile_model(create_model(name), (3, 256, 256), "torchstat").summary()
    p = PAPER[name]
    assert s["params"] == p["params"]
    for key in ("memory_mb", "madd_g", "flops_g", "memrw_mb"):
        assert f"{s[key]:.2f}" == f"{p[key]:.2f}", key


def test_light_trainable_vs_torchstat_count():
    s = profile_model(create_model("lightunet"), (3, 256, 256), "torchstat").summary()
    assert (s["trainable_params"], s["params"]) == (4_198_000, 4_197_986)


@pytest.mark.parametrize(("name", "kw"), [("lightunet", {"base": 8}), ("unet", {"base": 4})])
def test_modern_macs_match_flop_counter(name, kw):
    m = create_model(name, **kw).eval()
    s = profile_model(m, (3, 64, 48), "modern").summary()
    with FlopCounterMode(display=False) as fc:
        m(torch.zeros(1, 3, 64, 48))
    ref = fc.get_total_flops() / 2
    assert s["conv_gmacs"] * 1e9 == pytest.approx(ref, rel=0.005)
