"""Untrusted checkpoints: model.json is validated and the safetensors header compared with the
config before anything is built; NaN/Inf weights are refused (exit 2, the tensor named)."""

from __future__ import annotations

import copy
import json
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import FUZZ_COUNTS, one_error, rewrite_meta, rewrite_weights, tiny_checkpoint

from lightseg.checkpoint import load_checkpoint
from lightseg.errors import LightsegError


@pytest.fixture
def ck(tmp_path: Path) -> Path:
    return tiny_checkpoint(tmp_path / "ck")


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Fail if the weights' tensors are read (the refusal must come from the header)."""
    import safetensors.torch

    def read(*a, **k):
        raise AssertionError("tensors were read before the config was checked")

    monkeypatch.setattr(safetensors.torch, "load_file", read)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(capsys, ck, bad):
    def poison(state):
        state["down1.maxpool_conv.1.double_conv.0.weight"][0, 0, 0, 0] = bad

    rewrite_weights(ck, poison)
    with pytest.raises(
        LightsegError, match=r"tensor down1\.maxpool_conv\.1\.double_conv\.0\.weight"
    ):
        load_checkpoint(ck)
    line = one_error(capsys, "eval", ck, "--n", "1")
    assert "NaN or Inf" in line and "down1.maxpool_conv.1.double_conv.0.weight" in line


def test_non_finite_pth_is_refused_by_import(capsys, tmp_path):
    from lightseg.models import create_model

    sd = create_model("unet", base=2).state_dict()
    sd["up2.conv.double_conv.1.running_var"][1] = float("inf")
    torch.save(sd, tmp_path / "m.pth")
    line = one_error(capsys, "import-checkpoint", tmp_path / "m.pth", "-o", tmp_path / "o")
    assert "up2.conv.double_conv.1.running_var has NaN or Inf" in line
    assert not (tmp_path / "o").exists()


def _set(path: str, value):
    def edit(doc):
        *parents, last = path.split(".")
        d = doc
        for p in parents:
            d = d[p]
        d[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_set("config.base", 10**6), "base must be 2..256"),
        (_set("config.base", 2**70), "base must be 2..256"),
        (_set("config.depth", 7), "depth must be 1..4"),
        (_set("config.n_channels", 5), "n_channels must be 1..4"),
        (_set("config.n_classes", 100000), "n_classes must be 1..64"),
        (_set("config.mid_ratio", float("nan")), "mid_ratio"),
        (_set("config.mid_ratio", 1e9), "mid_ratio"),
        (_set("config.base", "64"), "base must be an integer"),
        (_set("config.bias", "yes"), "bias must be true or false"),
        (_set("config.activation", "gelu"), "activation must be one of"),
        (_set("config.evil", 1), "bad config"),
        (_set("config", [1, 2]), "'config' is not an object"),
        (_set("architecture", "resnet"), "unknown architecture"),
        (_set("architecture", ["x"]), "unknown architecture"),
        (_set("preprocessing.size", 100000), "size must be 16..2048"),
        (_set("preprocessing.size", 4), "size must be 16..2048"),
        (_set("preprocessing.window_width", float("nan")), "window_width must be a finite"),
        (_set("preprocessing.window_level", float("inf")), "window_level must be a finite"),
        (_set("preprocessing.window_width", "600"), "window_width must be a finite"),
        (_set("preprocessing.window_width", -5), "window_width must be positive"),
        (_set("preprocessing.channels", 1), "preprocessing gives 1 channels"),
        (_set("preprocessing.fit", "stretch"), "fit must be"),
        (_set("preprocessing.secret", 1), "unknown fields"),
        (_set("preprocessing", "pad"), "'preprocessing' is not an object"),
        (_set("classes", ["a", "b", "c"]), "'classes' must be 2 names"),
        (_set("classes", "background"), "'classes' must be 2 names"),
        (_set("classes", ["", "lesion"]), "'classes' must be 2 names"),
        (_set("weights_sha256", 5), "not a sha256"),
        (_set("schema_version", 99), "unsupported schema_version"),
        (_set("format", "pickle"), "not a lightseg-checkpoint file"),
    ],
)
def test_model_json_is_validated_before_anything_is_built(capsys, ck, no_tensor_reads, edit, words):
    rewrite_meta(ck, edit)
    with pytest.raises(LightsegError, match=".") as e:
        load_checkpoint(ck)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert words in one_error(capsys, "eval", ck)


def test_header_shapes_are_compared_with_the_config_before_building(ck, no_tensor_reads):
    rewrite_meta(ck, _set("config.base", 3))  # a valid config the weights do not fit
    with pytest.raises(LightsegError, match=r"weights do not fit the config \(inc\..* has shape"):
        load_checkpoint(ck)


def test_classes_must_match_the_output_channels(tmp_path, no_tensor_reads):
    ck = tiny_checkpoint(tmp_path / "ck3", n_classes=3)
    rewrite_meta(ck, _set("classes", ["background", "lesion"]))  # 3 outputs, 2 names
    with pytest.raises(LightsegError, match="'classes' must be 3 names"):
        load_checkpoint(ck)


def _hostile_weights(ck: Path, data: bytes) -> None:
    import hashlib

    (ck / "weights.safetensors").write_bytes(data)
    rewrite_meta(ck, _set("weights_sha256", hashlib.sha256(data).hexdigest()))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        struct.pack("<Q", 2**62) + b"{}",  # header length far beyond the file
        struct.pack("<Q", 5) + b"nope!",
        struct.pack("<Q", 2) + b"[]",
        struct.pack("<Q", 60) + json.dumps({"a": {"dtype": "F32", "shape": [10**9, 10**9],
                                                  "data_offsets": [0, 4]}}).encode().ljust(60),
    ],
)  # fmt: skip
def test_hostile_safetensors_headers(ck, no_tensor_reads, data):
    _hostile_weights(ck, data)
    with pytest.raises(LightsegError) as e:
        load_checkpoint(ck)
    assert "\n" not in str(e.value)


def test_oversized_and_deeply_nested_model_json(ck):
    (ck / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LightsegError, match="not valid JSON|not a lightseg"):
        load_checkpoint(ck)
    with open(ck / "model.json", "wb") as f:
        f.truncate(17 << 20)  # sparse, 17 MiB of zeros
    with pytest.raises(LightsegError, match="at most"):
        load_checkpoint(ck)


# --- fuzzing ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)  # fmt: skip
_FIELDS = ["architecture", "config", "preprocessing", "classes", "weights_sha256", "format",
           "schema_version", "config.base", "config.depth", "config.n_channels",
           "config.n_classes", "config.mid_ratio", "config.bias", "config.bilinear",
           "config.activation", "preprocessing.size", "preprocessing.channels",
           "preprocessing.window_level", "preprocessing.window_width",
           "preprocessing.fit"]  # fmt: skip


@pytest.fixture(scope="module")
def valid_doc(tmp_path_factory) -> tuple[dict, bytes]:
    ck = tiny_checkpoint(tmp_path_factory.mktemp("fuzz") / "ck")
    return json.loads((ck / "model.json").read_text()), (ck / "weights.safetensors").read_bytes()


def _check_load(doc_text: str, weights: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        ck = Path(d) / "ck"
        ck.mkdir()
        (ck / "weights.safetensors").write_bytes(weights)
        (ck / "model.json").write_text(doc_text)
        try:
            c = load_checkpoint(ck)
        except LightsegError as e:
            msg = str(e)
            assert msg and "\n" not in msg and len(msg) < 1000, msg
        else:
            assert all(torch.isfinite(p).all() for p in c.model.state_dict().values())


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=st.lists(st.tuples(st.sampled_from(_FIELDS), _json), min_size=1, max_size=3))
def test_fuzz_model_json_fields(valid_doc, mutations):
    """A valid model.json with 1-3 fields replaced by random JSON: loads, or one-line error."""
    doc, weights = copy.deepcopy(valid_doc[0]), valid_doc[1]
    for path, value in mutations:
        *parents, last = path.split(".")
        d = doc
        for p in parents:
            d = d.get(p) if isinstance(d, dict) else None
        if isinstance(d, dict):
            d[last] = value
    FUZZ_COUNTS["model.json fields"] += 1
    _check_load(json.dumps(doc, allow_nan=True), weights)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=_json, raw=st.binary(max_size=64))
def test_fuzz_model_json_whole(valid_doc, doc, raw):
    """Any JSON value, or any bytes, as model.json: one-line error, never another exception."""
    FUZZ_COUNTS["model.json whole"] += 1
    _check_load(json.dumps(doc, allow_nan=True), valid_doc[1])
    _check_load(raw.decode("latin-1"), valid_doc[1])


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["inc.double_conv.0.weight", "outc.conv.bias", "inc.beta", "x"]),
    entry=st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F32", "F16", "I64", "U8", "Q4"]),
            "shape": st.lists(st.integers(-2, 2**40), max_size=5),
            "data_offsets": st.lists(st.integers(-1, 2**40), max_size=3),
        }
    ),
)
def test_fuzz_safetensors_header(valid_doc, name, entry):
    """One header entry replaced (shape, dtype, offsets) with the hash updated: one-line error
    or a load, and never a tensor allocated from the hostile shape."""
    import hashlib

    weights = valid_doc[1]
    n = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + n])
    header[name] = entry
    head = json.dumps(header).encode()
    data = len(head).to_bytes(8, "little") + head + weights[8 + n :]
    doc = dict(valid_doc[0], weights_sha256=hashlib.sha256(data).hexdigest())
    FUZZ_COUNTS["safetensors header"] += 1
    _check_load(json.dumps(doc), data)
