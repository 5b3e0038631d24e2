"""lightseg predict on real DICOM/NIfTI test scans and on a phantom CT series written as DICOM."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.testing import data_path
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lightseg.cli import main
from lightseg.data.phantom import synth_slices
from lightseg.data.preprocessing import Preprocessing
from lightseg.data.volumes import read_scan
from lightseg.data.writers import write_nifti_mask
from lightseg.metrics import dice
from lightseg.pipeline.predict import predict, predict_volume, tile_starts
from lightseg.runtimes.torch_runner import TorchRunner

IOP = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # coronal: rows along +x, columns along -z (LPS)
ORIGIN = np.array([-60.0, 12.5, 70.0])
STEP_MM = 2.0


def _testdata(name: str) -> Path:
    return Path(get_testdata_file(name))


def _ras_affine(iop, ps: tuple[float, float], step: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """voxel (column, row, slice) -> RAS, written out independently of lightseg."""
    lps = np.eye(4)
    lps[:3, 0] = np.array(iop[:3]) * ps[1]
    lps[:3, 1] = np.array(iop[3:]) * ps[0]
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _ct_slice(hu: np.ndarray, k: int, pixel_mm: float, uids: dict) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        "Phantom^Breast",
        "P1",
        "",
        "F",
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
    ds.ReferringPhysicianName, ds.Manufacturer = "", "lightseg-test"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ContentDate, ds.ContentTime, ds.AcquisitionNumber = "20240101", "120000", 1
    ds.PositionReferenceIndicator, ds.KVP = "", 80
    normal = np.cross(IOP[:3], IOP[3:])
    ds.ImageOrientationPatient = list(IOP)
    ds.ImagePositionPatient = (ORIGIN + k * STEP_MM * normal).tolist()
    ds.PixelSpacing = [pixel_mm, pixel_mm]
    ds.SliceThickness = STEP_MM
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.PixelData = np.clip(np.round(hu + 1024), 0, 65535).astype(np.uint16).tobytes()
    return ds


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """6 coronal slices of one phantom breast with lesions, as a shuffled DICOM series."""
    slices = synth_slices(6, seed=11, size=256, lesion=True)
    assert len({s.meta["patient"] for s in slices}) == 1
    folder = tmp_path_factory.mktemp("series")
    uids = {k: generate_uid() for k in ("study", "series", "frame")}
    names = np.random.default_rng(0).permutation(len(slices))  # file order != slice order
    datasets = []
    for k, s in enumerate(slices):
        ds = _ct_slice(s.hu, k, s.pixel_mm, uids)
        ds.save_as(folder / f"IM{names[k]:04d}", enforce_file_format=True)
        datasets.append(ds)
    hu = np.stack([np.clip(np.round(s.hu + 1024), 0, None) - 1024 for s in slices])
    return {
        "folder": folder,
        "datasets": datasets,
        "hu": hu.astype(np.float32),
        "mask": np.stack([s.mask for s in slices]),
        "pixel_mm": slices[0].pixel_mm,
    }


@pytest.fixture(scope="module")
def series_result(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("out-series")
    summary = predict(phantom["folder"], "default", out=out, progress=False)
    return summary, out


def test_series_volume_geometry_and_dice(phantom, series_result):
    summary, out = series_result
    img = nib.load(out / "mask.nii.gz")
    px = phantom["pixel_mm"]
    step = STEP_MM * np.cross(IOP[:3], IOP[3:])
    np.testing.assert_allclose(img.affine, _ras_affine(IOP, (px, px), step, ORIGIN), atol=1e-4)
    assert img.shape == (256, 256, 6) and img.get_data_dtype() == np.uint8
    mask = np.asarray(img.dataobj).transpose(2, 1, 0)  # (i, j, k) -> (z, y, x)
    assert set(np.unique(mask)) <= {0, 1}
    d = dice(mask, phantom["mask"])
    print(f"phantom series: Dice {d:.3f}, {summary['seconds']}")
    assert d > 0.5
    les = summary["lesion"]
    assert les["pixels_per_slice"] == (mask > 0).reshape(6, -1).sum(1).tolist()
    assert les["volume_ml"] == pytest.approx(les["pixels"] * px * px * STEP_MM / 1000, rel=1e-4)
    assert json.loads((out / "summary.json").read_text())["lesion"] == les


def test_series_reads_hu_in_slice_order(phantom):
    scan = read_scan(phantom["folder"])
    np.testing.assert_array_equal(scan.hu, phantom["hu"])
    assert [f.name for f in scan.files] != sorted(f.name for f in scan.files)


def test_non_dicom_files_in_the_folder_are_noted(phantom, tmp_path):
    folder = tmp_path / "with-junk"
    shutil.copytree(phantom["folder"], folder)
    (folder / "LOCKFILE").write_bytes(b"cd export leftovers")
    scan = read_scan(folder)
    assert scan.hu.shape == (6, 256, 256) and "1 non-DICOM file(s)" in scan.notes[0]


def test_series_seg_references_sources(phantom, series_result):
    import highdicom as hd

    _, out = series_result
    seg = hd.seg.segread(out / "seg.dcm")
    src = {ds.SOPInstanceUID: ds for ds in phantom["datasets"]}
    assert (seg.Rows, seg.Columns) == (256, 256) and seg.Modality == "SEG"
    refs = [
        r.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for r in s.ReferencedInstanceSequence
    ]
    assert set(refs) == set(src)
    nii = np.asarray(nib.load(out / "mask.nii.gz").dataobj).transpose(2, 1, 0)
    lesion_slices = set(np.flatnonzero(nii.reshape(6, -1).any(1)).tolist())
    frames = seg.PerFrameFunctionalGroupsSequence
    assert len(frames) == len(lesion_slices)
    order = sorted(src.values(), key=lambda d: d.InstanceNumber)  # instance k+1 = slice k
    for i, fg in enumerate(frames):
        uid = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
        np.testing.assert_allclose(ipp, np.array(src[uid].ImagePositionPatient, float), atol=1e-3)
        k = src[uid].InstanceNumber - 1
        assert order[k].SOPInstanceUID == uid and k in lesion_slices
        np.testing.assert_array_equal(seg.pixel_array[i] > 0, nii[k] > 0)


def test_overlay_png(series_result):
    from PIL import Image

    summary, out = series_result
    n = summary["lesion"]["slices"]
    with Image.open(out / "overlay.png") as im:
        assert im.size == (min(n, 4) * 256, -(-n // 4) * 256) and im.mode == "RGB"
        a = np.asarray(im)
    assert ((a[..., 0] > 200) & (a[..., 1] < 80)).sum() > 50  # red outline pixels


def test_multiframe_enhanced_ct_matches_the_series(phantom, series_result, tmp_path):
    import highdicom as hd

    mf = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=phantom["datasets"][::-1],
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    path = tmp_path / "enhanced.dcm"
    mf.save_as(path)
    summary = predict(path, "default", out=tmp_path / "out", progress=False)
    series_img = nib.load(series_result[1] / "mask.nii.gz")
    img = nib.load(tmp_path / "out" / "mask.nii.gz")
    np.testing.assert_allclose(img.affine, series_img.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(series_img.dataobj))
    assert summary["lesion"] == series_result[0]["lesion"]
    seg = hd.seg.segread(tmp_path / "out" / "seg.dcm")
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == mf.SOPInstanceUID


def test_cli_ct_small(tmp_path, capsys):
    import highdicom as hd

    src = _testdata("CT_small.dcm")
    rc = main(["predict", str(src), "--out", str(tmp_path), "--threads", "2"])
    assert rc == 0, capsys.readouterr().err
    ds = pydicom.dcmread(src)
    img = nib.load(tmp_path / "mask.nii.gz")
    assert img.shape == (128, 128, 1)
    normal = np.cross(ds.ImageOrientationPatient[:3], ds.ImageOrientationPatient[3:])
    want = _ras_affine(
        [float(v) for v in ds.ImageOrientationPatient],
        tuple(float(v) for v in ds.PixelSpacing),
        normal * float(ds.SliceThickness),
        np.array(ds.ImagePositionPatient, float),
    )
    np.testing.assert_allclose(img.affine, want, atol=1e-5)
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert (seg.Rows, seg.Columns) == (ds.Rows, ds.Columns)
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    ipp = seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    np.testing.assert_allclose(np.array(ipp, float), np.array(ds.ImagePositionPatient, float))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"]["checkpoint"] == "default" and summary["modality"] == "CT"


def _one_error_line(capsys, args: list[str], *words: str) -> str:
    rc = main(["predict", *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


def test_refuses_mr_and_other_modalities(tmp_path, capsys):
    _one_error_line(capsys, [str(_testdata("MR_small.dcm")), "-o", str(tmp_path)], "modality MR")
    multi = _testdata("SC_rgb_rle_2frame.dcm")
    _one_error_line(capsys, [str(multi), "-o", str(tmp_path)], "modality OT", "CT only")
    assert not any(tmp_path.iterdir())


def test_missing_decoder_one_line(tmp_path, capsys):
    """Real JPEG Lossless pixel data (no decoder without pylibjpeg-libjpeg or gdcm), as CT."""
    from pydicom.pixels import get_decoder

    ds = pydicom.dcmread(_testdata("SC_rgb_jpeg_gdcm.dcm"))
    if get_decoder(ds.file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    ds.Modality = "CT"
    ds.save_as(tmp_path / "ct.dcm")
    _one_error_line(capsys, [str(tmp_path / "ct.dcm"), "-o", str(tmp_path / "o")], "no decoder")


def test_bad_inputs(tmp_path, capsys, phantom):
    (tmp_path / "empty").mkdir()
    _one_error_line(capsys, [str(tmp_path / "empty"), "-o", str(tmp_path / "o")], "no DICOM")
    (tmp_path / "junk.dcm").write_bytes(b"not a scan" * 50)
    _one_error_line(capsys, [str(tmp_path / "junk.dcm"), "-o", str(tmp_path / "o")], "not a DICOM")
    (tmp_path / "junk.nii.gz").write_bytes(b"\x1f\x8b broken")
    _one_error_line(capsys, [str(tmp_path / "junk.nii.gz"), "-o", str(tmp_path / "o")], "NIfTI")
    four_d = str(Path(data_path) / "example4d.nii.gz")
    _one_error_line(capsys, [four_d, "-o", str(tmp_path / "o")], "4D NIfTI")
    _one_error_line(capsys, [str(tmp_path / "nope"), "-o", str(tmp_path / "o")], "no such")
    _one_error_line(
        capsys, [str(phantom["folder"]), "-o", str(tmp_path / "o"), "--artifact", "x"], "export"
    )
    assert not (tmp_path / "o").exists()


def test_mixed_series_needs_series_uid(tmp_path, capsys, phantom):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for f in sorted(phantom["folder"].iterdir())[:2]:
        shutil.copy(f, folder)
    shutil.copy(_testdata("CT_small.dcm"), folder / "ct_small")
    _one_error_line(capsys, [str(folder), "-o", str(tmp_path / "o")], "2 series", "--series")
    uid = str(pydicom.dcmread(folder / "ct_small").SeriesInstanceUID)
    assert main(["predict", str(folder), "-o", str(tmp_path / "o"), "--series", uid]) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["shape_zyx"] == [1, 128, 128]


def test_png_phantom_slice(tmp_path):
    from PIL import Image

    s = synth_slices(1, seed=5, size=256, lesion=True)[0]
    pre = Preprocessing()
    Image.fromarray((pre.window(s.hu) * 255 + 0.5).astype(np.uint8)).save(tmp_path / "slice.png")
    summary = predict(tmp_path / "slice.png", "default", out=tmp_path / "o", progress=False)
    with Image.open(tmp_path / "o" / "mask.png") as im:
        m = np.asarray(im) > 0
    assert m.shape == (256, 256) and dice(m, s.mask) > 0.5
    assert "seg" not in summary["files"] and summary["notes"]


class EchoRunner:
    """Logits [0.5 - v, v - 0.5] of the first channel v: the mask is 'window(hu) > 0.5'."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and x.shape[2:] == (64, 64)
        v = x[:, :1]
        return np.concatenate([0.5 - v, v - 0.5], axis=1)


@pytest.mark.parametrize("shape", [(40, 50), (64, 64), (150, 90), (200, 333)])
def test_pad_and_tiles_map_back_exactly(shape):
    pre = Preprocessing(size=64)
    hu = np.random.default_rng(1).uniform(-400, 400, (2, *shape)).astype(np.float32)
    mask = predict_volume(hu, EchoRunner(), pre, progress=False)
    np.testing.assert_array_equal(mask, (pre.window(hu) > 0.5).astype(np.uint8))


def test_resize_maps_back_to_the_grid():
    from scipy.ndimage import gaussian_filter

    pre = Preprocessing(size=64, fit="resize")
    hu = gaussian_filter(np.random.default_rng(2).normal(0, 3000, (90, 130)), 6)[None]
    mask = predict_volume(hu.astype(np.float32), EchoRunner(), pre, progress=False)
    assert mask.shape == hu.shape
    assert (mask == (pre.window(hu) > 0.5)).mean() > 0.97


def test_tile_starts_cover_and_overlap():
    for n in (65, 100, 257, 512, 1000):
        starts = tile_starts(n, 64)
        assert starts[0] == 0 and starts[-1] == n - 64
        assert all(64 - (b - a) >= 8 for a, b in zip(starts, starts[1:], strict=False))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """An export folder with one tiny ONNX model (32 px, trained a few steps to mark bright
    tissue) under two artifact names."""
    import torch

    from lightseg.artifact import Artifact, Manifest, TensorSpec
    from lightseg.fileio import sha256_path
    from lightseg.models import create_model

    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    model = create_model("lightunet", base=4)
    x = torch.rand(8, 1, 32, 32).repeat(1, 3, 1, 1)
    y = (x[:, 0] > 0.6).long()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation/tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 32, 32),),
            str(folder / "model.onnx"),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    spec = {
        "inputs": [TensorSpec("image", ["batch", 3, 32, 32])],
        "outputs": [TensorSpec("logits", ["batch", 2, 32, 32])],
        "sha256": sha256_path(folder / "model.onnx"),
    }
    arts = [
        Artifact(name, "model.onnx", "onnxruntime", "fp32", "onnx", targets=targets, **spec)
        for name, targets in (("onnx-fp32", []), ("onnx-picked", ["x86-auto"]))
    ]
    Manifest(
        source={"architecture": "lightunet", "weights_sha256": "0" * 64},
        preprocessing=Preprocessing(size=32).to_dict(),
        classes=["background", "lesion"],
        artifacts=arts,
        extra={"auto_pick": {"chosen": "onnx-picked"}},
    ).save(folder)
    return folder, model


def test_export_folder_on_nifti(tiny_export, tmp_path):
    folder, model = tiny_export
    src = Path(data_path) / "anatomical.nii"
    summary = predict(src, str(folder), out=tmp_path / "a", progress=False)
    assert summary["model"]["artifact"] == "onnx-picked"
    summary = predict(src, str(folder), "onnx-fp32", out=tmp_path / "b", progress=False)
    assert summary["model"]["artifact"] == "onnx-fp32" and "seg" not in summary["files"]
    inp, got = nib.load(src), nib.load(tmp_path / "b" / "mask.nii.gz")
    assert got.shape == inp.shape and got.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(got.affine, inp.affine)
    for form in ("qform", "sform"):
        assert int(got.header[f"{form}_code"]) == int(inp.header[f"{form}_code"])
    scan = read_scan(src)
    with TorchRunner(model=model, threads=1) as ref:
        want = predict_volume(scan.hu, ref, Preprocessing(size=32), progress=False)
    assert (np.asarray(got.dataobj).transpose(2, 1, 0) == want).mean() > 0.999  # ORT vs torch


def test_jpeg2000_ct_512_or_missing_decoder(tiny_export, tmp_path, capsys):
    """A real 512 x 512 JPEG 2000 CT through 32 px tiles back to its full grid (one line if
    no decoder is installed)."""
    from pydicom.pixels import get_decoder

    src = _testdata("693_J2KI.dcm")
    rc = main(["predict", str(src), "-o", str(tmp_path), "-m", str(tiny_export[0])])
    err = capsys.readouterr().err
    if not get_decoder(pydicom.dcmread(src).file_meta.TransferSyntaxUID).is_available:
        assert rc == 2 and "no decoder is installed" in err and err.count("\n") == 1
        return
    assert rc == 0, err
    img = nib.load(tmp_path / "mask.nii.gz")
    assert img.shape == (512, 512, 1)
    scan = read_scan(src)
    with TorchRunner(model=tiny_export[1], threads=1) as ref:
        want = predict_volume(scan.hu, ref, Preprocessing(size=32), progress=False)
    assert (np.asarray(img.dataobj).transpose(2, 1, 0) == want).mean() > 0.999  # ORT vs torch
    assert 0.05 < want.mean() < 0.95


def test_nifti_writer_keeps_header_but_not_scaling(tmp_path):
    src = Path(data_path) / "anatomical.nii"
    scan = read_scan(src)
    mask = np.zeros(scan.hu.shape, np.uint8)
    mask[3, 5:9, 7:12] = 1
    write_nifti_mask(tmp_path / "m.nii.gz", mask, scan)
    img = nib.load(tmp_path / "m.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), mask)
    np.testing.assert_array_equal(img.affine, nib.load(src).affine)
