"""Folding the learnable Swish beta into the convs (lightseg.models.fold) is exact.

Bound (fp32, CPU): max |folded - original| <= 1e-5 * max |original logit| ("logit scale"), and
the argmax masks are identical. The fold only rescales weights by beta and 1/beta, so the error is
a few fp32 roundings per layer (measured ~1e-7 relative).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from lightseg.models import Swish, create_model, fold_swish_beta
from lightseg.models.blocks import DoubleConv

REL_TOL = 1e-5
pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning"
)


def randomise(model: nn.Module, betas: list[float] | None = None, seed: int = 0) -> nn.Module:
    """Random BN statistics/affine (so BN is not the identity) and the given Swish betas.

    ``betas`` are assigned to the activations in module order (cycled); default: log-uniform
    in [0.3, 3.0] with the first two pinned to 0.3 and 3.0.
    """
    g = torch.Generator().manual_seed(seed)
    acts = [(dc, i) for dc in model.modules() if isinstance(dc, DoubleConv) for i in (0, 1)]
    if betas is None:
        u = torch.rand(len(acts), generator=g, dtype=torch.float64)
        betas = [0.3, 3.0] + [math.exp(math.log(0.3) + v * math.log(10)) for v in u[2:].tolist()]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
        for k, (dc, i) in enumerate(acts):
            b = betas[k % len(betas)]
            if dc.beta is not None:
                dc.beta[i] = b
            elif isinstance(dc.double_conv[2 + 3 * i], Swish):
                dc.double_conv[2 + 3 * i].beta = b
    return model.eval()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


def has_swish(model: nn.Module) -> bool:
    return any(isinstance(m, Swish) for m in model.modules())


CONFIGS = [
    ("lightunet", {"base": 4}),
    ("lightunet", {"base": 8, "bilinear": True}),
    ("lightunet", {"base": 4, "depth": 1}),
    ("lightunet", {"base": 4, "depth": 2, "mid_ratio": 1.0, "bias": False}),
    ("lightunet", {"base": 4, "depth": 4, "n_channels": 1, "n_classes": 3}),
    ("lightunet", {"base": 6, "depth": 4, "bilinear": True, "mid_ratio": 0.25}),
    ("lightunet", {"base": 4, "activation": "swish-fixed"}),
    ("lightunet", {"base": 4, "depth": 2, "bilinear": True, "activation": "swish-fixed"}),
    ("unet", {"base": 4, "activation": "swish-learnable"}),
    ("unet", {"base": 4, "bilinear": True, "activation": "swish-learnable"}),
    ("unet", {"base": 4, "depth": 3, "activation": "swish-fixed", "bias": False}),
]


@pytest.mark.parametrize(("arch", "kw"), CONFIGS)
@pytest.mark.parametrize("shape", [(32, 32), (64, 48), (37, 45)])
def test_exact_on_random_weights_and_betas(arch, kw, shape):
    model = randomise(create_model(arch, **kw), seed=len(kw) + shape[0])
    folded, report = fold_swish_beta(model)
    assert not has_swish(folded) and not report["kept"]
    assert len(report["folded"]) == 2 * (1 + 2 * model.config.depth)
    assert {0.3, 3.0} <= {round(b, 6) for b in report["folded"].values()}
    x = torch.randn(2, model.config.n_channels, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x), folded(x)
    d = rel_diff(a, b)
    assert d <= REL_TOL, f"max |diff| / max |logit| = {d:.3g}"
    assert torch.equal(a.argmax(1), b.argmax(1))


def test_input_untouched_and_new_model_in_eval_mode():
    model = randomise(create_model("lightunet", base=4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, _ = fold_swish_beta(model)
    assert folded is not model and model.training and not folded.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert has_swish(model) and model.inc.beta is not None


@pytest.mark.parametrize(
    ("arch", "kw"), [("unet", {"base": 4}), ("lightunet", {"base": 4, "activation": "silu"})]
)
def test_models_without_swish_come_back_unchanged(arch, kw):
    model = randomise(create_model(arch, **kw))
    folded, report = fold_swish_beta(model)
    assert report == {}
    assert folded is not model and not folded.training
    sd, fsd = model.state_dict(), folded.state_dict()
    assert sd.keys() == fsd.keys() and all(torch.equal(sd[k], fsd[k]) for k in sd)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), folded(x))


def test_nonpositive_beta_is_kept_and_still_exact():
    model = create_model("lightunet", base=4)
    # inc: (-0.7, 0.0) both kept; down1: (0.3, -2.0) mixed; the rest fold.
    betas = [-0.7, 0.0, 0.3, -2.0, 3.0, 0.5, 1.7, 0.9, 2.5, 0.4, 1.2, 0.6, 0.8, 2.0]
    model = randomise(model, betas)
    folded, report = fold_swish_beta(model)
    kept = report["kept"]
    assert set(kept) == {
        "inc.double_conv.2",
        "inc.double_conv.5",
        "down1.maxpool_conv.1.double_conv.5",
    }
    assert all("<= 0" in v["reason"] for v in kept.values())
    assert kept["down1.maxpool_conv.1.double_conv.5"]["beta"] == pytest.approx(-2.0)
    assert len(report["folded"]) == 11 and report["config_activation"] is None
    # Both kept: the block keeps its learnable beta. Mixed: the kept one becomes a fixed Swish.
    assert folded.inc.beta is not None
    dc = folded.down1.maxpool_conv[1]
    assert dc.beta is None and isinstance(dc.double_conv[2], nn.SiLU)
    assert isinstance(dc.double_conv[5], Swish) and dc.double_conv[5].beta == pytest.approx(-2.0)
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model(x), folded(x)
    d = rel_diff(a, b)
    assert d <= REL_TOL, f"max |diff| / max |logit| = {d:.3g}"
    assert torch.equal(a.argmax(1), b.argmax(1))


def test_folded_state_dict_is_a_plain_silu_unet():
    model = randomise(create_model("lightunet", base=8))
    folded, report = fold_swish_beta(model)
    assert report["config_activation"] == "silu" and folded.config.activation == "silu"
    plain = create_model("lightunet", **folded.config.to_dict()).eval()
    plain.load_state_dict(folded.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), folded(x))
    assert not any(k.endswith("beta") for k in folded.state_dict())


def test_torch_export_traces_the_folded_model():
    folded, _ = fold_swish_beta(randomise(create_model("lightunet", base=4)))
    x = torch.randn(1, 3, 32, 32)
    ep = torch.export.export(folded, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), folded(x), atol=1e-6, rtol=0)


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"]
    )
    return buf.getvalue()


def mul_into_sigmoid(graph) -> tuple[int, int]:
    """(number of Mul nodes, number of Sigmoid nodes whose input a Mul produced)."""
    producer = {o: n.op_type for n in graph.node for o in n.output}
    muls = sum(n.op_type == "Mul" for n in graph.node)
    pre = sum(n.op_type == "Sigmoid" and producer.get(n.input[0]) == "Mul" for n in graph.node)
    return muls, pre


def run_ort(data: bytes, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("kept", [False, True])
def test_onnx_export_drops_the_beta_muls(kept):
    import onnx

    betas = [-0.5, 2.0, 0.3, 3.0] if kept else None
    model = randomise(create_model("lightunet", base=8), betas)
    folded, report = fold_swish_beta(model)
    n_folded, n_kept = len(report["folded"]), len(report["kept"])
    assert n_kept == (4 if kept else 0) and n_folded == 14 - n_kept
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    g0 = onnx.load_from_string(onnx_bytes(model, x)).graph
    data = onnx_bytes(folded, x)
    g1 = onnx.load_from_string(data).graph
    (m0, pre0), (m1, pre1) = mul_into_sigmoid(g0), mul_into_sigmoid(g1)
    assert pre0 == 14 and pre1 == n_kept, (pre0, pre1)
    assert m1 == m0 - n_folded, (m0, m1)
    with torch.no_grad():
        ref = model(x).numpy()
    got = run_ort(data, x)
    d = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert d <= 1e-4, f"onnxruntime vs original: max |diff| / max |logit| = {d:.3g}"


@pytest.fixture(scope="module")
def shipped():
    from lightseg.checkpoint import load_checkpoint
    from lightseg.data import lesion_inputs

    ckpt = load_checkpoint(None)
    x, _ = lesion_inputs(ckpt.preprocessing, 3, seed=0)
    return ckpt.model, torch.from_numpy(x)


def test_shipped_checkpoint_folds_exactly(shipped):
    model, x = shipped
    assert x.shape[-2:] == (256, 256)
    folded, report = fold_swish_beta(model)
    assert len(report["folded"]) == 14 and not report["kept"] and not has_swish(folded)
    with torch.no_grad():
        a, b = model(x), folded(x)
    d_logit = rel_diff(a, b)
    d_prob = (a.softmax(1) - b.softmax(1)).abs().max().item()
    msg = f"shipped: max |diff| / max |logit| = {d_logit:.3g}, max |dprob| = {d_prob:.3g}"
    assert d_logit <= REL_TOL and d_prob <= REL_TOL, msg
    assert torch.equal(a.argmax(1), b.argmax(1)), msg
    print(msg)


def test_shipped_checkpoint_onnx_matches(shipped):
    import onnx

    model, x = shipped
    folded, report = fold_swish_beta(model)
    data = onnx_bytes(folded, x[:1])
    muls, pre = mul_into_sigmoid(onnx.load_from_string(data).graph)
    assert pre == 0 and muls == 14
    got = run_ort(data, x[:1])
    with torch.no_grad():
        ref = model(x[:1]).numpy()
    d = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert d <= 1e-4, f"shipped onnxruntime: max |diff| / max |logit| = {d:.3g}"
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    print(f"shipped onnxruntime vs torch original: {d:.3g}")
