"""Peaks from the CPU's documented units and OpenVINO's kernels; peers as manifest artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from lightseg.artifact import load_manifest
from lightseg.benchmarks import peaks
from lightseg.benchmarks.latency import subjects
from lightseg.benchmarks.peers import peer_artifacts
from lightseg.runtimes.process import IsolatedBackend
from lightseg.runtimes.worker import Session

SPR = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}


def test_documented_peaks_follow_the_units():
    assert peaks.flop_per_cycle(SPR) == {"fp32": 64, "bf16": 1024, "int8": 2048}
    assert peaks.flop_per_cycle({"avx2", "fma"}) == {"fp32": 32, "bf16": None, "int8": None}
    got = peaks.documented_peaks(2, SPR, 2.0)
    assert got == {"fp32": 256.0, "bf16": 4096.0, "int8": 8192.0}
    assert peaks.documented_peaks(2, SPR, 0.0)["fp32"] is None  # unknown clock: no claim


def test_measured_peaks_come_from_openvino():
    pytest.importorskip("openvino")
    got = peaks.peak_gflops(threads=1, seconds=0.05)
    assert got["fp32"] > 0 and got["int8"] > 0
    assert (got["bf16"] is not None) == peaks.has_bf16()


def test_peers_are_options_on_the_export_files(normal_dir):
    m = load_manifest(normal_dir)
    onnx = m.artifact("onnx-fp32")
    got = {a.name: a for a in peer_artifacts(m)}
    assert set(got) == {"ort-defaults", "openvino-defaults"}  # no checkpoint artifact here
    for a in got.values():
        assert (a.path, a.sha256) == (onnx.path, onnx.sha256)
        assert a.options == {"peer_of": "onnx-fp32", "defaults": True}
        m.verify(a)
    assert got["openvino-defaults"].precision == ("bf16" if peaks.has_bf16() else "fp32")


def test_bench_adds_torch_compile_peers_from_the_reference(normal_dir):
    names = [s.name for s in subjects(load_manifest(normal_dir), None, 2, peers=True)]
    assert names[:2] == ["pytorch-reference", "onnx-fp32"]
    assert {"torch-compile-fp32", "torch-compile-bf16", "ort-defaults"} <= set(names)
    assert [s.name for s in subjects(load_manifest(normal_dir), None, 2, peers=False)] == names[:2]


@pytest.mark.parametrize("peer", ["ort-defaults", "openvino-defaults"])
def test_peer_runs_in_a_worker_and_says_what_it_used(normal_dir, peer):
    if peer == "openvino-defaults":
        pytest.importorskip("openvino")
    m = load_manifest(normal_dir)
    s = next(s for s in subjects(m, None, 1, peers=True) if s.name == peer)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    ours = Session()
    ours.handle({"cmd": "open", "threads": 1, **subjects(m, None, 1, False)[1].open_msg})
    want = ours.runner.infer(x)
    session = Session()
    reply = session.handle({"cmd": "open", "threads": 1, **s.open_msg})
    assert reply["ok"], reply
    info = reply["info"]
    if peer == "openvino-defaults":
        used = info["inference_precision"]
        assert used == ("bf16" if peaks.has_bf16() else "f32")
        atol = 0.1 if used == "bf16" else 1e-4
    else:
        assert info["threads"] == "default"
        atol = 1e-4
    np.testing.assert_allclose(session.runner.infer(x), want, atol=atol)


def test_worker_pins_itself():
    import os

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity call on this OS")
    cpu = min(os.sched_getaffinity(0))
    proc = IsolatedBackend(60)
    try:
        assert proc.call({"cmd": "pin", "cpus": [cpu]}) == {"ok": True, "cpus": [cpu]}
    finally:
        proc.close()
