"""TensorRT QDQ with offsets: zero points 0, each conv input on the uint8 file's grid."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.sets import input_set
from lightseg.export import quantize as Q
from lightseg.export.trt_offset import Grid, conv_input_grids, offset_graph, quantize_offset
from lightseg.runtimes.ort import run_model


@pytest.fixture(scope="module")
def files(ort_export, tmp_path_factory):
    """The tiny model's preprocessed fp32 graph, its uint8 conv-inputs file, the offset file and
    the plain symmetric one, all from the same calibration; and the verification images."""
    pre = Preprocessing.from_dict(ort_export.preprocessing)
    calib = input_set("calibration", pre, 8).x
    tmp = tmp_path_factory.mktemp("offset")
    prep = Q.preprocess(ort_export.root / "model.onnx", tmp / "prep.onnx")
    out = {"prep": prep, "x": input_set("verification", pre).x}
    kw = dict(cache=tmp / "calib.json", conv_inputs_only=True, preprocessed=True)
    Q.quantize_int8(prep, tmp / "uint8.onnx", calib, "minmax", **kw)
    Q.quantize_int8(prep, tmp / "sym.onnx", calib, "minmax", symmetric=True, **kw)
    quantize_offset(prep, tmp / "offset.onnx", calib, "minmax", cache=tmp / "calib.json",
                    preprocessed=True)  # fmt: skip
    return out | {k: tmp / f"{k}.onnx" for k in ("uint8", "sym", "offset")}


def test_offsets_are_exact_in_float(files, tmp_path):
    """With the float weights folded, the rewritten graph computes the fp32 model: the offset,
    the -m padding and the bias (or ConvTranspose pattern) cancel."""
    g = onnx.load(str(files["prep"])).graph
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = {n.name: n.input[1] for n in g.node if n.op_type in Q.CONV_OPS}
    grids = {
        k: Grid(v.scale, v.zero_point, weights[convs[k]])
        for k, v in conv_input_grids(files["uint8"]).items()
    }
    assert set(grids) == set(convs) and any(v.offset != 0 for v in grids.values())
    dst = tmp_path / "offset-fp32.onnx"
    offset_graph(files["prep"], dst, grids)
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert ops.count("Pad") == ops.count("Conv") - 1  # the 1x1 head has no padding
    assert ops.count("Tile") == ops.count("ConvTranspose") > 0
    ref, got = run_model(files["prep"], files["x"]), run_model(dst, files["x"])
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def _conv_input_qdq(path) -> dict[str, tuple[float, int]]:
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    made = {o: n for n in g.node for o in n.output}
    return {
        n.name: (float(inits[d.input[1]]), inits[d.input[2]])
        for n in g.node
        if n.op_type in Q.CONV_OPS and (d := made[n.input[0]]).op_type == "DequantizeLinear"
    }


def test_offset_file_is_the_uint8_grid_with_zero_points_0(files):
    """Every conv input keeps the uint8 file's scale with an int8 zero point 0 (TensorRT-legal),
    and the logits follow the uint8 file far closer than the plain symmetric file does."""
    from lightseg.export.tensorrt import readiness

    assert readiness(files["offset"])["status"] == "passed"
    assert readiness(files["uint8"])["status"] == "failed"
    u8, off = _conv_input_qdq(files["uint8"]), _conv_input_qdq(files["offset"])
    assert set(off) == set(u8)
    for conv, (scale, zp) in off.items():
        assert zp.dtype == np.int8 and zp == 0
        assert scale == pytest.approx(u8[conv][0], rel=1e-6)
    ref = run_model(files["uint8"], files["x"])
    d_off = np.abs(run_model(files["offset"], files["x"]) - ref)
    d_sym = np.abs(run_model(files["sym"], files["x"]) - ref)
    print(f"logits vs uint8: offset max {d_off.max():.4g} mean {d_off.mean():.4g}; "
          f"symmetric max {d_sym.max():.4g} mean {d_sym.mean():.4g}")  # fmt: skip
    assert d_off.mean() < 0.1 * d_sym.mean()
