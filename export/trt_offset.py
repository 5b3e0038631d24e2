"""TensorRT int8 that keeps each conv input's asymmetric grid: an offset folded into the conv.

TensorRT's explicit quantization takes int8 with zero point 0. A Swish output lies in about
[-0.28, hi] and the image in [0, 1]: a symmetric range wastes half of their 256 codes. This
module re-expresses the asymmetric (uint8) quantization of a conv input, scale ``s`` and zero
point ``z``, with zero point 0: the conv reads ``y' = y - m``, ``m = s * (128 - z)``, whose int8
code is the uint8 code minus 128 (same grid, same clip range). The conv then gets

- explicit padding with ``-m`` (where ``y`` was 0), its own pads set to 0;
- bias ``b + m * sum(W_q)`` over input channels and kernel, ``W_q`` the int8 weights as
  dequantized, so the fold is exact for the int8 conv;
- a ConvTranspose (kernel = stride, no pads) the pattern ``m * sum_c W_q[c, o, i, j]``, periodic
  in the kernel, tiled to its output and added (a Tile of two initializers: constant).

The file is the uint8 conv-inputs file (``quantize_int8(conv_inputs_only=True)``, every
calibration method) made TensorRT-legal; its float ops (Sub, Pad, Tile, Add) are pointwise or
constant. A conv whose shape the rewrite does not cover keeps a symmetric range.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lightseg.export import quantize as Q


class Grid(NamedTuple):
    """The uint8 quantization of one conv input and the conv's dequantized int8 weights."""

    scale: np.float32
    zero_point: int
    weight: np.ndarray

    @property
    def offset(self) -> np.float32:
        return np.float32(self.scale * np.float32(128 - self.zero_point))


def conv_input_grids(path: Path) -> dict[str, Grid]:
    """{conv node name: Grid} of a uint8 QDQ file with QDQ on conv inputs (float convs left out)."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    made = {o: n for n in g.node for o in n.output}
    out = {}
    for n in g.node:
        dx, dw = made.get(n.input[0]), made.get(n.input[1]) if len(n.input) > 1 else None
        if n.op_type not in Q.CONV_OPS or not dx or not dw or dx.op_type != "DequantizeLinear":
            continue
        s, z = inits[dx.input[1]], inits[dx.input[2]]
        out[n.name] = Grid(np.float32(s), int(z), Q.dequantized(dw, inits).astype(np.float32))
    return out


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _covered(node, shape: list[int] | None) -> bool:
    """Whether the rewrite covers this conv: explicit pads, group 1; a ConvTranspose with kernel =
    stride, no pads and a static output shape."""
    a = _attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("group", 1) != 1:
        return False
    if node.op_type == "Conv":
        return True
    k = list(a.get("kernel_shape", []))
    return (
        len(k) == 2
        and list(a.get("strides", [])) == k
        and not any(a.get("pads", [])) and not any(a.get("output_padding", []))
        and shape is not None and all(d > 0 for d in shape[2:])
        and shape[2] % k[0] == 0 and shape[3] % k[1] == 0
    )  # fmt: skip


def _pin(scale: np.float32) -> list[dict]:
    return [{"scale": np.array(scale, np.float32), "zero_point": np.array(0, np.int8)}]


def offset_graph(prep: Path, dst: Path, grids: dict[str, Grid]) -> dict[str, list[dict]]:
    """Write ``prep`` with each covered conv input offset onto its grid (see the module doc);
    returns the TensorQuantOverrides that pin every conv input's int8 scale, zero point 0."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(prep))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    dims = {v.name: v.type.tensor_type.shape.dim for v in [*g.value_info, *g.output]}
    shapes = {
        k: [x.dim_value if x.HasField("dim_value") else -1 for x in d] for k, d in dims.items()
    }
    nodes, pins, shifted = [], {}, {}

    def const(name: str, value: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(value, name))
        return name

    for n in list(g.node):
        grid = grids.get(n.name)
        if grid is None:
            nodes.append(n)
            continue
        x, m = n.input[0], grid.offset
        if m == 0 or not _covered(n, shapes.get(n.output[0])):
            lo, hi = grid.scale * -grid.zero_point, grid.scale * (255 - grid.zero_point)
            rng = {"rmin": np.array(lo, np.float32), "rmax": np.array(hi, np.float32)}
            pins[x] = _pin(grid.scale) if m == 0 else [rng]  # not covered: the range, symmetric
            nodes.append(n)
            continue
        if x not in shifted:
            shifted[x] = f"{x}_offset"
            m_name = const(f"{x}_offset_m", np.array(m, np.float32))
            nodes.append(helper.make_node("Sub", [x, m_name], [shifted[x]], name=f"{x}_offset"))
        xin, a = shifted[x], _attrs(n)
        if n.op_type == "Conv":
            pads = list(a.get("pads", []))
            if any(pads):
                half = len(pads) // 2
                full = [0, 0, *pads[:half], 0, 0, *pads[half:]]
                p = const(f"{n.name}_offset_pads", np.array(full, np.int64))
                v = const(f"{n.name}_offset_value", np.array(-m, np.float32))
                nodes.append(
                    helper.make_node("Pad", [xin, p, v], [f"{n.name}_offset_padded"],
                                     name=f"{n.name}_offset_pad", mode="constant")
                )  # fmt: skip
                xin = f"{n.name}_offset_padded"
                for att in n.attribute:
                    if att.name == "pads":
                        att.ints[:] = [0] * len(pads)
            bias = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 else 0.0
            taps = tuple(range(1, grid.weight.ndim))  # input channels and kernel
            folded = bias + np.float64(m) * grid.weight.astype(np.float64).sum(taps)
            b_name = const(f"{n.name}_offset_bias", folded.astype(np.float32))
            n.input[0] = xin
            del n.input[2:]
            n.input.append(b_name)
            nodes.append(n)
        else:  # ConvTranspose, kernel = stride: each output pixel reads one kernel tap per input
            out, k = n.output[0], list(a["kernel_shape"])
            h, w = shapes[out][2:]
            pattern = (np.float64(m) * grid.weight.astype(np.float64).sum(0))[None]
            pat = const(f"{n.name}_offset_pattern", pattern.astype(np.float32))
            reps = const(f"{n.name}_offset_repeats", np.array([1, 1, h // k[0], w // k[1]]))
            n.input[0], n.output[0] = xin, f"{out}_offset_raw"
            nodes += [
                n,
                helper.make_node("Tile", [pat, reps], [f"{out}_offset_tiled"],
                                 name=f"{n.name}_offset_tile"),
                helper.make_node("Add", [n.output[0], f"{out}_offset_tiled"], [out],
                                 name=f"{n.name}_offset_add"),
            ]  # fmt: skip
        pins[xin] = _pin(grid.scale)
    del g.node[:]
    g.node.extend(nodes)
    onnx.save(model, str(dst))
    return pins


class Source(NamedTuple):
    """What an offset tensor of the file stands for: ``tensor`` of the fp32 graph, less
    ``offset``, padded by ``pads`` (spatial begins then ends; () where the conv has none)."""

    tensor: str
    offset: float
    pads: tuple[int, ...] = ()

    def undo(self, value: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
        """The fp32 tensor's values (``dims``: its C, H, W) from the offset tensor's, flattened
        or not: crop the padding, add the offset back."""
        if not self.pads:
            return value + np.float32(self.offset)
        half = len(self.pads) // 2
        begins, ends = self.pads[:half], self.pads[half:]
        padded = [d + b + e for d, b, e in zip(dims[1:], begins, ends, strict=True)]
        v = value.reshape(-1, dims[0], *padded)
        crop = tuple(slice(b, b + d) for b, d in zip(begins, dims[1:], strict=True))
        out = v[(..., *crop)] + np.float32(self.offset)
        return out.reshape(-1) if value.ndim == 1 else out


def offset_sources(graph) -> dict[str, Source]:
    """{offset tensor: Source} of a graph :func:`offset_graph` wrote (empty for any other): how
    a divergence report matches the Jetson file's quantized tensors to the fp32 model's."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    out = {}
    for n in graph.node:
        if n.op_type == "Sub" and n.input[1] == f"{n.input[0]}_offset_m":
            out[n.output[0]] = Source(n.input[0], float(numpy_helper.to_array(inits[n.input[1]])))
    for n in graph.node:
        if n.op_type == "Pad" and n.input[0] in out and n.input[1] in inits:
            p = numpy_helper.to_array(inits[n.input[1]]).tolist()
            half = len(p) // 2
            out[n.output[0]] = out[n.input[0]]._replace(pads=(*p[2:half], *p[half + 2 :]))
    return out


def quantize_offset(
    src: Path,
    dst: Path,
    calib: np.ndarray,
    method: str,
    *,
    cache: Path | None = None,
    overrides: dict | None = None,
    float_nodes: tuple[str, ...] = (),
    only_nodes: tuple[str, ...] = (),
    preprocessed: bool = False,
) -> list[str]:
    """TensorRT QDQ (int8, zero points 0, on conv inputs) of ``src`` with the uint8 grid that
    ``quantize_int8(conv_inputs_only=True)`` gives each conv input (``method``, ``overrides``),
    kept by offsets; returns the node names left in float. Every conv input's scale is pinned, so
    the second quantization calibrates nothing (one image)."""
    with tempfile.TemporaryDirectory(prefix=".offset.", dir=dst.parent) as tmp:
        prep = Path(src) if preprocessed else Q.preprocess(src, Path(tmp) / "prep.onnx")
        asym = Path(tmp) / "uint8.onnx"
        excluded = Q.quantize_int8(
            prep, asym, calib, method, cache=cache, float_nodes=float_nodes,
            only_nodes=only_nodes, conv_inputs_only=True, overrides=overrides, preprocessed=True,
        )  # fmt: skip
        shifted = Path(tmp) / "offset.onnx"
        pins = offset_graph(prep, shifted, conv_input_grids(asym))
        Q.quantize_int8(
            shifted, dst, calib[:1], "minmax", symmetric=True, float_nodes=float_nodes,
            only_nodes=only_nodes, conv_inputs_only=True, overrides=pins, preprocessed=True,
        )  # fmt: skip
    return excluded
