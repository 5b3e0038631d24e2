"""Parity reports: JSON (schema-versioned), Markdown (CI log / PR comment), HTML with pictures."""

from __future__ import annotations

import base64
import html as h
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from lightseg.fileio import atomic_write_text

SCHEMA_VERSION = 1
WORST = 3  # images shown per backend
DPI = 120  # figures ~5 in wide: readable at phone width, crisp on desktop


def json_safe(o):
    """``o`` with NaN/Inf as strings and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [json_safe(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


def to_dict(run) -> dict:
    ok = all(v.status in ("pass", "skipped") for v in run.verdicts)
    return json_safe(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": "lightseg-parity",
            "passed": ok and any(v.status == "pass" for v in run.verdicts),
            "meta": run.meta,
            "backends": [v.to_dict() for v in run.verdicts],
        }
    )


def outcome(run) -> str:
    """PASS, FAIL, or UNDECIDED (nothing failed, but a set too small to tell)."""
    if to_dict(run)["passed"]:
        return "PASS"
    states = {v.status for v in run.verdicts}
    return "UNDECIDED" if "undecided" in states and not states & {"fail", "error"} else "FAIL"


def write_json(run, path: Path) -> None:
    atomic_write_text(path, json.dumps(to_dict(run), indent=2) + "\n")


def _ci(v, key: str, fmt: str) -> str:
    if key not in v.metrics:
        return "-"
    lo, hi = v.ci.get(key, (math.nan, math.nan))
    ci = "no CI" if math.isnan(lo) else f"{lo:{fmt}}-{hi:{fmt}}"
    return f"{v.metrics[key]:{fmt}} ({ci})"


SATURATING_NOTE = (
    " This host's fused int8 conv saturates (x86 without VNNI): int8 (exact) is judged unfused,"
    " with the int32 accumulation of its target (phone, Jetson, browser); int8 (saturating) on"
    " this host's kernel, as on every x86 CPU without VNNI."
)


def precision_cell(v) -> str:
    """The precision, and for int8 on a host whose fused int8 conv saturates, the arithmetic
    that judged it ("exact": the target's int32 accumulation; "saturating": this host's)."""
    arithmetic = (v.info or {}).get("int8_arithmetic")
    return f"{v.precision} ({arithmetic})" if arithmetic else v.precision


def cells(v) -> dict[str, str]:
    """The headline numbers of a verdict as table cells (console, Markdown, HTML)."""
    x = v.metrics
    if not x:
        return dict.fromkeys(("dice", "worst", "small", "gt", "flips", "prob"), "-")
    small = "-"
    if "small_slices" in x:
        small = str(x["small_slices"])
        if x["small_slices"]:
            small += f", {x['small_boundary_max']:g} px"
    all_small = x.get("large_slices") == 0
    return {
        "dice": "all small" if all_small else _ci(v, "large_dice_mean", ".4f"),
        "worst": f"{x['large_dice_min']:.4f}" if "large_dice_min" in x else "-",
        "small": small,
        "gt": _ci(v, "gt_dice_ratio", ".4f"),
        "flips": f"{100 * x['flip_rate']:.3f}" if "flip_rate" in x else "-",
        "prob": f"{x['prob_abs_max']:.2e}" if "prob_abs_max" in x else "-",
    }


def markdown(run) -> str:
    m = run.meta
    inputs = m.get("inputs") or {}
    seed = f", seed {inputs['seed']}" if inputs.get("seed") is not None else ""
    lines = [
        f"### lightseg parity: {outcome(run)}",
        "",
        f"Reference: fp32 PyTorch `{m['reference'].get('checkpoint')}`; {m['n']} images "
        f"({m['data']}{seed}); {m['machine']['cpu']}, {m['threads']} threads. "
        f"Intervals: {int(100 * m.get('ci_level', 0.95))}% {m.get('ci_method', '')}. "
        f"Small lesions: reference lesion < {m.get('small_lesion_px', '?')} px, judged by "
        "boundary distance (their Dice does not gate)."
        + (SATURATING_NOTE if any(precision_cell(v) != v.precision for v in run.verdicts) else ""),
        "",
        "| artifact | backend | precision | status | Dice mean (95% CI) | worst large slice | "
        "small slices, max boundary px | GT Dice ratio (95% CI) | flips % | confident flips | "
        "prob max err | PSNR dB | detail |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in run.verdicts:
        c, x = cells(v), v.metrics
        psnr = f"{x['psnr_db']:.1f}" if "psnr_db" in x else "-"
        lines.append(
            f"| {v.name} | {v.backend} | {precision_cell(v)} | **{v.status}** | {c['dice']} | "
            f"{c['worst']} | {c['small']} | {c['gt']} | {c['flips']} | "
            f"{x.get('confident_flips', '-')} | {c['prob']} | {psnr} | "
            f"{v.reason().replace('|', '/') if v.status != 'pass' else ''} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(run, path: Path) -> None:
    atomic_write_text(path, markdown(run))


CSS = """*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
margin:0 auto;max-width:72rem;padding:0 1rem 3rem;overflow-wrap:anywhere}
h1{font-size:1.45rem;margin:1rem 0 .5rem}h2{font-size:1.2rem;margin-top:2.2rem;
border-bottom:2px solid #d0d7de;padding-bottom:.2rem}h3{font-size:1.02rem;margin:1.4rem 0 .4rem}
nav{display:flex;flex-wrap:wrap;gap:.4rem 1rem;margin-bottom:1rem}a{color:#0550ae}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(15rem,100%),1fr));gap:.6rem}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.5rem .8rem}
.card b{display:block;font-size:.8rem;color:#57606a;text-transform:uppercase}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid #d0d7de;
border-radius:6px;margin:.6rem 0}
table{border-collapse:collapse;font-size:.85rem;min-width:100%}
td,th{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap;
vertical-align:top;background:#fff}th{background:#f6f8fa}
td:first-child,th:first-child{position:sticky;left:0;box-shadow:1px 0 0 #d0d7de}
td.wrap{white-space:normal;min-width:14rem}
tr.pass td{background:#e8f5e9}tr.fail td,tr.error td{background:#ffebee}
tr.skipped td{background:#fffde7}tr.undecided td,tr.noisy td{background:#fff3e0}
tr.chosen td{font-weight:600;background:#d0ebff}
.banner{background:#b71c1c;color:#fff;font-weight:600;padding:.6rem .9rem;border-radius:6px;
margin:.6rem 0}.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:.4rem .7rem}
.muted{color:#57606a;font-size:.9rem}.fig{margin:.6rem 0}code{font-size:.85em}
.fig img{width:100%;max-width:40rem;height:auto}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(24rem,100%),1fr));gap:0 1rem}"""

PEER_MARK = " (peer)"
CHOSEN = " <- chosen"


def _e(x) -> str:
    return h.escape(str(x))


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<div class="fig"><img alt="{h.escape(alt)}" src="data:image/png;base64,{b64}"></div>'


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _table(head: list[str], rows: list[list], classes: list[str] = (), wrap=()) -> str:
    """An escaped table in its own horizontally scrolling box; ``wrap``: columns that wrap."""
    th = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = ""
    for i, row in enumerate(rows):
        cls = f' class="{_e(classes[i])}"' if i < len(classes) and classes[i] else ""
        tds = "".join(
            f"<td{' class=wrap' if j in wrap else ''}>{_e(c)}</td>" for j, c in enumerate(row)
        )
        body += f"<tr{cls}>{tds}</tr>"
    th = f"<tr>{th}</tr>" if th else ""
    return f'<div class="scroll"><table>{th}{body}</table></div>'


def _worst_cases(run, v) -> str:
    from lightseg.judge.metrics import softmax

    plt = _plt()
    y = run.outputs[v.name]
    ref_lab, cand_lab = softmax(run.reference).argmax(1), softmax(y).argmax(1)
    order = sorted(range(len(v.per_image)), key=lambda i: v.per_image[i]["dice"])[:WORST]
    order = order if v.metrics.get("flip_rate") else order[:1]  # exact: one image shows it
    fig, axes = plt.subplots(len(order), 4, figsize=(5.2, 1.75 * len(order)), squeeze=False)
    for row, i in zip(axes, order, strict=True):
        flips = ref_lab[i] != cand_lab[i]
        panels = [
            (run.inputs[i, 0], "gray", f"image {i}"),
            (ref_lab[i], "viridis", "reference"),
            (cand_lab[i], "viridis", "backend"),
            (flips, "Reds", f"{int(flips.sum())} flips\nDice {v.per_image[i]['dice']:.3f}"),
        ]
        for ax, (im, cmap, title) in zip(row, panels, strict=True):
            ax.imshow(im, cmap=cmap, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    return _img(_png(fig), f"worst cases of {v.name}")


def _barh(ax, names: list[str], values, title: str, log: bool = False, **kw) -> np.ndarray:
    """Horizontal bars, first name on top; ``values`` None: only the axes (bars drawn apart)."""
    y = np.arange(len(names))
    if values is not None:
        ax.barh(y, values, **kw)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=12, loc="left")
    ax.tick_params(labelsize=11)
    ax.grid(axis="x", alpha=0.3)
    return y


def _bars(run) -> str:
    judged = [v for v in run.verdicts if v.metrics]
    if not judged:
        return ""
    plt = _plt()
    names = [v.name for v in judged]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(5.2, 0.8 * len(names) + 2.4))
    dice = [v.metrics["dice_ref_min"] for v in judged]
    palette = {"pass": "tab:green", "undecided": "tab:orange"}
    colors = [palette.get(v.status, "tab:red") for v in judged]
    _barh(a1, names, dice, "min Dice vs reference (per image)", color=colors)
    a1.set_xlim(min(0.9, min(dice) - 0.01), 1.0)
    load = [v.info.get("load_s", 0.0) * 1e3 for v in judged]
    _barh(a2, names, load, "load / compile time (ms)", color="tab:blue")
    fig.tight_layout()
    return _img(_png(fig), "accuracy and load time per backend")


def _parity_section(run) -> str:
    md_rows = markdown(run).splitlines()
    head = [c.strip() for c in md_rows[4].strip("|").split("|")]
    rows = [
        [c.strip().strip("*") for c in line.strip("|").split("|")]
        for line in md_rows[6:]
        if line.startswith("|")
    ]
    m = run.meta
    worst = "".join(
        f"<h3>{_e(v.name)} ({_e(v.backend)}, {_e(precision_cell(v))}): {_e(v.status)}</h3>"
        + ("" if v.metrics.get("flip_rate") else "<p>No pixel differs on any image.</p>")
        + _worst_cases(run, v)
        for v in run.verdicts
        if v.name in run.outputs
    )
    return f"""<h2 id="parity">Parity vs fp32 PyTorch: {_e(outcome(run))}</h2>
<p>Reference: fp32 PyTorch <code>{_e(m["reference"].get("checkpoint"))}</code>; {_e(m["n"])}
images ({_e(m["data"])}); {_e(m["machine"]["cpu"])}, {_e(m["threads"])} threads. Flips are
tolerated within {_e(m["boundary_px"])} px of the reference boundary or where |p - 0.5| &le;
{_e(m["uncertainty_band"])}. Input set: {_e(json.dumps(m.get("inputs")))}.</p>
{_table(head, rows, [r[3] for r in rows], wrap={len(head) - 1})}
{_bars(run)}
<p>Worst {WORST} images per backend (lowest Dice vs the reference): image, reference mask,
backend mask, pixels that differ.</p>
{worst}"""


def _peer_label(name: str) -> str:
    from lightseg.benchmarks.peers import NAMES

    return name + (PEER_MARK if name in NAMES else "")


def _latency_plots(doc: dict) -> str:
    ok = [b for b in doc["backends"] if b["status"] == "ok" and b["p50"]]
    if not ok:
        return ""
    plt = _plt()
    names = [_peer_label(b["name"]) for b in ok]
    height = 0.55 * len(ok) + 1.4
    fig, ax = plt.subplots(figsize=(5.2, height))
    y = np.arange(len(ok))
    for k, (q, color) in enumerate(
        (("p50", "tab:blue"), ("p90", "tab:orange"), ("p99", "tab:red"))
    ):
        ax.barh(y + (k - 1) * 0.27, [b[q] for b in ok], height=0.27, color=color, label=q)
    _barh(ax, names, None, "latency per backend, ms (log scale)", log=True)
    ax.legend(fontsize=9, loc="lower right")
    out = [_img(_png(fig), "p50, p90 and p99 latency per backend")]

    fig, ax = plt.subplots(figsize=(5.2, height))
    ratios = [b["speedup_vs_reference"] or 0.0 for b in ok]
    err = [r * (b["speedup_spread"] or 0.0) for r, b in zip(ratios, ok, strict=True)]
    low = [min(e, 0.9 * r) for r, e in zip(ratios, err, strict=True)]  # log axis: stay above 0
    colors = ["tab:green" if b["stable"] else "tab:orange" for b in ok]
    y = _barh(
        ax,
        names,
        ratios,
        "speed-up vs eager PyTorch (p50 ratio)",
        log=max(ratios) > 20,
        xerr=[low, err],
        color=colors,
        capsize=3,
    )
    ax.axvline(1.0, color="black", lw=1)
    for yi, r, e in zip(y, ratios, err, strict=True):
        ax.text(r + e, yi, f" {r:.2f}x", va="center", fontsize=9)
    ax.set_xlabel("error bars: spread between the last two blocks; orange: noisy", fontsize=9)
    out.append(_img(_png(fig), "speed-up vs eager PyTorch with its spread"))

    fig, ax = plt.subplots(figsize=(5.2, height))
    g = [b["effective_gflops"] or 0.0 for b in ok]
    y = _barh(
        ax,
        names,
        g,
        "effective GFLOP/s (log) and the measured peak of its precision",
        log=True,
        color="tab:purple",
    )
    for yi, b in zip(y, ok, strict=True):
        if b["pct_of_peak"]:
            peak = b["effective_gflops"] * 100 / b["pct_of_peak"]
            ax.plot([peak], [yi], marker="|", markersize=18, color="black")
            ax.text(
                peak,
                yi,
                f" {b['pct_of_peak']:.1f}% of {b['precision_used']}",
                va="center",
                fontsize=9,
            )
    ax.set_xlabel("black tick: measured peak (OpenVINO conv, this run)", fontsize=9)
    out.append(_img(_png(fig), "effective GFLOP/s against the measured peak"))
    return f'<div class="figs">{"".join(out)}</div>'


def _latency_section(doc: dict) -> str:
    from lightseg.benchmarks.latency import COLUMNS, REFERENCE, _cells, noise_lines

    lines = noise_lines(doc)
    banner = ""
    if not doc["stable"]:
        n = doc["noise"]
        lines.pop(0)
        banner = (
            '<div class="banner noisy">noisy: ratios not reliable. The p50s of the last two '
            f"blocks differ by more than {100 * n['within']:.0f}% after {_e(n['blocks'])} "
            "blocks: rerun on a quiet machine before trusting a speed-up.</div>"
        )
    rows, classes = [], []
    for b in doc["backends"]:
        cells = _cells(b)
        cells[0] = _peer_label(cells[0])
        rows.append(cells)
        bad = b["status"] != "ok"
        classes.append("error" if bad else "noisy" if not b["stable"] else "")
    peaks = ""
    if "peak_gflops" in doc:
        doc_peaks = doc["peaks"]["documented_gflops"]
        peaks = "Peak GFLOP/s, measured here / documented: " + ", ".join(
            f"{k} {_e(format(v, '.0f') if v else '-')} / {_e(format(doc_peaks.get(k) or 0, '.0f'))}"
            for k, v in doc["peak_gflops"].items()
        )
    return f"""<h2 id="latency">Latency</h2>{banner}
<p>Batch {_e(doc["batch"])}, input {_e(doc["input"])}, {_e(doc["threads"])} threads,
{_e(doc["runs"])} runs per backend, interleaved in rounds of {_e(doc["interleaved_round"])};
statistics of the last two of {_e(doc["noise"]["blocks"])} blocks. "x ref" is the speed-up vs
eager PyTorch (<code>{_e(REFERENCE)}</code>) with its spread; peers{_e(PEER_MARK)} are what a
user gets from a runtime without lightseg's tuning. Model: {_e(f"{doc['model_gmacs']:.4f}")}
GMAC per inference.</p>
{_table(list(COLUMNS), rows, classes)}
{_latency_plots(doc)}
<h3>Noise</h3><p class="muted">{"<br>".join(_e(x) for x in lines)}<br>{peaks}</p>"""


def pick_speedup(ev: dict, bench_doc: dict | None = None) -> dict | None:
    """The pick's speed-up vs eager PyTorch, its spread and noise: from the latency run where it
    was timed there, else from the auto-tune's own timing. None when nothing was picked."""
    name = ev.get("chosen")
    if not name:
        return None
    rows = (bench_doc or {}).get("backends", [])
    b = next((b for b in rows if b["name"] == name and b["status"] == "ok"), None)
    if b is not None:
        return {
            "name": name,
            "speedup": b["speedup_vs_reference"],
            "spread": b["speedup_spread"],
            "noisy": not (bench_doc["stable"] and b["stable"]),
            "source": "latency run",
        }
    r = next((r for r in ev.get("rows", []) if r["name"] == name), {})
    return {
        "name": name,
        "speedup": r.get("speedup_vs_pytorch"),
        "spread": None,
        "noisy": not (ev.get("stable") and r.get("stable")),
        "source": "auto-tune run",
    }


def pick_line(ps: dict) -> str:
    """One line: the pick, its speed-up vs eager PyTorch with spread, and its noise status."""
    x = "-" if ps["speedup"] is None else f"{ps['speedup']:.2f}x"
    spread = "" if ps["spread"] is None else f" ±{100 * ps['spread']:.0f}%"
    noise = "noisy: ratios not reliable" if ps["noisy"] else "stable"
    return f"{ps['name']}: {x}{spread} vs eager PyTorch ({ps['source']}), timing {noise}"


def _tune_plot(rows: list[dict], chosen: str | None) -> str:
    timed = [r for r in rows if r.get("p50_ms")]
    if not timed:
        return ""
    plt = _plt()
    timed.sort(key=lambda r: r["p50_ms"])
    palette = {"pass": "tab:green", "reference": "tab:gray", "undecided": "tab:orange"}
    fig, ax = plt.subplots(figsize=(5.2, 0.5 * len(timed) + 1.3))
    _barh(
        ax,
        [_peer_label(r["name"]) + (CHOSEN if r["name"] == chosen else "") for r in timed],
        [r["p50_ms"] for r in timed],
        "candidates by p50 ms (log); green: passes the judge, red: fails",
        log=True,
        color=[palette.get(r.get("parity"), "tab:red") for r in timed],
        edgecolor=["black" if r["name"] == chosen else "none" for r in timed],
        linewidth=2,
    )
    return _img(_png(fig), "auto-tune candidates by latency and verdict")


def _ci_cell(value, ci) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if len(ci or []) == 2 else "")


def _why(rows: list[dict], chosen: dict | None) -> str:
    """Why the pick: which candidates were faster and what kept them out."""
    if chosen is None:
        return "No candidate passed the judge: nothing is picked."
    if not chosen.get("p50_ms"):
        return ""  # not timed here: the rule alone decides
    faster = [
        r
        for r in rows
        if r.get("p50_ms") and r["p50_ms"] < chosen["p50_ms"] and r["name"] != "pytorch-reference"
    ]
    if not faster:
        return "No candidate was faster."
    return "Faster, but not picked: " + "; ".join(
        f"{r['name']} ({r['parity']}{': ' + r['reason'] if r.get('reason') else ''})"
        for r in faster
    )


def _tune_section(family: str, ev: dict, bench_doc: dict | None) -> str:
    rows, chosen = ev.get("rows", []), ev.get("chosen")
    pick = next((r for r in rows if r["name"] == chosen), None)
    table, classes = [], []
    for r in rows:
        stable = r.get("stable")
        table.append(
            [
                r["name"]
                + (PEER_MARK if r.get("peer") else "")
                + (CHOSEN if r["name"] == chosen else ""),
                r.get("backend", ""),
                r.get("precision", ""),
                json.dumps(r.get("run_with") or {})[1:-1] or "-",
                r.get("parity", "-"),
                _ci_cell(r.get("dice_vs_fp32_mean"), r.get("dice_ci")),
                _ci_cell(r.get("gt_dice_ratio"), r.get("gt_ratio_ci")),
                *(
                    ("-" if r.get(k) is None else f"{r[k]:.2f}")
                    for k in ("p50_ms", "p90_ms", "cv", "speedup_vs_pytorch")
                ),
                "-" if stable is None else "stable" if stable else "noisy",
                f"{r['size_bytes'] / 1024:.0f}" if r.get("size_bytes") else "-",
                r.get("reason", ""),
            ]
        )
        classes.append("chosen" if r["name"] == chosen else r.get("parity", ""))
    head = [
        "candidate",
        "backend",
        "precision",
        "run with",
        "verdict",
        "Dice vs fp32 [95% CI]",
        "GT Dice ratio [95% CI]",
        "p50 ms",
        "p90 ms",
        "CV",
        "x PyTorch",
        "timing",
        "KB",
        "why it fails",
    ]
    summary = "<p><b>Pick: none.</b></p>"
    if pick is not None:
        ps = pick_speedup(ev, bench_doc)
        summary = (
            f"<p><b>Pick: {_e(pick_line(ps))}</b>. {_e(pick['backend'])}, "
            f"{_e(pick['precision'])}{_e(PEER_MARK) if pick.get('peer') else ''}.</p>"
        )
    noise = ""
    if ev.get("stable") is False:
        n = ev.get("noise") or {}
        noise = (
            f'<p class="warn">The candidates\' timing was noisy (p50s of the last two blocks '
            f"differ by more than {100 * n.get('within', 0):.0f}% after "
            f"{_e(n.get('blocks'))} blocks; load {_loads(n.get('load_before', [])[:1])}): "
            "close candidates may swap places on a rerun.</p>"
        )
    tried = ev.get("n_tried") or []
    return f"""<h3 id="tune-{_e(family)}">{_e(family)}: {_e(ev.get("device", ""))}</h3>
{summary}<p>Rule: {_e(ev.get("rule", ""))}. {_e(_why(rows, pick))}</p>{noise}
<p class="muted">Judged on the verification set ({_e(json.dumps(ev.get("parity_inputs")))};
slices tried: {_e(", ".join(map(str, tried)) or "-")}); timed with {_e(ev.get("runs"))} runs,
{_e(ev.get("threads"))} threads, interleaved with eager PyTorch.</p>
{_table(head, table, classes)}
{_tune_plot(rows, chosen)}"""


def _machine_section(machine: dict | None, run, doc: dict | None) -> str:
    doc = doc or {}
    m = machine or doc.get("machine") or run.meta.get("machine") or {}
    versions = dict(run.meta.get("reference", {}).get("versions", {}))
    for v in run.verdicts:
        versions |= v.info.get("versions", {})
    versions |= doc.get("versions", {})
    rows = [
        ["CPU", m.get("cpu", "-")],
        ["cores", m.get("cores", "-")],
        ["OS", m.get("os", "-")],
        ["threads", f"parity {run.meta.get('threads')}, latency {doc.get('threads', '-')}"],
    ]
    if doc:
        n = doc["noise"]
        pinned = doc.get("cpus")
        rows += [
            ["CPUs pinned", "not pinned" if pinned is None else ", ".join(map(str, pinned))],
            [
                "load avg 1/5/15 min",
                f"{_loads(n['load_before'])} before, "
                f"{_loads(n['load_after'])} after the latency run",
            ],
        ]
        peaks = doc.get("peaks") or {}
        if peaks:
            rows += [
                ["clock GHz", peaks.get("clock_ghz") or "-"],
                ["CPU flags", ", ".join(peaks.get("flags", [])) or "-"],
            ]
    rows += [[f"{k} version", v] for k, v in sorted(versions.items())]
    return f'<h2 id="machine">Machine</h2>{_table([], rows, wrap={1})}'


def _loads(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _cards(run, doc: dict | None, tune: dict) -> str:
    counts = Counter(v.status for v in run.verdicts)
    cards = [
        ("parity", f"{outcome(run)}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    ]
    ev = tune.get("x86")
    if ev is not None:
        ps = pick_speedup(ev, doc)
        cards.append(("x86 pick", pick_line(ps) if ps else "none: no candidate passes"))
    if doc:
        fastest = min((b for b in doc["backends"] if b["status"] == "ok"), key=lambda b: b["p50"])
        state = "stable" if doc["stable"] else "NOISY: ratios not reliable"
        cards.append(
            (
                "latency",
                f"{state}; fastest p50 {fastest['p50']:.2f} ms ({_peer_label(fastest['name'])})",
            )
        )
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(k)}</b>{_e(v)}</div>' for k, v in cards)
        + "</div>"
    )


def full_report(parity_run, bench_doc=None, tune=None, machine=None) -> str:
    """One self-contained HTML page (inline CSS, PNG as base64, no external reference): the
    parity verdicts, the latency table and plots, the auto-tune evidence per family (``tune``:
    ``manifest.extra["auto_tune"]``) and the machine."""
    tune = tune or {}
    parts = [
        ("parity", "Parity"),
        ("latency", "Latency"),
        ("tune", "Auto-tune"),
        ("machine", "Machine"),
    ]
    shown = (
        {"parity", "machine"}
        | ({"latency"} if bench_doc else set())
        | ({"tune"} if tune else set())
    )
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in parts if k in shown)
    tuned = "".join(_tune_section(f, ev, bench_doc) for f, ev in tune.items())
    title = f"lightseg report: parity {outcome(parity_run)}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head><body>
<h1>{_e(title)}</h1><nav>{nav}</nav>
{_cards(parity_run, bench_doc, tune)}
{_parity_section(parity_run)}
{_latency_section(bench_doc) if bench_doc else ""}
{f'<h2 id="tune">Auto-tune: the pick and why</h2>{tuned}' if tune else ""}
{_machine_section(machine, parity_run, bench_doc)}
</body></html>
"""


def write_full_html(parity_run, path: Path, bench_doc=None, tune=None, machine=None) -> None:
    atomic_write_text(path, full_report(parity_run, bench_doc, tune, machine))


def write_html(run, path: Path) -> None:
    """The parity-only report (``lightseg parity --html``)."""
    write_full_html(run, path)
