"""Readers: round trips per format, bad input named in one clear error, property tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightseg.data import Preprocessing
from lightseg.data.dataset import build_dataset
from lightseg.data.readers import (
    check_folder,
    png_to_hu,
    read_dicom_series,
    read_folder,
    read_nifti,
    read_npz,
    read_victre,
)
from lightseg.errors import LightsegError


def write_ct_series(folder: Path, hu: np.ndarray, spacing=(2.0, 0.5, 0.5), **over) -> list[Path]:
    """Write a CT series with pydicom, slices in shuffled file order (int16 + rescale)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    slope, intercept = 0.5, -1024.0
    paths = []
    for z in np.random.default_rng(0).permutation(hu.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * spacing[0]]
        ds.InstanceNumber = int(z) + 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        raw = np.round((hu[z] - intercept) / slope).astype(np.int16)
        ds.PixelData = raw.tobytes()
        for k, v in over.items():
            setattr(ds, k, v)
        p = folder / f"IM{z:04d}"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def _hu(shape=(4, 16, 16), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.round(rng.uniform(-1000, 1000, shape) * 2) / 2).astype(np.float32)


def test_dicom_round_trip_same_hu_sorted_spacing(tmp_path: Path) -> None:
    hu = _hu()
    write_ct_series(tmp_path / "s", hu)
    v = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(v.hu, hu)  # files were written shuffled: sorted by position
    assert v.spacing == (2.0, 0.5, 0.5) and v.mask is None


def test_dicom_with_nifti_label(tmp_path: Path) -> None:
    import nibabel as nib

    hu = _hu()
    write_ct_series(tmp_path, hu)
    mask = np.zeros(hu.shape, np.uint8)
    mask[2, 4:8, 5:9] = 1
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), np.eye(4)), tmp_path / "mask.nii.gz")
    (v,) = read_folder(tmp_path)
    np.testing.assert_array_equal(v.mask, mask)
    np.testing.assert_array_equal(v.hu, hu)


def test_dicom_bad_inputs_name_the_file(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "trunc", _hu())
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 100])
    with pytest.raises(LightsegError, match=paths[1].name):
        read_dicom_series(tmp_path / "trunc")

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notdicom.dcm").write_bytes(b"hello")
    with pytest.raises(LightsegError, match="notdicom.dcm"):
        read_dicom_series(tmp_path / "junk")

    write_ct_series(tmp_path / "mr", _hu(), Modality="MR")
    with pytest.raises(LightsegError, match="modality 'MR'"):
        read_dicom_series(tmp_path / "mr")

    write_ct_series(tmp_path / "mixed", _hu((2, 8, 8)))
    write_ct_series(tmp_path / "other", _hu((2, 8, 8)))
    for p in (tmp_path / "other").iterdir():
        p.rename(tmp_path / "mixed" / ("B" + p.name))
    with pytest.raises(LightsegError, match="mixed series"):
        read_dicom_series(tmp_path / "mixed")

    (tmp_path / "empty").mkdir()
    with pytest.raises(LightsegError, match="no DICOM files"):
        read_dicom_series(tmp_path / "empty")


def test_nifti_image_and_label(tmp_path: Path) -> None:
    import nibabel as nib

    hu, mask = _hu((3, 8, 10)), np.zeros((3, 8, 10), np.uint8)
    mask[1, 2:4, 3:6] = 1
    aff = np.diag([0.4, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), aff), tmp_path / "case.nii.gz")
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), aff), tmp_path / "case_mask.nii.gz")
    v = read_nifti(tmp_path / "case.nii.gz", tmp_path / "case_mask.nii.gz")
    np.testing.assert_array_equal(v.hu, hu)
    np.testing.assert_array_equal(v.mask, mask)
    assert v.spacing == pytest.approx((2.0, 0.5, 0.4))
    (w,) = read_folder(tmp_path)
    assert int(w.mask.sum()) == 6

    nib.save(nib.Nifti1Image(mask[:2].transpose(2, 1, 0), aff), tmp_path / "case_mask.nii.gz")
    with pytest.raises(LightsegError, match="case_mask.nii.gz"):
        read_folder(tmp_path)


def test_victre_labels_to_hu_and_mass_mask(tmp_path: Path) -> None:
    labels = np.zeros((4, 6, 5), np.uint8)  # (z, y, x)
    labels[:, 1:5, 1:4] = 1
    labels[1:3, 2:4, 2] = 29
    labels[2, 2, 2] = 200
    (tmp_path / "p.raw.gz").write_bytes(gzip.compress(labels.tobytes()))
    (tmp_path / "p.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 5 6 4\nElementSpacing = 0.1 0.2 0.3\n"
        "ElementType = MET_UCHAR\nElementDataFile = p.raw\n"
    )
    v = read_victre(tmp_path / "p.mhd")
    assert v.hu.shape == (4, 6, 5) and v.spacing == pytest.approx((0.3, 0.2, 0.1))
    assert v.hu[0, 0, 0] == -1000 and -190 <= v.hu[0, 2, 2] <= -64
    assert -12 <= v.hu[1, 2, 2] <= 199
    assert v.mask.sum() == 1 and v.mask[2, 2, 2] == 1
    (tmp_path / "p.raw.gz").write_bytes(gzip.compress(labels.tobytes()[:-7]))
    with pytest.raises(LightsegError, match="p.raw.gz"):
        read_victre(tmp_path / "p.mhd")


def test_png_pairs_map_grey_to_hu(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    g = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    Image.fromarray(np.stack([g] * 3, -1)).save(tmp_path / "images" / "a.png")
    Image.fromarray((g > 128).astype(np.uint8) * 255).save(tmp_path / "masks" / "a.png")
    (v,) = read_folder(tmp_path)
    np.testing.assert_allclose(v.hu[0], png_to_hu(g))
    assert v.hu[0, 0, 0] == -300 and v.mask.sum() == 16 * 7
    pre = Preprocessing(size=16)
    np.testing.assert_allclose(pre(v.hu[0])[0], g / 255.0, atol=1e-6)  # window undoes it


def test_bad_slices_are_listed_by_check(tmp_path: Path) -> None:
    np.savez(tmp_path / "good.npz", hu=np.zeros((8, 8), np.float32), mask=np.zeros((8, 8)))
    bad = np.zeros((8, 8), np.float32)
    bad[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", hu=bad, mask=np.zeros((8, 8)))
    np.savez(tmp_path / "shape.npz", hu=np.zeros((8, 8)), mask=np.zeros((8, 9)))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    np.save(tmp_path / "lonely.npy", np.zeros((8, 8)))
    problems = check_folder(tmp_path)
    text = "\n".join(problems)
    assert len(problems) == 4, problems
    for name in ("nan.npz", "shape.npz", "broken.npz", "lonely.npy"):
        assert name in text
    assert "NaN" in text and "good.npz" not in text
    with pytest.raises(LightsegError, match="broken.npz"):
        read_folder(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(LightsegError, match="no readable data"):
        read_folder(tmp_path)
    assert len(check_folder(tmp_path)) == 1


def test_folder_dataset_respects_lesion_fraction(tmp_path: Path) -> None:
    for i in range(10):
        m = np.zeros((16, 16), np.uint8)
        if i < 4:
            m[4:8, 4:8] = 1
        np.savez(tmp_path / f"s{i}.npz", hu=np.full((16, 16), 40.0, np.float32), mask=m)
    ds = build_dataset(str(tmp_path), Preprocessing(size=16), 5, 0, lesion_fraction=0.6)
    assert len(ds) == 5 and sum(int(ds[i][1].any()) for i in range(5)) == 3
    x, y = ds[0]
    assert tuple(x.shape) == (3, 16, 16) and str(y.dtype) == "torch.int64"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_npz_round_trip_property(tmp_path: Path, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-1024, 3000, (h, w)).astype(np.float32)
    mask = (rng.random((h, w)) < 0.3).astype(np.uint8)
    p = tmp_path / f"x{seed}_{h}_{w}.npz"
    np.savez(p, hu=hu, mask=mask)
    v = read_npz(p)
    np.testing.assert_array_equal(v.hu[0], hu)
    np.testing.assert_array_equal(v.mask[0], mask)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    z=st.integers(1, 4),
    slope=st.sampled_from([1.0, 0.5, 2.0]),
    intercept=st.sampled_from([-1024.0, 0.0, -1000.0]),
    seed=st.integers(0, 2**16),
)
def test_dicom_rescale_property(
    tmp_path: Path, z: int, slope: float, intercept: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(-2000, 2000, (z, 6, 5)).astype(np.float32)
    hu = raw * slope + intercept
    folder = tmp_path / f"d{seed}_{z}_{slope}_{intercept}"
    write_ct_series(folder, hu)  # stored as int16 with slope 0.5, intercept -1024
    v = read_dicom_series(folder)
    np.testing.assert_allclose(v.hu, hu, atol=0.5)
