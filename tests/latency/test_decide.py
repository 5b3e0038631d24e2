"""The latency gate's decision on recorded documents (a real bench run and its baseline)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lightseg.benchmarks import baseline as bl
from lightseg.errors import GateFailed, LightsegError

DOCS = Path(__file__).parent / "docs"


@pytest.fixture
def bench() -> dict:
    return json.loads((DOCS / "bench.json").read_text())


@pytest.fixture
def base() -> dict:
    return bl.load(DOCS / "baseline.json")


def _onnx(doc: dict) -> dict:
    return next(b for b in doc["backends"] if b["name"] == "onnx-fp32")


def test_same_run_passes(bench, base):
    d = bl.decide(base, bench)
    assert d.status == "pass" and d.failed == [] and "onnx-fp32" in d.lines[0]


def test_regression_beyond_the_bound_fails(bench, base):
    ref = base["artifacts"]["onnx-fp32"]
    b = bl.bound(ref["spread"], _onnx(bench)["speedup_spread"])
    _onnx(bench)["speedup_vs_reference"] = ref["speedup"] * (1 - b) * 0.99
    d = bl.decide(base, bench)
    assert d.status == "fail" and d.failed == ["onnx-fp32"] and "REGRESSED" in d.lines[0]


def test_regression_inside_the_bound_passes(bench, base):
    ref = base["artifacts"]["onnx-fp32"]
    b = bl.bound(ref["spread"], _onnx(bench)["speedup_spread"])
    _onnx(bench)["speedup_vs_reference"] = ref["speedup"] * (1 - b) * 1.01
    assert bl.decide(base, bench).status == "pass"


def test_bound_is_five_percent_or_twice_the_spread():
    assert bl.bound(0.0, None) == 0.05
    assert bl.bound(0.01, 0.02) == 0.05
    assert bl.bound(0.10, 0.04) == pytest.approx(0.20)


def test_other_machine_is_not_judged(bench, base):
    bench["machine"]["cpu"] = "Some Other CPU"
    bench["versions"]["onnxruntime"] = "0.0.1"
    _onnx(bench)["speedup_vs_reference"] = 0.01  # would fail if judged
    d = bl.decide(base, bench)
    assert d.status == "other-machine" and d.failed == []
    assert "another machine: not judged" in d.lines[0]
    assert "cpu" in d.lines[0] and "versions.onnxruntime" in d.lines[0]


def test_runtime_used_by_one_run_only_does_not_change_the_class(bench, base):
    bench["versions"]["openvino"] = "2026.4"
    assert bl.decide(base, bench).status == "pass"


def test_noisy_run_is_not_judged(bench, base):
    bench["stable"] = False
    _onnx(bench)["speedup_vs_reference"] = 0.01
    d = bl.decide(base, bench)
    assert d.status == "noisy" and d.failed == [] and "noisy, not judged" in d.lines[0]


def test_artifact_that_did_not_run_fails_and_missing_one_is_named(bench, base):
    _onnx(bench).update(status="error", message="worker crashed", speedup_vs_reference=None)
    base["artifacts"]["gone"] = {"speedup": 2.0, "spread": 0.01}
    d = bl.decide(base, bench)
    assert d.status == "fail" and d.failed == ["onnx-fp32"]
    assert any(line.startswith("gone: not in this run") for line in d.lines)


def test_noisy_run_records_no_baseline(bench):
    bench["stable"] = False
    with pytest.raises(GateFailed, match="noisy"):
        bl.baseline_doc(bench)


def test_baseline_keeps_ratios_not_milliseconds(bench):
    doc = bl.baseline_doc(copy.deepcopy(bench))
    assert set(doc["artifacts"]) == {"onnx-fp32"}
    assert set(doc["artifacts"]["onnx-fp32"]) == {"speedup", "spread"}
    assert doc["machine_class"] == bl.machine_class(bench)


def test_unreadable_baseline_is_bad_input(tmp_path):
    with pytest.raises(LightsegError, match="cannot read"):
        bl.load(tmp_path / "missing.json")
    (tmp_path / "v.json").write_text(json.dumps({"kind": bl.KIND, "schema_version": 99}))
    with pytest.raises(LightsegError, match="schema_version"):
        bl.load(tmp_path / "v.json")
