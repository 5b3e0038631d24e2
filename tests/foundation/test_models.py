"""The paper's two models, exactly."""

import pytest
import torch

from lightseg.models import create_model


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    ("name", "kw", "expected"),
    [
        ("unet", {}, 31_043_586),
        ("unet", {"bias": False}, 31_037_698),
        ("lightunet", {}, 4_198_000),
    ],
)
def test_exact_parameter_counts(name, kw, expected):
    assert n_params(create_model(name, **kw)) == expected


def test_lightunet_stage_table():
    """Per-stage parameter counts of models.md (incl. BN, excluding the betas)."""
    m = create_model("lightunet")

    def stage(mod):
        return sum(p.numel() for n, p in mod.named_parameters() if not n.endswith("beta"))

    assert stage(m.inc) == 19_584
    assert stage(m.down1) == 111_168
    assert stage(m.down2) == 443_520
    assert stage(m.down3) == 1_771_776
    assert stage(m.up2.up) == 524_544 and stage(m.up2.conv) == 885_888
    assert stage(m.up3.up) == 131_200 and stage(m.up3.conv) == 221_760
    assert stage(m.up4.up) == 32_832 and stage(m.up4.conv) == 55_584
    assert stage(m.outc) == 130
    assert sorted(n for n, _ in m.named_children()) == sorted(
        ["inc", "down1", "down2", "down3", "up2", "up3", "up4", "outc"]
    )


def test_betas_are_learnable():
    m = create_model("lightunet", base=4)
    betas = [p for n, p in m.named_parameters() if n.endswith("beta")]
    assert len(betas) == 7 and sum(b.numel() for b in betas) == 14
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    x = torch.randn(2, 3, 32, 32)
    m(x).square().mean().backward()
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in betas)
    before = betas[0].detach().clone()
    opt.step()
    assert not torch.equal(before, betas[0])


def test_swish_math():
    m = create_model("lightunet", base=4)
    dc = m.inc
    with torch.no_grad():
        dc.beta.copy_(torch.tensor([2.0, 0.5]))
    dc.eval()
    x = torch.randn(1, 3, 16, 16)
    s = dc.double_conv
    h = s[1](s[0](x))
    h = h * torch.sigmoid(2.0 * h)
    h = s[4](s[3](h))
    expected = h * torch.sigmoid(0.5 * h)
    torch.testing.assert_close(dc(x), expected)


@pytest.mark.parametrize("hw", [(32, 32), (33, 47), (17, 8), (5, 71)])
def test_any_input_size(hw):
    m = create_model("lightunet", base=4).eval()
    y = m(torch.randn(1, 3, *hw))
    assert y.shape == (1, 2, *hw)
    # pad-run-crop rule: the odd-size result equals running the explicitly zero-padded input
    mult = 8
    ph, pw = (-hw[0]) % mult, (-hw[1]) % mult
    x = torch.randn(1, 3, *hw)
    padded = torch.nn.functional.pad(x, [0, pw, 0, ph])
    torch.testing.assert_close(m(x), m(padded)[..., : hw[0], : hw[1]])


@pytest.mark.parametrize("act", ["relu", "swish-fixed", "silu", "swish-learnable"])
def test_activation_options(act):
    m = create_model("lightunet", base=4, depth=2, activation=act, n_channels=1, n_classes=3)
    assert m(torch.randn(1, 1, 16, 16)).shape == (1, 3, 16, 16)
    has_beta = any(n.endswith("beta") for n, _ in m.named_parameters())
    assert has_beta == (act == "swish-learnable")


def test_bad_config():
    with pytest.raises(ValueError, match="depth"):
        create_model("lightunet", depth=7)
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet")
