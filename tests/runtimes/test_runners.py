"""Runners against the PyTorch reference on a tiny model; unavailable backends say why."""

import platform

import numpy as np
import pytest
import torch

from lightseg.artifact import Artifact, Manifest, TensorSpec
from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.fileio import sha256_path, size_path
from lightseg.models import create_model
from lightseg.runtimes.base import runner_for
from lightseg.runtimes.torch_runner import TorchRunner

S = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("lightunet", base=4).eval()
    root = tmp_path_factory.mktemp("rt")
    torch.onnx.export(
        model,
        torch.zeros(1, 3, S, S),
        str(root / "m.onnx"),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "b"}, "logits": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    x = np.random.default_rng(0).random((2, 3, S, S), dtype=np.float32)
    with TorchRunner(model=model, threads=1) as r:
        ref = r.infer(x)
    return model, root, x, ref


def manifest(root, backend, precision="fp32", shape=("batch", 3, S, S)):
    a = Artifact(
        f"{backend}-{precision}",
        "m.onnx",
        backend,
        precision,
        "onnx",
        sha256=sha256_path(root / "m.onnx"),
        size_bytes=size_path(root / "m.onnx"),
        inputs=[TensorSpec("image", list(shape))],
    )
    m = Manifest(source={}, preprocessing={}, classes=["bg", "lesion"], artifacts=[a], root=root)
    return m, a


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runner_matches_torch(setup, backend):
    _, root, x, ref = setup
    m, a = manifest(root, backend)
    with runner_for(m, a, threads=1) as r:
        y = r.infer(x)
        assert r.info["backend"] == backend and r.info["threads"] == 1
    assert y.dtype == np.float32 and y.shape == ref.shape == (2, 2, S, S)
    assert np.abs(y - ref).max() < 1e-4


def test_ort_fixed_batch_runs_image_by_image(setup):
    _, root, x, ref = setup
    m, a = manifest(root, "onnxruntime", shape=(1, 3, S, S))
    with runner_for(m, a, threads=1) as r:
        assert np.abs(r.infer(x) - ref).max() < 1e-4
        with pytest.raises(LightsegError, match="input shape"):
            r.infer(x[:, :, :16])


def test_infer_checks_input(setup):
    model, *_ = setup
    with TorchRunner(model=model, threads=1) as r:
        with pytest.raises(LightsegError, match="float32 NCHW"):
            r.infer(np.zeros((1, 3, S, S), np.float64))
        with pytest.raises(LightsegError, match="float32 NCHW"):
            r.infer(np.zeros((3, S, S), np.float32))


def test_hash_checked_before_loading(setup, tmp_path):
    _, root, *_ = setup
    m, a = manifest(root, "onnxruntime")
    a.sha256 = "0" * 64
    with pytest.raises(LightsegError, match="sha256"):
        runner_for(m, a).open()


def test_unknown_backend():
    m = Manifest(source={}, preprocessing={}, classes=[])
    a = Artifact("x", "x.bin", "nosuch", "fp32", "bin")
    with pytest.raises(BackendUnavailable, match="no runner for backend 'nosuch'"):
        runner_for(m, a)


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML predicts on macOS")
def test_coreml_says_it_needs_macos(setup):
    _, root, *_ = setup
    m, a = manifest(root, "coreml")
    with pytest.raises(BackendUnavailable, match="^Core ML prediction needs macOS$"):
        runner_for(m, a).open()


def test_tensorrt_unavailable_says_how(setup):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    _, root, *_ = setup
    m, a = manifest(root, "tensorrt")
    with pytest.raises(BackendUnavailable, match="JetPack"):
        runner_for(m, a).open()
