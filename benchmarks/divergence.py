"""``lightseg int8-report``: which layer makes an int8 artifact's masks differ from fp32?

For an ORT QDQ artifact, per activation tensor (as onnxruntime.quantization.qdq_loss_debug
measures it, accumulated over the images one at a time):

- ``tensor_db``: SQNR of that tensor's own quantize-dequantize (ORT's ``qdq_err``): the rounding
  and clipping added at this tensor, on the values the int8 model computed upstream;
- ``accumulated_db``: SQNR of the int8 model's tensor against the fp32 model's (ORT's
  ``xmodel_err``): every error from the input up to here.

Per conv weight: SQNR of its int8 per-channel weights. Per unit (a conv with its Swish, or
another quantizable node): mean mask Dice against fp32 with only that unit quantized ("alone")
and with every unit but that one ("all but": what keeping it float buys), using the artifact's
own scales. Optionally the accumulated SQNR of the OpenVINO IR converted from the artifact,
matched to the fp32 ONNX tensors by name. The reference is the export's fp32 ONNX model
(verified against PyTorch at export).
"""

from __future__ import annotations

import base64
import html as h
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from lightseg.benchmarks.report import json_safe
from lightseg.console import console
from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.export.calibrate import SAVED
from lightseg.fileio import atomic_write_bytes, atomic_write_text

COLUMNS = ("unit", "op", "weight dB", "tensor dB", "accum dB", "OV accum dB", "Dice alone",
           "Dice all-but", "int8")  # fmt: skip
EPS = float(np.finfo(float).eps)
SQNR_CAP = 60  # dB shown at most in the chart


def sqnr_db(signal: float, noise: float) -> float:
    """20 log10(||x|| / ||x - y||) from the sums of squares, clamped like ORT's."""
    return 20 * math.log10(max(math.sqrt(signal), EPS) / max(math.sqrt(noise), EPS))


def _augmented(model: Path, tmp: Path):
    """A session returning every float tensor of ``model`` (and its input name)."""
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    from lightseg.runtimes.ort import session

    aug = tmp / f"{model.stem}.aug.onnx"
    modify_model_output_intermediate_tensors(str(model), str(aug))
    return session(aug, level="disable")


def _tensors(sess, x1: np.ndarray) -> dict[str, list[np.ndarray]]:
    names = [o.name for o in sess.get_outputs()]
    out = sess.run(None, {sess.get_inputs()[0].name: x1})
    pairs = zip(names, out, strict=True)
    return {n.removesuffix(SAVED): [v] for n, v in pairs if n.endswith(SAVED)}


def _as_fp32_tensors(acts: dict[str, list[np.ndarray]], sources: dict, dims: dict) -> dict:
    """The Jetson file's offset tensors (and their QDQ) renamed and restored to the fp32 tensors
    they stand for (:func:`lightseg.export.trt_offset.offset_sources`; ``dims``: their C, H, W)."""
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX

    out = dict(acts)
    for name, vals in acts.items():
        for suffix in (DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX, ""):
            src = sources.get(name.removesuffix(suffix)) if name.endswith(suffix) else None
            if src is not None and src.tensor in dims:
                out[src.tensor + suffix] = [src.undo(v, dims[src.tensor]) for v in vals]
                break
    return out


def _dims(graph) -> dict[str, tuple[int, ...]]:
    """Per-image dims (C, H, W) of the graph's 4-D tensors whose shape is known."""
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    return {k: tuple(s[1:]) for k, s in shapes.items() if len(s) == 4 and all(s[1:])}


def activation_sqnr(fp32: Path, int8: Path, x: np.ndarray) -> dict[str, dict]:
    """Per quantized activation tensor: ``tensor_db`` and ``accumulated_db`` over ``x``."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

    from lightseg.export.trt_offset import offset_sources

    sums: dict[str, np.ndarray] = {}
    graph = onnx.load(str(int8)).graph
    sources, dims = offset_sources(graph), _dims(graph)
    with tempfile.TemporaryDirectory(prefix="lightseg-div.") as tmp:
        sf = _augmented(fp32, Path(tmp))
        sq = _augmented(int8, Path(tmp))
        for i in range(len(x)):
            x1 = x[i : i + 1]
            q = _as_fp32_tensors(_tensors(sq, x1), sources, dims)
            match = create_activation_matching(q, _tensors(sf, x1))
            for name, m in match.items():
                pre, post = m["pre_qdq"][0].astype(np.float64), m["post_qdq"][0]
                f = m.get("float", [pre])[0].astype(np.float64)
                acc = sums.setdefault(name, np.zeros(4))
                acc[:2] += [(pre**2).sum(), ((pre - post) ** 2).sum()]
                acc[2:] += [(f**2).sum(), ((f - post) ** 2).sum()]
    return {
        k: {"tensor_db": sqnr_db(s[0], s[1]), "accumulated_db": sqnr_db(s[2], s[3])}
        for k, s in sums.items()
    }


def weight_sqnr(fp32: Path, int8: Path) -> dict[str, float]:
    """SQNR of every quantized weight and bias against the fp32 initializer of its name (as ORT's
    create_weight_matching pairs them; a folded bias of the Jetson file has no fp32 twin)."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX

    from lightseg.export.quantize import dequantized

    floats = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32)).graph.initializer}
    graph = onnx.load(str(int8)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out = {}
    for n in graph.node:
        name = n.output[0].removesuffix(DEQUANT_OUTPUT_SUFFIX)
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits or name not in floats:
            continue
        d, f = dequantized(n, inits), floats[name].astype(np.float64)
        out[name] = sqnr_db(float((f**2).sum()), float(((f - d.reshape(f.shape)) ** 2).sum()))
    return out


def openvino_sqnr(fp32: Path, int8: Path, x: np.ndarray, threads: int = 2) -> dict[str, float]:
    """Accumulated SQNR of the OpenVINO IR of ``int8`` (f32 precision) per fp32 tensor name."""
    import onnx

    from lightseg.runtimes.base import require

    ov = require("openvino", "pip install 'lightseg[openvino]'")
    core = ov.Core()
    model = core.read_model(str(int8))
    graph = onnx.load(str(fp32)).graph
    wanted = [o for n in graph.node for o in n.output]
    ports = {}
    for op in model.get_ops():
        for out in op.outputs():
            for name in out.get_names() & set(wanted):
                ports.setdefault(name, out)
    model.add_outputs(list(ports.values()))
    props = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    compiled = core.compile_model(model, "CPU", props)
    index = {n: i for i, o in enumerate(compiled.outputs) for n in o.get_names() if n in ports}
    sums = {n: np.zeros(2) for n in index}
    with tempfile.TemporaryDirectory(prefix="lightseg-div.") as tmp:
        sf = _augmented(fp32, Path(tmp))
        for i in range(len(x)):
            ref = _tensors(sf, x[i : i + 1])
            res = compiled(x[i : i + 1])
            for n, j in index.items():
                if n not in ref:
                    continue
                f = ref[n][0].astype(np.float64)
                y = np.asarray(res[compiled.outputs[j]]).reshape(-1)
                sums[n] += [(f**2).sum(), ((f - y) ** 2).sum()]
    return {n: sqnr_db(*s) for n, s in sums.items() if s[0] > 0}


def qdq_overrides(int8: Path) -> dict[str, list[dict]]:
    """TensorQuantOverrides reproducing the artifact's activation scales and zero points (the
    Jetson file's offset tensors as the uint8 grids of the fp32 tensors they stand for)."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType

    from lightseg.export.trt_offset import offset_sources

    graph = onnx.load(str(int8)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    sources = offset_sources(graph)
    out: dict[str, list[dict]] = {}
    for n in graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        scale, zp, name = inits[n.input[1]].astype(np.float32), inits[n.input[2]], n.input[0]
        if name in sources:  # int8 code = uint8 code - 128, offset m = s (128 - z)
            name, z = sources[name].tensor, 128 - round(sources[name].offset / float(scale))
            zp = np.array(z, np.uint8)
        entry = {"scale": scale, "zero_point": zp}
        if zp.dtype == np.uint16:
            entry["quant_type"] = QuantType.QUInt16
        out[name] = [entry]
    return out


def _label(unit: str) -> str:
    return unit.strip("/").removesuffix("/Conv").removesuffix("/ConvTranspose")


def unit_rows(
    fp32: Path, act: dict, weights: dict, sens: list[dict] | None, float_nodes=()
) -> list[dict]:
    """One row per unit: its output tensor's SQNR, its weight's, and its sensitivity."""
    import onnx

    from lightseg.export.quantize import layer_units

    graph = onnx.load(str(fp32)).graph
    by_name = {n.name: n for n in graph.node}
    sens_by = {r["unit"]: r for r in sens or []}
    rows = []
    for unit, nodes in layer_units(graph).items():
        head, last = by_name[nodes[0]], by_name[nodes[-1]]
        out = last.output[0]
        row = {
            "unit": unit,
            "label": _label(unit),
            "op": head.op_type,
            "nodes": nodes,
            "output": out,
            "weight_db": weights.get(head.input[1]) if len(head.input) > 1 else None,
            **act.get(out, {}),
            "int8": not set(nodes) & set(float_nodes),
        }
        if unit in sens_by:
            row["alone"] = sens_by[unit].get("alone")
            row["all_but"] = sens_by[unit]["all_but"]
        rows.append(row)
    return rows


def _artifact(export_dir: Path, name: str):
    from lightseg.artifact import load_manifest

    man = load_manifest(export_dir)
    art = man.artifact(name)
    if (art.backend, art.format, art.precision) != ("onnxruntime", "onnx", "int8"):
        raise LightsegError(
            f"int8-report reads ORT QDQ int8 ONNX artifacts; {name} is "
            f"{art.backend} {art.format} {art.precision}"
        )
    return man, man.verify(art), man.verify(man.artifact("onnx-fp32")), art


def build_report(
    export_dir: Path,
    artifact: str = "onnx-int8",
    n: int | None = None,
    sensitivity: bool = True,
    openvino: bool = True,
    threads: int = 2,
    progress=None,
) -> dict:
    """The divergence report of one int8 artifact of an export folder (a JSON-ready dict)."""
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set
    from lightseg.export.int8_mixed import Probe, logits
    from lightseg.export.int8_mixed import sensitivity as unit_sensitivity
    from lightseg.judge.verdict import load_tolerances

    say = progress or (lambda _: None)
    man, int8, fp32, art = _artifact(Path(export_dir), artifact)
    pre = Preprocessing.from_dict(man.preprocessing)
    vset = input_set("verification", pre, n)
    say(f"per-tensor SQNR on {vset.label()}")
    act = activation_sqnr(fp32, int8, vset.x)
    weights = weight_sqnr(fp32, int8)
    sens = None
    if sensitivity:
        ref = logits(fp32, vset.x, threads)
        calib = input_set("calibration", pre, min(len(vset), 8)).x
        with tempfile.TemporaryDirectory(prefix="lightseg-div.") as tmp:
            probe = Probe(fp32, calib, vset.x, ref, vset.masks, Path(tmp), threads=threads)
            probe.overrides = qdq_overrides(int8)
            probe.float_nodes = tuple(art.options.get("float_nodes", ()))
            sens = unit_sensitivity(probe, load_tolerances(), alone=True, progress=say)
    ov: dict = {"status": "not run"}
    if openvino:
        say("OpenVINO per-tensor SQNR")
        try:
            ov = {"status": "ok", "accumulated_db": openvino_sqnr(fp32, int8, vset.x, threads)}
        except BackendUnavailable as e:
            ov = {"status": "skipped", "reason": str(e)}
    return {
        "kind": "lightseg-int8-divergence",
        "artifact": art.name,
        "options": {k: art.options.get(k) for k in ("calibration", "float_units", "float_nodes")},
        "verification": art.verification,
        "inputs": vset.describe(),
        "reference": "onnx-fp32 (ORT CPU)",
        "units": unit_rows(fp32, act, weights, sens, art.options.get("float_nodes", ())),
        "tensors": act,
        "weights": weights,
        "openvino": ov,
    }


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _dice(row: dict, key: str) -> float | None:
    return (row.get(key) or {}).get("dice_ref_mean")


def print_table(rep: dict) -> None:
    ov = rep["openvino"].get("accumulated_db", {})
    n = rep["inputs"]["n"]
    t = Table(title=f"{rep['artifact']}: per-layer divergence from fp32 ({n} images)")
    for col in COLUMNS:
        t.add_column(col, justify="left" if col == "unit" else "right")
    for r in rep["units"]:
        t.add_row(
            r["label"], r["op"], _f(r["weight_db"], ".1f"), _f(r.get("tensor_db"), ".1f"),
            _f(r.get("accumulated_db"), ".1f"), _f(ov.get(r["output"]), ".1f"),
            _f(_dice(r, "alone"), ".4f"), _f(_dice(r, "all_but"), ".4f"),
            "yes" if r["int8"] else "float",
        )  # fmt: skip
    console.print(t)


def print_side_by_side(base: dict, rep: dict) -> None:
    """Accumulated SQNR per unit of ``base`` and ``rep`` and the change."""
    t = Table(title=f"{base['artifact']} vs {rep['artifact']}: accumulated SQNR (dB)")
    for col in ("unit", base["artifact"], rep["artifact"], "change"):
        t.add_column(col, justify="left" if col == "unit" else "right")
    for a, b in paired_units(base, rep):
        x, y = a.get("accumulated_db"), b.get("accumulated_db")
        d = None if x is None or y is None else y - x
        t.add_row(b["label"] + ("" if b["int8"] else " (float)"), _f(x, ".1f"), _f(y, ".1f"),
                  _f(d, "+.1f"))  # fmt: skip
    console.print(t)
    console.print(verdict_line(base))
    console.print(verdict_line(rep))


def chart_png(rep: dict) -> bytes:
    """Bar chart: SQNR per unit (tensor and accumulated) and Dice alone / all-but."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rep["units"]
    y = np.arange(len(rows))[::-1]
    labels = [r["label"] for r in rows]
    alone = [_dice(r, "alone") or np.nan for r in rows]
    allbut = [_dice(r, "all_but") or np.nan for r in rows]
    finite = [v for v in alone + allbut if np.isfinite(v)]
    fig, axes = plt.subplots(1, 2 if finite else 1, figsize=(12 if finite else 7,
                             0.32 * len(rows) + 1.6), sharey=True, squeeze=False)  # fmt: skip
    a1 = axes[0][0]

    def vals(key):  # a tensor that adds no rounding (max-pool reuses its input's scale): capped
        return [min(r[key], SQNR_CAP) if r.get(key) is not None else np.nan for r in rows]

    a1.barh(y + 0.2, vals("accumulated_db"), 0.4, label="accumulated (vs fp32)", color="tab:red")
    a1.barh(y - 0.2, vals("tensor_db"), 0.4, label="this tensor's Q/DQ", color="tab:blue")
    a1.set_yticks(y, labels, fontsize=7)
    a1.set_xlim(0, SQNR_CAP)
    a1.set_xlabel(f"SQNR of the unit's output (dB, higher is better; capped at {SQNR_CAP})")
    a1.legend(fontsize=7, loc="lower right")
    if finite:
        a2 = axes[0][1]
        a2.barh(y + 0.2, alone, 0.4, label="only this unit int8", color="tab:orange")
        a2.barh(y - 0.2, allbut, 0.4, label="all but this unit int8", color="tab:green")
        a2.set_xlim(min(finite + [0.98]) - 0.002, 1.0005)
        a2.set_xlabel("mean mask Dice vs fp32")
        a2.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{rep['artifact']}: where int8 diverges", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def load_report(path: Path) -> dict:
    """A report JSON written by ``--json`` (checked to be one)."""
    try:
        rep = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise LightsegError(f"--compare {path}: not a readable report JSON ({e})") from None
    if not isinstance(rep, dict) or rep.get("kind") != "lightseg-int8-divergence":
        raise LightsegError(f"--compare {path}: not a lightseg int8-report JSON")
    return rep


def paired_units(base: dict, rep: dict) -> list[tuple[dict, dict]]:
    """The two reports' units side by side, matched in graph order (same model topology; the
    exporters may name nodes differently for different checkpoints)."""
    a, b = base["units"], rep["units"]
    if [r["op"] for r in a] != [r["op"] for r in b]:
        raise LightsegError("--compare: the two reports are of models with different layers")
    return list(zip(a, b, strict=True))


def verdict_line(rep: dict) -> str:
    """The artifact's export verdict in one line: mean, worst large slice, flips, status."""
    v = rep.get("verification") or {}
    if "dice_ref_mean" not in v:
        return f"{rep['artifact']}: {v.get('status', 'no verdict')}"
    return (
        f"{rep['artifact']}: {v['status']}, mean Dice {v['dice_ref_mean']:.4f}, worst large "
        f"{v.get('large_dice_min', float('nan')):.3f}, confident flips {v.get('confident_flips')}"
        f" ({v.get('slices')} slices)"
    )


def side_by_side_png(base: dict, rep: dict) -> bytes:
    """Accumulated SQNR per unit of two artifacts (e.g. the naive int8 and the final one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = paired_units(base, rep)
    y = np.arange(len(pairs))[::-1]

    def acc(r: dict) -> float:
        v = r.get("accumulated_db")
        return np.nan if v is None else min(v, SQNR_CAP)

    fig, ax = plt.subplots(figsize=(8, 0.32 * len(pairs) + 1.8))
    ax.barh(y + 0.2, [acc(a) for a, _ in pairs], 0.4, color="tab:red",
            label=verdict_line(base))  # fmt: skip
    ax.barh(y - 0.2, [acc(b) for _, b in pairs], 0.4, color="tab:green", label=verdict_line(rep))
    labels = [b["label"] + ("" if b["int8"] else " (float)") for _, b in pairs]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, SQNR_CAP)
    ax.set_xlabel("accumulated SQNR of the unit's output vs fp32 (dB, higher is better)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.set_title(f"{base['artifact']} vs {rep['artifact']}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def html_report(rep: dict, png: bytes, compare: tuple[dict, bytes] | None = None) -> str:
    """A standalone page in the style of the parity report: the table and the chart."""
    ov = rep["openvino"].get("accumulated_db", {})
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{"pass" if r["int8"] else "skipped"}">'
        + "".join(
            f"<td>{h.escape(str(c))}</td>"
            for c in (
                r["label"],
                r["op"],
                _f(r["weight_db"], ".1f"),
                _f(r.get("tensor_db"), ".1f"),
                _f(r.get("accumulated_db"), ".1f"),
                _f(ov.get(r["output"]), ".1f"),
                _f(_dice(r, "alone"), ".4f"),
                _f(_dice(r, "all_but"), ".4f"),
                "yes" if r["int8"] else "float",
            )  # fmt: skip
        )
        + "</tr>"
        for r in rep["units"]
    )
    img = base64.b64encode(png).decode()
    v = rep.get("verification") or {}
    both = ""
    if compare:
        base, cpng = compare
        src = base64.b64encode(cpng).decode()
        both = (
            f"<h2>Side by side: {h.escape(base['artifact'])} and {h.escape(rep['artifact'])}</h2>"
            f"<p>{h.escape(verdict_line(base))}<br>{h.escape(verdict_line(rep))}</p>"
            f'<img alt="side by side" src="data:image/png;base64,{src}">'
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>lightseg int8 report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.pass td{{background:#e8f5e9}}
tr.skipped td{{background:#fffde7}}img{{max-width:100%}}</style></head><body>
<h1>int8 divergence: {h.escape(rep["artifact"])}</h1>
<p>{rep["inputs"]["n"]} images of the {h.escape(rep["inputs"]["name"])} set; reference
{h.escape(rep["reference"])}. Export verdict: {h.escape(str(v.get("status", "-")))}.
tensor dB: the unit output's own quantize-dequantize; accum dB: int8 vs fp32 with all upstream
error; Dice alone / all-but: mean mask Dice vs fp32 with only that unit int8 / every unit but it.
OpenVINO: {h.escape(rep["openvino"]["status"])}.</p>
<table><tr>{head}</tr>{body}</table>
<img alt="per-layer divergence" src="data:image/png;base64,{img}">
{both}
</body></html>
"""


def int8_report_cmd(
    export_dir: Path = typer.Argument(..., help="Export folder with manifest.json."),
    artifact: str = typer.Option("onnx-int8", "--artifact", help="An ORT QDQ int8 artifact."),
    n: int | None = typer.Option(None, "--n", help="Verification images (default: the set's)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Write a standalone HTML page."),
    png: Path | None = typer.Option(None, "--png", help="Write the bar chart as PNG."),
    sensitivity: bool = typer.Option(
        True, "--sensitivity/--no-sensitivity", help="Quantize one unit at a time (slow)."
    ),  # fmt: skip
    openvino: bool = typer.Option(True, "--openvino/--no-openvino", help="OpenVINO SQNR too."),
    threads: int = typer.Option(2, "--threads", help="Threads for ORT and OpenVINO."),
    compare: Path | None = typer.Option(
        None, "--compare", help="A report JSON (--json) of another artifact to show side by side."
    ),
) -> None:
    """Which layer makes an int8 artifact diverge from fp32: SQNR and sensitivity per layer."""
    base = load_report(compare) if compare else None
    for p, what in ((json_out, "--json"), (html, "--html"), (png, "--png")):
        if p is not None and p.is_dir():
            raise LightsegError(f"{what} {p} is a directory, not a file")
    if n is not None and n < 2:
        raise LightsegError("--n must be >= 2")
    rep = build_report(
        export_dir, artifact, n, sensitivity, openvino, threads,
        progress=lambda s: console.print(f"[dim]{s}[/dim]"),
    )  # fmt: skip
    print_table(rep)
    chart = chart_png(rep) if (html or png) else b""
    pair = (base, side_by_side_png(base, rep)) if base and (html or png) else None
    if base:
        print_side_by_side(base, rep)
    for path, write in (
        (json_out, lambda p: atomic_write_text(p, json.dumps(json_safe(rep), indent=2) + "\n")),
        (png, lambda p: atomic_write_bytes(p, pair[1] if pair else chart)),
        (html, lambda p: atomic_write_text(p, html_report(rep, chart, pair))),
    ):
        if path:
            write(path)
            console.print(f"wrote {path}")
