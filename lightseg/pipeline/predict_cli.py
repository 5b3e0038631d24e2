"""``lightseg predict``: segment a user's CT scan and write the mask."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lightseg.console import console


def predict_cmd(
    input: Path = typer.Argument(
        ..., help="A DICOM series folder or file (also multi-frame), a NIfTI (.nii/.nii.gz) or PNG."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for mask.nii.gz, seg.dcm, overlay.png, summary.json."
    ),
    model: str = typer.Option(
        "default",
        "--model",
        "-m",
        help='A checkpoint folder ("default" = the shipped one) or an export folder.',
    ),
    artifact: str | None = typer.Option(
        None,
        "--artifact",
        help="Artifact of an export folder. Defaults to the x86-auto choice, else onnx-fp32.",
    ),
    series: str | None = typer.Option(
        None, "--series", help="SeriesInstanceUID to read from a folder with several series."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads. Defaults to all cores."
    ),
    ray: bool = typer.Option(False, "--ray", help="One Ray task per scan of a folder of scans."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster HOST:PORT."),
) -> None:
    """Segment a CT scan: mask as NIfTI (+ DICOM SEG for DICOM input), overlay and summary.
    A folder of scans (NIfTI files, series in subfolders) gives OUT/<scan>/ for each."""
    from lightseg.data.scans import volume_map
    from lightseg.pipeline.predict import predict
    from lightseg.pipeline.scale import is_dataset, predict_scans

    map_volumes = volume_map(ray, address)
    if ray or is_dataset(input):
        kw = {"model": model, "artifact": artifact, "threads": threads}
        _dataset_table(input, predict_scans(input, out, map_volumes, **kw))
        return
    s = predict(input, model, artifact, out, threads, series)
    les = s["lesion"]
    t = Table(title=f"lightseg predict: {s['input']}", show_header=False)
    t.add_column("what")
    t.add_column("value")
    t.add_row("scan", f"{s['kind']} {' x '.join(map(str, s['shape_zyx']))} (z, y, x)")
    t.add_row("spacing (mm)", " x ".join(f"{v:.3g}" for v in s["spacing_mm_zyx"]))
    mod = s["model"]
    used = f"{mod['export']}: {mod['artifact']}" if "artifact" in mod else mod["checkpoint"]
    t.add_row("model", f"{used} ({mod['backend']}, {mod['precision']})")
    t.add_row(
        "lesion", f"{les['pixels']} px on {les['slices']} slice(s), {les['volume_ml']:.3f} mL"
    )
    t.add_row(
        "seconds", f"{s['seconds']['predict']:.1f} predict, {sum(s['seconds'].values()):.1f} all"
    )
    t.add_row("written", ", ".join(str(out / f) for f in s["files"].values()))
    console.print(t)
    for note in s["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")


def _dataset_table(input: Path, summaries: list[dict]) -> None:
    t = Table(title=f"lightseg predict: {input} ({len(summaries)} scans)")
    for col in ("scan", "z x y x", "lesion px", "slices", "mL"):
        t.add_column(col)
    for s in summaries:
        les, shape = s["lesion"], " x ".join(map(str, s["shape_zyx"]))
        ml = f"{les['volume_ml']:.3f}"
        t.add_row(s["input"], shape, str(les["pixels"]), str(les["slices"]), ml)
    console.print(t)
