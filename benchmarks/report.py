"""Parity reports: JSON (schema-versioned), Markdown (CI log / PR comment), HTML with pictures."""

from __future__ import annotations

import base64
import html as h
import io
import json
import math
from pathlib import Path

import numpy as np

from lightseg.fileio import atomic_write_text

SCHEMA_VERSION = 1
WORST = 3  # images shown per backend


def _clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


def to_dict(run) -> dict:
    ok = all(v.status in ("pass", "skipped") for v in run.verdicts)
    return _clean(
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
        "boundary distance (their Dice does not gate).",
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
            f"| {v.name} | {v.backend} | {v.precision} | **{v.status}** | {c['dice']} | "
            f"{c['worst']} | {c['small']} | {c['gt']} | {c['flips']} | "
            f"{x.get('confident_flips', '-')} | {c['prob']} | {psnr} | "
            f"{v.reason().replace('|', '/') if v.status != 'pass' else ''} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(run, path: Path) -> None:
    atomic_write_text(path, markdown(run))


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{h.escape(alt)}" src="data:image/png;base64,{b64}">'


def _worst_cases(run, v) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lightseg.judge.metrics import softmax

    y = run.outputs[v.name]
    ref_lab, cand_lab = softmax(run.reference).argmax(1), softmax(y).argmax(1)
    order = sorted(range(len(v.per_image)), key=lambda i: v.per_image[i]["dice"])[:WORST]
    fig, axes = plt.subplots(len(order), 4, figsize=(10, 2.6 * len(order)), squeeze=False)
    for row, i in zip(axes, order, strict=True):
        flips = ref_lab[i] != cand_lab[i]
        panels = [
            (run.inputs[i, 0], "gray", f"image {i}"),
            (ref_lab[i], "viridis", "reference mask"),
            (cand_lab[i], "viridis", f"{v.name} mask"),
            (flips, "Reds", f"flips: {int(flips.sum())} (Dice {v.per_image[i]['dice']:.4f})"),
        ]
        for ax, (im, cmap, title) in zip(row, panels, strict=True):
            ax.imshow(im, cmap=cmap, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return _img(_png(fig), f"worst cases of {v.name}")


def _bars(run) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [v for v in run.verdicts if v.metrics]
    if not judged:
        return ""
    names = [v.name for v in judged]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 1.5))
    dice = [v.metrics["dice_ref_min"] for v in judged]
    palette = {"pass": "tab:green", "undecided": "tab:orange"}
    colors = [palette.get(v.status, "tab:red") for v in judged]
    a1.barh(names, dice, color=colors)
    a1.set_xlim(min(0.9, min(dice) - 0.01), 1.0)
    a1.set_title("min Dice vs reference (per image)")
    load = [v.info.get("load_s", 0.0) * 1e3 for v in judged]
    a2.barh(names, load, color="tab:blue")
    a2.set_title("load / compile time (ms)")
    fig.tight_layout()
    return _img(_png(fig), "accuracy and load time per backend")


def html_report(run) -> str:
    md_rows = markdown(run).splitlines()
    head = "".join(f"<th>{h.escape(c.strip())}</th>" for c in md_rows[4].strip("|").split("|"))
    body = ""
    for line in md_rows[6:]:
        if line.startswith("|"):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            cls = cells[3]
            body += f'<tr class="{cls}">' + "".join(f"<td>{h.escape(c)}</td>" for c in cells)
            body += "</tr>"
    sections = [
        f"<h2>{h.escape(v.name)} ({h.escape(v.backend)}, {v.precision}): {v.status}</h2>"
        + _worst_cases(run, v)
        for v in run.verdicts
        if v.name in run.outputs
    ]
    m = run.meta
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>lightseg parity</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.pass td{{background:#e8f5e9}}
tr.fail td,tr.error td{{background:#ffebee}}tr.skipped td{{background:#fffde7}}
tr.undecided td{{background:#fff3e0}}
img{{max-width:100%}}</style></head><body>
<h1>{h.escape(md_rows[0].lstrip("# "))}</h1>
<p>Reference: fp32 PyTorch <code>{h.escape(str(m["reference"].get("checkpoint")))}</code>;
{m["n"]} images ({h.escape(m["data"])}); {h.escape(str(m["machine"]["cpu"]))},
{m["threads"]} threads. Flips are tolerated within {m["boundary_px"]} px of the reference boundary
or where |p - 0.5| &le; {m["uncertainty_band"]}. Input set: {h.escape(json.dumps(m.get("inputs")))}.
</p>
<table><tr>{head}</tr>{body}</table>
{_bars(run)}
<p>Worst {WORST} images per backend (lowest Dice vs the reference): image, reference mask,
backend mask, pixels that differ.</p>
{"".join(sections)}
</body></html>
"""


def write_html(run, path: Path) -> None:
    atomic_write_text(path, html_report(run))
