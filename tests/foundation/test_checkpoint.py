"""Checkpoint round trip and every corruption case gives one clear LightsegError."""

import json

import pytest
import torch

from lightseg.checkpoint import load_checkpoint, save_checkpoint
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError
from lightseg.models import create_model


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    m = create_model("lightunet", base=4)
    with torch.no_grad():
        m.inc.beta.copy_(torch.tensor([1.5, 0.7]))
    pre = Preprocessing(window_level=10, window_width=500, size=64)
    return m, save_checkpoint(m, tmp_path / "ck", "lightunet", pre, metrics={"dice": 0.5})


def test_round_trip(ckpt):
    m, path = ckpt
    c = load_checkpoint(path)
    assert c.arch == "lightunet" and c.preprocessing.window_level == 10
    assert c.meta["metrics"] == {"dice": 0.5}
    x = torch.randn(1, 3, 32, 32)
    m.eval()
    torch.testing.assert_close(c.model(x), m(x), rtol=0, atol=0)
    assert c.model.inc.beta.tolist() == pytest.approx([1.5, 0.7])


def test_resave_is_byte_identical(ckpt, tmp_path):
    m, path = ckpt
    c = load_checkpoint(path)
    again = save_checkpoint(
        c.model, tmp_path / "ck2", c.arch, c.preprocessing, metrics={"dice": 0.5}
    )
    a, b = (p / "weights.safetensors" for p in (path, again))
    assert a.read_bytes() == b.read_bytes()


def _truncate(p):
    w = p / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])


def _flip_byte(p):
    w = p / "weights.safetensors"
    b = bytearray(w.read_bytes())
    b[-5] ^= 0xFF
    w.write_bytes(bytes(b))


def _bad_json(p):
    (p / "model.json").write_text("{not json")


def _wrong_config(p):
    d = json.loads((p / "model.json").read_text())
    d["config"]["base"] = 8
    (p / "model.json").write_text(json.dumps(d))


def _no_weights(p):
    (p / "weights.safetensors").unlink()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_truncate, "sha256"),
        (_flip_byte, "sha256"),
        (_bad_json, "not valid JSON"),
        (_wrong_config, "do not fit the config"),
        (_no_weights, "missing"),
    ],
)
def test_corruption_is_one_clear_error(ckpt, corrupt, message):
    _, path = ckpt
    corrupt(path)
    with pytest.raises(LightsegError, match=message) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_missing_folder(tmp_path):
    with pytest.raises(LightsegError, match="not a folder"):
        load_checkpoint(tmp_path / "nope")
