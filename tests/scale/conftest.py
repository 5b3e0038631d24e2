"""The real-data fixtures (tests/realdata) and a local two-CPU Ray, once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realdata"))  # scan_data helpers

from scan_fixtures import dicom_bare, dicom_masked, nifti_masked, tiny  # noqa: E402,F401


@pytest.fixture(scope="session")
def ray_local():
    """Ray on two CPUs, no dashboard; skipped where Ray is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lightseg[ray]'")
    from lightseg.pipeline.scale import start_ray

    start_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
