"""The session fixtures of scan_fixtures.py."""

from scan_fixtures import dicom_bare, dicom_masked, nifti_masked, tiny  # noqa: F401
