"""Session fixtures shared by tests/realdata and tests/scale: a tiny checkpoint, its ONNX export,
phantom scans as DICOM and NIfTI."""

from __future__ import annotations

import pytest
from scan_data import PRE, dicom_dataset, export_dir, nifti_dataset, train_tiny

from lightseg.checkpoint import save_checkpoint


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(checkpoint folder, export folder)."""
    model = train_tiny()
    root = tmp_path_factory.mktemp("tiny")
    ck = save_checkpoint(model, root / "ck", "lightunet", PRE)
    return ck, export_dir(model, ck, root / "export")


@pytest.fixture(scope="session")
def dicom_masked(tmp_path_factory):
    return dicom_dataset(tmp_path_factory.mktemp("dicom-masked"), masks=True)


@pytest.fixture(scope="session")
def dicom_bare(tmp_path_factory):
    return dicom_dataset(tmp_path_factory.mktemp("dicom-bare"), masks=False)


@pytest.fixture(scope="session")
def nifti_masked(tmp_path_factory):
    return nifti_dataset(tmp_path_factory.mktemp("nifti") / "cases")
