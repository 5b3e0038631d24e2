"""The one-page report: parity, latency, auto-tune evidence and the machine, offline and escaped."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from lightseg.benchmarks import latency, report
from lightseg.benchmarks.harness import ParityRun
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import disc_images
from lightseg.judge.verdict import Verdict, compare, load_tolerances

PRE = Preprocessing(size=32)
EVIL = "<script>alert(1)</script>"
MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "os": "Linux-test"}


def _logits(masks: np.ndarray, scale: float) -> np.ndarray:
    sign = (2.0 * masks - 1.0)[:, None].astype(np.float32)
    return np.concatenate([-scale * sign, scale * sign], axis=1)


def parity_run(name: str = "ort-int8") -> ParityRun:
    """onnx-fp32 passes, ``name`` fails (a lesion erased), plus an undecided and a skipped one."""
    x, masks = disc_images(PRE, 8, seed=3)
    ref = _logits(masks, 4.0)
    bad = ref.copy()
    bad[0, 1], bad[0, 0] = -4.0, 4.0  # image 0: no lesion at all
    tol = load_tolerances()
    good = compare(ref, ref + 1e-6, masks, tol, "fp32", "onnx-fp32", "onnxruntime")
    fail = compare(ref, bad, masks, tol, "int8", name, "ort-mobile")
    undecided = dataclasses.replace(good, name="onnx-fp16", precision="fp16", status="undecided")
    skipped = Verdict("coreml-fp16", "coreml", "fp16", "skipped", "Core ML needs macOS")
    meta = {
        "reference": {"checkpoint": "tiny", "versions": {"torch": "2.x"}},
        "n": len(x),
        "data": "discs",
        "inputs": {"name": "verification", "seed": 3},
        "threads": 2,
        "machine": MACHINE,
        "boundary_px": 1.0,
        "uncertainty_band": 0.1,
    }
    outputs = {"onnx-fp32": ref + 1e-6, name: bad, "onnx-fp16": ref + 1e-6}
    return ParityRun([good, fail, undecided, skipped], x, masks, ref, outputs, meta)


def bench_doc(stable: bool) -> dict:
    """A latency doc built by latency.rows from per-block samples (a peer included)."""
    p50s = {"pytorch-reference": 20.0, "onnx-fp32": 2.0, "ort-int8": 1.5, "ort-defaults": 1.8}
    stats = {}
    for name, p50 in p50s.items():
        second = p50 * (1.0 if stable else 1.3)
        st = latency.LatencyStats(name, "onnxruntime", "int8" if "int8" in name else "fp32")
        st.samples_ms, st.block_p50 = [p50] * 3 + [second] * 3, [p50, second]
        st.info = {"versions": {"onnxruntime": "1.2x"}}
        stats[name] = st
    peaks = {"fp32": 50.0, "bf16": 300.0, "int8": 600.0}
    noise = {"stable": stable, "within": 0.05, "blocks": 2, "block_runs": 3, "seconds": 1.0,
             "probe_ms": {"p50": 2.0, "max_over_p50": 1.1, "cv": 0.02},
             "load_before": [0.5, 0.5, 0.5], "load_after": [0.6, 0.5, 0.5]}  # fmt: skip
    return {
        "machine": MACHINE, "versions": {"onnxruntime": "1.2x"}, "threads": 2, "batch": 1,
        "input": [1, 3, 32, 32], "runs": 6, "warmup": 1, "interleaved_round": 5,
        "cpus": [0, 1], "stable": stable, "noise": noise, "model_gmacs": 0.005,
        "backends": latency.rows(stats, 0.005, peaks, 0.05),
        "peak_gflops": peaks,
        "peaks": {"documented_gflops": {"fp32": 300.0, "bf16": 5000.0, "int8": 10000.0},
                  "clock_ghz": 2.6, "flags": ["avx2"]},
    }  # fmt: skip


def tune_evidence(chosen: str = "ort-defaults") -> dict:
    def row(name, parity, p50, peer=False, reason=""):
        return {"name": name, "backend": "onnxruntime", "precision": "fp32", "run_with": {},
                "peer": peer, "parity": parity, "reason": reason, "dice_vs_fp32_mean": 0.99,
                "dice_ci": [0.98, 1.0], "gt_dice_ratio": 1.0, "gt_ratio_ci": [0.99, 1.01],
                "p50_ms": p50, "p90_ms": p50 * 1.2, "cv": 0.1, "stable": True,
                "speedup_vs_pytorch": 20.0 / p50, "size_bytes": 80_000,
                "passed": parity == "pass"}  # fmt: skip

    rows = [row("onnx-fp32", "pass", 2.0), row(chosen, "pass", 1.8, peer=True),
            row("onnx-int8", "fail", 1.2, reason="small_boundary_max = 6, limit <= 1")]  # fmt: skip
    return {"x86": {"family": "x86", "device": "x86 server CPU", "chosen": chosen,
                    "rule": "lowest p50 among candidates that pass the judge", "threads": 2,
                    "runs": 6, "rows": rows, "stable": True, "noise": {},
                    "parity_inputs": {"name": "verification"}, "n_tried": [64]}}  # fmt: skip


@pytest.fixture(scope="module")
def page() -> str:
    return report.full_report(parity_run(), bench_doc(False), tune_evidence(), MACHINE)


def test_report_holds_parity_latency_tune_and_machine(page):
    parity = page.split('<h2 id="parity">')[1].split('<h2 id="latency">')[0]
    for name, status in (("onnx-fp32", "pass"), ("ort-int8", "fail"), ("onnx-fp16", "undecided"),
                         ("coreml-fp16", "skipped")):  # fmt: skip
        assert re.search(f'<tr class="{status}"><td>{name}</td>', parity), name
    assert "Dice mean (95% CI)" in parity
    # the bar charts and the worst cases of each artifact that ran (exact ones say so)
    assert parity.count("data:image/png;base64,") == 4 and parity.count("No pixel differs") == 2
    lat = page.split('<h2 id="latency">')[1].split('<h2 id="tune">')[0]
    for name in ("pytorch-reference", "onnx-fp32", "ort-int8", "ort-defaults (peer)"):
        assert f"<td>{name}</td>" in lat
    assert "10.00±" in lat  # onnx-fp32's speed-up vs eager PyTorch with its spread
    assert lat.count("data:image/png;base64,") == 3  # percentiles, speed-up, GFLOP/s vs peak
    tune = page.split('<h2 id="tune">')[1].split('<h2 id="machine">')[0]
    assert '<tr class="chosen"><td>ort-defaults (peer) &lt;- chosen</td>' in tune
    assert "Pick: ort-defaults: 11.11x" in tune and "lowest p50 among" in tune
    assert "Faster, but not picked: onnx-int8 (fail: small_boundary_max = 6" in tune
    machine = page.split('<h2 id="machine">')[1]
    assert "<td>CPU</td><td class=wrap>Test CPU 9000</td>" in machine
    assert "<td>onnxruntime version</td>" in machine
    assert "0.50 / 0.50 / 0.50 before" in machine


def test_report_is_offline_and_fits_a_phone(page):
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert not re.search(r'(src|href)="(?!#|")', text)  # only pictures inline, in-page links
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert ".scroll{overflow-x:auto" in page and page.count('<div class="scroll">') >= 4
    assert "<link" not in page and "<script" not in page


@pytest.mark.parametrize("stable", [True, False])
def test_noisy_banner_iff_the_bench_says_so(stable):
    page = report.full_report(parity_run(), bench_doc(stable))
    assert ('<div class="banner noisy">noisy: ratios not reliable' in page) is (not stable)
    assert '<h2 id="tune">' not in page  # no auto-tune evidence given


def test_strings_from_manifests_and_data_are_escaped():
    machine = MACHINE | {"cpu": EVIL}
    page = report.full_report(parity_run(EVIL), bench_doc(True), tune_evidence(EVIL), machine)
    assert EVIL not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_parity_only_report_still_written(tmp_path):
    report.write_html(parity_run(), tmp_path / "parity.html")
    page = (tmp_path / "parity.html").read_text()
    assert '<h2 id="parity">' in page and '<h2 id="latency">' not in page
    assert "<td>CPU</td><td class=wrap>Test CPU 9000</td>" in page
