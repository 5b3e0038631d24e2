"""Small real-format data for the real-data and Ray tests: phantom CT as DICOM series and NIfTI,
a tiny trained checkpoint and an ONNX export of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightseg.artifact import Artifact, Manifest, TensorSpec
from lightseg.data.phantom import PhantomConfig, synth_slices
from lightseg.data.preprocessing import Preprocessing
from lightseg.fileio import sha256_path, size_path
from lightseg.models import create_model

SIZE = 32
PRE = Preprocessing(size=SIZE)
#: (slices, side): one series larger than the model input (tiled), one smaller (padded)
VOLUMES = ((3, 40), (2, 24))


def phantom(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(HU, mask) volumes (z, y, x) of ``n`` phantom slices with lesions."""
    s = synth_slices(n, seed, size=side, lesion=True, config=PhantomConfig(slices_per_volume=n))
    return np.stack([v.hu for v in s]).astype(np.float32), np.stack([v.mask for v in s])


def volumes() -> list[tuple[np.ndarray, np.ndarray]]:
    return [phantom(n, side, seed) for seed, (n, side) in enumerate(VOLUMES)]


def write_nifti(path: Path, vol: np.ndarray, dtype=np.float32) -> Path:
    """A (z, y, x) volume as NIfTI (i = column, j = row, k = slice), 0.5 mm pixels."""
    import nibabel as nib

    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0).astype(dtype), affine), str(path))
    return path


def write_dicom(folder: Path, hu: np.ndarray) -> Path:
    """A CT series (int16 + rescale, files in shuffled order) of an HU volume (z, y, x)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    for z in np.random.default_rng(0).permutation(len(hu)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelSpacing = [0.5, 0.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * float(z)]
        ds.InstanceNumber = int(z) + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.round(hu[z] + 1024.0).astype(np.int16).tobytes()
        ds.save_as(folder / f"IM{z:04d}", enforce_file_format=True)
    return folder


def dicom_dataset(root: Path, masks: bool) -> Path:
    """root/s0, root/s1: two series, each with mask.nii.gz when ``masks``."""
    for i, (hu, m) in enumerate(volumes()):
        folder = write_dicom(root / f"s{i}", np.round(hu))
        if masks:
            write_nifti(folder / "mask.nii.gz", m, np.uint8)
    return root


def nifti_dataset(root: Path, masks: bool = True) -> Path:
    """root/c0.nii.gz + c0_mask.nii.gz, root/c1.nii.gz + labels/c1.nii.gz."""
    (root / "labels").mkdir(parents=True)
    for i, (hu, m) in enumerate(volumes()):
        write_nifti(root / f"c{i}.nii.gz", hu)
        if masks:
            where = root / ("c0_mask.nii.gz" if i == 0 else "labels/c1.nii.gz")
            write_nifti(where, m, np.uint8)
    return root


def train_tiny(steps: int = 40):
    """lightunet base=4, a few steps on phantom slices: non-trivial masks."""
    torch.manual_seed(0)
    hu, m = phantom(16, SIZE, seed=7)
    x = torch.from_numpy(np.stack([PRE(h) for h in hu]))
    y = torch.from_numpy(m.astype(np.int64))
    model = create_model("lightunet", base=4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def export_dir(model, ck: Path, root: Path) -> Path:
    """An export folder with one onnx-fp32 artifact of ``model``."""
    from lightseg.checkpoint import read_meta

    root.mkdir(parents=True)
    torch.onnx.export(
        model, torch.zeros(1, 3, SIZE, SIZE), str(root / "model.onnx"),
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    p = root / "model.onnx"
    art = Artifact(
        name="onnx-fp32", path="model.onnx", backend="onnxruntime", precision="fp32",
        format="onnx", sha256=sha256_path(p), size_bytes=size_path(p),
        inputs=[TensorSpec("image", ["batch", 3, SIZE, SIZE])],
        outputs=[TensorSpec("logits", ["batch", 2, SIZE, SIZE])],
    )  # fmt: skip
    Manifest(
        source={"checkpoint": str(ck), "weights_sha256": read_meta(ck)["weights_sha256"]},
        preprocessing=PRE.to_dict(), classes=["background", "lesion"], artifacts=[art],
    ).save(root)  # fmt: skip
    return root
