"""The mixed-precision search stops where the gate holds and records its steps; the
int8-mixed artifact keeps exactly its float units float; the divergence report measures real
per-layer errors on the tiny export."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import onnx
import pytest

from lightseg.benchmarks import divergence as D
from lightseg.benchmarks.report import json_safe
from lightseg.errors import LightsegError
from lightseg.export.int8_mixed import Probe, search
from lightseg.judge.verdict import load_tolerances


def _gate(dice_min: float | None) -> dict:
    """The shipped tolerances with the int8 gate replaced by one limit on the worst slice's Dice
    (a metric without an interval, so a small set can pass it)."""
    tol = copy.deepcopy(load_tolerances())
    tol["int8"] = {"min": {} if dice_min is None else {"dice_ref_min": dice_min}}
    return tol


@pytest.fixture(scope="module")
def probe(tiny_probe_data, tmp_path_factory):
    import torch

    ck, calib, vset, ref = tiny_probe_data
    work = tmp_path_factory.mktemp("probe")
    torch.onnx.export(ck.model, (torch.zeros(1, 3, 32, 32),), str(work / "m.onnx"),
                      input_names=["image"], output_names=["logits"], dynamo=False)  # fmt: skip
    return Probe(work / "m.onnx", calib, vset.x, ref, vset.masks, work)


def test_search_stops_at_the_first_step_that_passes(probe):
    order = list(probe.units)[::-1][:3]
    never = search(probe, order, _gate(1.01), max_units=3)
    assert not never["gate_met"] and len(never["steps"]) == 4
    assert [s["float_units"] for s in never["steps"]] == [order[:k] for k in range(4)]
    dice = [s["dice_ref_min"] for s in never["steps"]]
    limit = max(dice[1:])
    first = next(k for k, d in enumerate(dice) if d >= limit)
    res = search(probe, order, _gate(limit), max_units=3)
    assert res["gate_met"] and len(res["steps"]) == first + 1
    assert res["float_units"] == order[:first] and res["steps"][-1]["status"] == "pass"
    assert search(probe, order, _gate(None))["steps"][0]["float_units"] == []


def test_unit_macs_are_the_models_conv_macs(probe, tiny_probe_data):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        tiny_probe_data[0].model(torch.zeros(1, 3, 32, 32))
    conv_flops = sum(v for k, v in fc.get_flop_counts()["Global"].items() if "conv" in str(k))
    assert sum(probe.macs.values()) == conv_flops // 2
    assert probe.mac_share(probe.units) == pytest.approx(1.0)
    assert all(probe.macs[u] == 0 for u in probe.units if "MaxPool" in u or "Concat" in u)


def test_keep_must_be_known(probe):
    with pytest.raises(LightsegError, match="keep"):
        search(probe, [], _gate(None), keep="fp8")


def test_the_auto_tune_evidence_carries_the_per_layer_choices(tiny_export):
    from lightseg.pipeline.autotune import _row

    o = tiny_export.artifact("onnx-int8-mixed").options
    layers = _row(None, None, tiny_export.artifact("onnx-int8-mixed"))["layers"]
    assert layers["float_units"] == o["float_units"] and layers["float_macs"] == o["float_macs"]
    assert layers["calibration"] == "minmax" and layers["a16_tensors"] == o["a16_tensors"]
    assert "float_units" not in _row(None, None, tiny_export.artifact("onnx-fp32"))["layers"]
    ov = tiny_export.artifact("openvino-int8-mixed")  # the IR of the same mix carries its choices
    assert _row(None, None, ov)["layers"] == layers


@pytest.mark.parametrize("name", ["onnx-int8-mixed", "onnx-int8-trt-mixed"])
def test_the_mixed_artifact_records_its_search_and_its_float_nodes_are_float(tiny_export, name):
    art = tiny_export.artifact(name)
    o = art.options
    assert o["calibration"] == "minmax"  # the export's --calibration
    steps = o["search"]
    assert all(st["float_macs"] <= 0.5 for st in steps) and o["float_macs"] <= 0.5
    if o["free_units"] and len(steps) > 1:
        assert steps[1]["float_units"][0] in o["free_units"]  # free units go float first
    assert o["search"] and o["search"][0]["float_units"] == []
    assert o["float_units"] == o["search"][-1]["float_units"] or not o["gate_met_in_search"]
    assert art.verification.get("status") in ("pass", "fail", "undecided")
    g = onnx.load(str(tiny_export.path_of(art))).graph
    dq_out = {x for n in g.node if n.op_type == "DequantizeLinear" for x in n.output}
    for n in g.node:
        if n.name in o["float_nodes"] and n.op_type in ("Conv", "ConvTranspose"):
            assert n.input[1] not in dq_out, n.name


def test_the_tensorrt_mix_is_zero_point_0_int8_and_its_engine_recipe_builds_it(tiny_export):
    from lightseg.export import tensorrt
    from lightseg.pipeline.autotune import FAMILIES

    art = tiny_export.artifact("onnx-int8-trt-mixed")
    path = tiny_export.path_of(art)
    assert art.options["activations"] == tensorrt.ACTIVATIONS
    assert "fp16" in art.options["float_units_run"]
    ready = tensorrt.readiness(path)  # int8 only, every zero point 0: TensorRT's QDQ
    ops = ready["op_counts"]
    assert ready["status"] == "passed" and ops["QuantizeLinear"] > 0
    assert ops.get("Sub", 0) > 0  # its int8 convs read their inputs offset onto uint8 grids
    convs = {
        n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "ConvTranspose")
    }
    searched = {u for st in art.options["search"] for u in st["float_units"]}
    searched |= set(art.options["free_units"])
    assert searched <= convs  # max-pools and concats carry no QDQ here: nothing to keep float
    engine = tiny_export.artifact("tensorrt-int8-mixed")
    assert engine.precision == "int8" and engine.options["onnx"] == path.name
    if not tensorrt.available():
        script = (tiny_export.root / engine.path).read_text()
        assert "--onnx=../model-int8-trt-mixed.onnx" in script
        assert "--saveEngine=model-int8-mixed.engine" in script
    jetson = {a.name for a in FAMILIES["jetson"].select(tiny_export)}
    assert jetson == {"onnx-int8-trt", "onnx-int8-trt-mixed"}


def test_the_report_reads_the_jetson_file_as_the_fp32_tensors_it_stands_for(tiny_export, tmp_path):
    """The TensorRT file quantizes offset (shifted, padded, renamed) conv inputs: the report
    restores them, so each conv input has its SQNR, and the grids it pins for sensitivity are
    those of the uint8 conv-inputs file calibrated alike."""
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set
    from lightseg.export.quantize import quantize_int8

    fp32 = tiny_export.root / "model.onnx"
    g = onnx.load(str(fp32)).graph
    reads = {n.input[0] for n in g.node if n.op_type in ("Conv", "ConvTranspose")} - {"image"}
    rep = D.build_report(tiny_export.root, "onnx-int8-trt", n=4, sensitivity=False, openvino=False)
    assert reads <= set(rep["tensors"])
    assert all(0 < rep["tensors"][t]["tensor_db"] < 80 for t in reads)
    calib = input_set("calibration", Preprocessing.from_dict(tiny_export.preprocessing), 8).x
    quantize_int8(fp32, tmp_path / "u8.onnx", calib, "minmax", conv_inputs_only=True)
    trt = D.qdq_overrides(tiny_export.root / "model-int8-trt.onnx")
    u8 = D.qdq_overrides(tmp_path / "u8.onnx")
    for t in reads:
        (a,), (b,) = trt[t], u8[t]
        assert a["zero_point"] == b["zero_point"] and a["zero_point"].dtype == np.uint8, t
        assert float(a["scale"]) == pytest.approx(float(b["scale"]), rel=1e-6), t


@pytest.fixture(scope="module")
def report(tiny_export):
    return D.build_report(tiny_export.root, "onnx-int8", n=4, openvino=True)


def test_every_quantized_tensor_has_a_finite_sqnr(report):
    assert report["tensors"]
    for name, e in report["tensors"].items():
        assert math.isfinite(e["tensor_db"]) and math.isfinite(e["accumulated_db"]), name
    assert all(math.isfinite(v) for v in report["weights"].values())


def test_the_input_has_no_upstream_error(report):
    e = report["tensors"]["image"]  # fp32 and int8 models see the same input
    assert e["accumulated_db"] == pytest.approx(e["tensor_db"], abs=1e-6)
    assert D.sqnr_db(1.0, 0.0) > 300  # identical tensors: the clamped "infinite" SQNR


def test_sensitivity_rows_cover_every_unit(report):
    units = report["units"]
    assert len(units) == 24 and all(r["int8"] for r in units)
    for r in units:
        for key in ("alone", "all_but"):
            assert 0.0 <= r[key]["dice_ref_mean"] <= 1.0
    json.dumps(json_safe(report))


def test_openvino_sqnr_is_measured_where_names_map(report):
    ov = report["openvino"]
    if ov["status"] == "skipped":
        pytest.skip(ov["reason"])
    assert ov["accumulated_db"] and all(math.isfinite(v) for v in ov["accumulated_db"].values())


def test_a_float_unit_has_no_error(tiny_export, tmp_path):
    art = tiny_export.artifact("onnx-int8-mixed")
    if not art.options["float_units"]:
        pytest.skip("the tiny model met the gate with every unit int8")
    rep = D.build_report(tiny_export.root, "onnx-int8-mixed", n=2, sensitivity=False,
                         openvino=False)  # fmt: skip
    rows = {r["unit"]: r for r in rep["units"]}
    fp32 = onnx.load(str(tiny_export.root / "model.onnx")).graph
    heads = {n.name: n for n in fp32.node}
    for unit in art.options["float_units"]:
        assert not rows[unit]["int8"]
        if heads[unit].op_type == "Conv":
            assert heads[unit].input[1] not in rep["weights"]  # its weights stay fp32


def test_cli_writes_json_png_and_html(tiny_export, tmp_path, capsys):
    from lightseg.cli import main

    out = tmp_path / "r"
    rc = main(["int8-report", str(tiny_export.root), "--n", "2", "--no-sensitivity",
               "--no-openvino", "--json", f"{out}.json", "--png", f"{out}.png",
               "--html", f"{out}.html"])  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "r.json").read_text())["kind"] == "lightseg-int8-divergence"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    capsys.readouterr()
    rc = main(["int8-report", str(tiny_export.root), "--artifact", "onnx-fp32"])
    err = capsys.readouterr().err
    assert rc == 2 and "int8" in err and len(err.strip().splitlines()) == 1


def test_compare_shows_two_artifacts_side_by_side(tiny_export, tmp_path, capsys):
    from lightseg.cli import main

    root = str(tiny_export.root)
    args = ["--n", "2", "--no-sensitivity", "--no-openvino"]
    assert main(["int8-report", root, *args, "--json", str(tmp_path / "naive.json")]) == 0
    capsys.readouterr()
    rc = main(["int8-report", root, "--artifact", "onnx-int8-mixed", *args, "--compare",
               str(tmp_path / "naive.json"), "--png", str(tmp_path / "both.png"), "--html",
               str(tmp_path / "both.html")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "onnx-int8 vs onnx-int8-mixed" in " ".join(out.split())
    naive = json.loads((tmp_path / "naive.json").read_text())
    mixed = D.build_report(tiny_export.root, "onnx-int8-mixed", n=2, sensitivity=False,
                           openvino=False)  # fmt: skip
    pairs = D.paired_units(naive, mixed)
    assert len(pairs) == 24 and all(a["op"] == b["op"] for a, b in pairs)
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"
    assert "Side by side" in (tmp_path / "both.html").read_text()
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    rc = main(["int8-report", root, *args, "--compare", str(tmp_path / "bad.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a lightseg int8-report" in err and len(err.strip().splitlines()) == 1


def test_the_search_never_sees_the_slices_that_judge_the_mix(tiny_export):
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set

    o = tiny_export.artifact("onnx-int8-mixed").options
    ver = tiny_export.extra["input_sets"]["verification"]
    assert o["search_set"]["name"] == "search" and o["search_set"]["n"] == ver["n"]
    pre = Preprocessing.from_dict(tiny_export.preprocessing)
    seen = input_set("search", pre, o["search_set"]["n"])
    judged = input_set("verification", pre, ver["n"])
    assert not set(seen.volume_seeds) & set(judged.volume_seeds)


def test_the_jetson_tune_judges_both_tensorrt_files_and_keeps_the_smallest_that_passes(
    tiny_export, tmp_path
):
    import contextlib
    import shutil

    from lightseg.artifact import load_manifest
    from lightseg.errors import GateFailed
    from lightseg.pipeline.autotune import tune

    folder = shutil.copytree(tiny_export.root, tmp_path / "x")
    lines: list[str] = []
    with contextlib.suppress(GateFailed):  # the tiny model's files may pass or not
        tune(folder, "jetson", say=lines.append)
    ev = load_manifest(folder).extra["auto_tune"]["jetson"]
    rows = {r["name"]: r for r in ev["rows"]}
    assert set(rows) == {"onnx-int8-trt", "onnx-int8-trt-mixed"}
    assert all(r["p50_ms"] is None and r["parity"] in ("pass", "fail", "undecided")
               for r in rows.values())  # fmt: skip
    passing = [r for r in rows.values() if r["passed"]]
    smallest = min(passing, key=lambda r: r["size_bytes"])["name"] if passing else None
    assert ev["chosen"] == smallest and ev["rule"].startswith("smallest file")
    assert "not timed" in lines[0]
