"""Fill app/src/main/assets from an export folder: the .ort model, its manifest, a sample slice.

    .venv/bin/python android_demo/make_assets.py EXPORT_DIR [--artifact ort-int8] [--seed 0]

Writes model.ort, manifest.json, demo.json (artifact, sha256, sample size, the Python reference's
lesion pixel count), sample_hu.f32 (raw little-endian float32 HU, H x W) and a preview PNG of the
mask that Python onnxruntime gives for the same .ort file (reference_overlay.png), to compare
with the phone's picture.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ASSETS = Path(__file__).parent / "app" / "src" / "main" / "assets"


def pick_artifact(manifest, name: str | None):
    """The named artifact, else the int8 .ort, else the first .ort."""
    from lightseg.errors import LightsegError

    if name:
        return manifest.artifact(name)
    orts = [a for a in manifest.artifacts if a.format == "ort"]
    if not orts:
        raise LightsegError(f"{manifest.root}: no .ort artifact (export with an android target)")
    return next((a for a in orts if a.precision == "int8"), orts[0])


def make_assets(export_dir: Path, out: Path = ASSETS, artifact: str | None = None, seed: int = 0):
    """Write the app's assets; returns demo.json's content."""
    from PIL import Image

    from lightseg.artifact import load_manifest
    from lightseg.data.overlay import overlay_rgb
    from lightseg.data.phantom import synth_slices
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.fileio import atomic_write_text
    from lightseg.runtimes.base import runner_for

    manifest = load_manifest(export_dir)
    art = pick_artifact(manifest, artifact)
    model = manifest.verify(art)
    pre = Preprocessing.from_dict(manifest.preprocessing)
    sl = synth_slices(1, seed, size=pre.size, lesion=True)[0]
    hu = sl.hu.astype("<f4")
    x = pre(hu)[None]
    with runner_for(manifest, art, threads=1) as runner:  # the same runner parity uses
        logits = runner.infer(x.astype("float32"))[0]
    mask = (logits[0] > 0) if logits.shape[0] == 1 else logits.argmax(0)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out / ".model.ort.tmp")
    (out / ".model.ort.tmp").replace(out / "model.ort")
    atomic_write_text(out / "manifest.json", (export_dir / "manifest.json").read_text())
    hu.tofile(out / ".sample.tmp")
    (out / ".sample.tmp").replace(out / "sample_hu.f32")
    Image.fromarray(overlay_rgb(x[0, 0], mask)).save(out / "reference_overlay.png")
    demo = {
        "artifact": art.name,
        "sha256": art.sha256,
        "height": int(hu.shape[0]),
        "width": int(hu.shape[1]),
        "sample": f"phantom seed {seed}",
        "reference_lesion_pixels": int((mask == 1).sum()),
    }
    atomic_write_text(out / "demo.json", json.dumps(demo, indent=2) + "\n")
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dir", type=Path)
    p.add_argument("--artifact", help="manifest artifact name (default: the int8 .ort)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed of the sample slice")
    p.add_argument("--out", type=Path, default=ASSETS)
    a = p.parse_args()
    demo = make_assets(a.export_dir, a.out, a.artifact, a.seed)
    print(f"wrote {a.out}: {demo['artifact']}, sample {demo['height']}x{demo['width']}")


if __name__ == "__main__":
    main()
