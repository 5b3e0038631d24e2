"""``lightseg data``: synthesise phantom datasets, show montages, check dataset folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer

from lightseg.data.preprocessing import MAX_SIZE, MIN_SIZE
from lightseg.errors import LightsegError

app = typer.Typer(help="Breast-CT data: synthetic phantoms, montages, dataset checks.")

FORMATS = ("npz", "nifti", "png")
MAX_SYNTH_N = 100_000
LESION_MODES = {"yes": True, "no": False, "mixed": None}


def _write_slice(dst: Path, i: int, s, fmt: str) -> None:
    import numpy as np

    name = f"slice_{i:05d}"
    if fmt == "npz":
        np.savez_compressed(dst / f"{name}.npz", hu=s.hu, mask=s.mask, pixel_mm=s.pixel_mm)
    elif fmt == "nifti":
        import nibabel as nib

        aff = np.diag([s.pixel_mm, s.pixel_mm, s.pixel_mm, 1.0])
        for suffix, a in (("", s.hu), ("_mask", s.mask)):
            img = nib.Nifti1Image(a.T[..., None], aff)  # (y, x) -> (i=x, j=y, k=1)
            nib.save(img, dst / f"{name}{suffix}.nii.gz")
    else:
        from PIL import Image

        from lightseg.data.preprocessing import Preprocessing

        g = (Preprocessing().window(s.hu) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(np.stack([g] * 3, -1)).save(dst / "images" / f"{name}.png")
        Image.fromarray(s.mask * 255).save(dst / "masks" / f"{name}.png")


@app.command("synth")
def synth_cmd(
    n: int = typer.Option(64, "--n", help="Number of slices."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same slices)."),
    size: int = typer.Option(256, "--size", help="Slice size in pixels."),
    out: Path = typer.Option(..., "--out", help="Output folder (must be new or empty)."),
    fmt: str = typer.Option("npz", "--format", help="npz | nifti | png"),
    lesions: str = typer.Option("yes", "--lesions", help="yes | no | mixed"),
) -> None:
    """Write synthetic breast-CT slices (and montage.png); nothing is left half-written."""
    from lightseg.data.montage import montage, save_png
    from lightseg.data.phantom import synth_slices

    if fmt not in FORMATS:
        raise LightsegError(f"data synth: --format must be one of {', '.join(FORMATS)}")
    if lesions not in LESION_MODES:
        raise LightsegError("data synth: --lesions must be yes, no or mixed")
    if not 1 <= n <= MAX_SYNTH_N:
        raise LightsegError(f"data synth: --n must be 1..{MAX_SYNTH_N}, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise LightsegError(f"data synth: --size must be {MIN_SIZE}..{MAX_SIZE}, got {size}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LightsegError(f"data synth: {out} exists and is not an empty folder")
    slices = synth_slices(n, seed, size=size, lesion=LESION_MODES[lesions])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        if fmt == "png":
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
        for i, s in enumerate(slices):
            _write_slice(tmp, i, s, fmt)
        show = sorted(slices, key=lambda s: -int(s.mask.any()))[:8]
        save_png(montage([(s.hu, s.mask) for s in show]), tmp / "montage.png", colors=128)
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    typer.echo(f"wrote {n} slices ({fmt}) and montage.png to {out}")


@app.command("show")
def show_cmd(
    path: Path = typer.Argument(..., help="Dataset folder or one .npz/.mhd file."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="PNG to write (default PATH/montage.png for a folder, PATH.png for a file).",
    ),  # fmt: skip
    max_slices: int = typer.Option(16, "--max", help="At most this many slices."),
) -> None:
    """Montage of slices with the lesion mask overlaid (lesion slices first); prints its path."""
    from lightseg.data.montage import montage, save_png
    from lightseg.data.readers import read_folder, read_npz, read_victre

    if max_slices < 1:
        raise LightsegError(f"data show: --max must be >= 1, got {max_slices}")
    if path.is_dir():
        vols = read_folder(path)
        dst = out or path / "montage.png"
    elif path.suffix in (".npz", ".mhd"):
        vols = [read_npz(path) if path.suffix == ".npz" else read_victre(path)]
        dst = out or path.with_suffix(".png")
    else:
        raise LightsegError(f"{path}: give a dataset folder, an .npz or a VICTRE .mhd file")
    pairs = [p for v in vols for p in v.slices()]
    les = [p for p in pairs if p[1].any()]
    rest = [p for p in pairs if not p[1].any()]
    step = max(1, len(les) // max_slices)
    pick = (les[::step] + rest[:: max(1, len(rest) // max_slices)])[:max_slices]
    save_png(montage(pick, tile=256 if len(pick) > 1 else None), dst, colors=128)
    typer.echo(str(dst))


@app.command("check")
def check_cmd(path: Path = typer.Argument(..., help="Dataset folder to validate.")) -> None:
    """Validate a dataset folder: list every problem with its file; exit 2 if any."""
    from lightseg.data.readers import check_folder, read_folder

    problems = check_folder(path)
    for p in problems:
        typer.echo(p)
    if problems:
        raise LightsegError(f"{len(problems)} problem(s) in {path}")
    vols = read_folder(path)
    n = sum(v.hu.shape[0] for v in vols)
    n_les = sum(int(m.any()) for v in vols for _, m in v.slices())
    typer.echo(f"ok: {len(vols)} volume(s), {n} slice(s), {n_les} with a lesion")
