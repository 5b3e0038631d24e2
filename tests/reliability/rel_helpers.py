"""Shared helpers of the reliability tests: the CLI in-process, tiny runs and checkpoints."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import torch

from lightseg.cli import main

#: Examples each property-based fuzzer ran (printed in pytest's terminal summary).
FUZZ_COUNTS: Counter[str] = Counter()

#: The smallest useful training run: 16 px, base 2, 2 slices, a checkpoint every step.
TINY_TRAIN = ["--size", "16", "--crop", "0", "--batch", "1", "--base", "2", "--train-n", "2",
              "--val-n", "2", "--val-every", "1", "--threads", "1", "--warmup", "1"]  # fmt: skip


def cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """Run ``lightseg ARGS`` in-process: (exit code, stdout, non-empty stderr lines)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, [ln for ln in cap.err.splitlines() if ln.strip()]


def one_error(capsys, *args: str, code: int = 2) -> str:
    """Run the CLI, assert it exits ``code`` with exactly one ``error:`` line; that line."""
    rc, out, err = cli(capsys, *args)
    assert rc == code, (rc, out, err)
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err
    assert "Traceback" not in out
    return err[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (to show nothing changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny_checkpoint(path: Path, **config) -> Path:
    """A lightunet base=2 checkpoint (size 16) at ``path``."""
    from lightseg.checkpoint import save_checkpoint
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.models import create_model

    torch.manual_seed(0)
    model = create_model("lightunet", **{"base": 2, **config})
    channels = model.config.n_channels
    return save_checkpoint(model, path, "lightunet", Preprocessing(size=16, channels=channels))


def rewrite_meta(ck: Path, edit) -> None:
    """Apply ``edit(doc)`` to a checkpoint's model.json (the hash of the weights stays)."""
    doc = json.loads((ck / "model.json").read_text())
    edit(doc)
    (ck / "model.json").write_text(json.dumps(doc))


def rewrite_weights(ck: Path, edit) -> None:
    """Apply ``edit(state)`` to the weights and re-hash them, so only the content is wrong."""
    from safetensors.torch import load_file, save_file

    w = ck / "weights.safetensors"
    state = load_file(w)
    edit(state)
    save_file(state, w)
    digest = hashlib.sha256(w.read_bytes()).hexdigest()
    rewrite_meta(ck, lambda d: d.update(weights_sha256=digest))


def write_ct(folder: Path, n: int = 3, size: int = 8, **over) -> list[Path]:
    """A tiny CT series (int16 pixels) written with pydicom; ``over`` sets header values."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    paths = []
    for z in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", series
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [0.5, 0.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.InstanceNumber = z + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.full((size, size), 1000 + z, np.int16).tobytes()
        for k, v in over.items():
            setattr(ds, k, v)
        p = folder / f"IM{z:04d}"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def patch_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) in a file: values pydicom would not write."""
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1, (old, data.count(old))
    path.write_bytes(data.replace(old, new))
