"""--ray gives the single-process results: per-slice metrics exactly, aggregates to 1e-12."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lightseg.benchmarks.scan_parity import run_parity_scans
from lightseg.checkpoint import load_checkpoint
from lightseg.data.scans import RAY_HINT, evaluate_scans, volume_map
from lightseg.errors import LightsegError
from lightseg.pipeline.scale import predict_scans, ray_map


def _close(a, b) -> None:
    """Aggregates equal to 1e-12 (NaN equals NaN), recursing into lists and dicts."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _close(u, v)
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)
    else:
        assert a == b


def test_parity_on_ray_equals_single_process(ray_local, tiny, dicom_masked) -> None:
    one = run_parity_scans(tiny[1], str(dicom_masked), threads=1)
    many = run_parity_scans(tiny[1], str(dicom_masked), threads=1, map_volumes=ray_map())
    np.testing.assert_array_equal(one.reference, many.reference)
    for a, b in zip(one.verdicts, many.verdicts, strict=True):
        assert a.per_image == b.per_image and a.status == b.status == "pass"
        _close(a.metrics, b.metrics)
        _close(a.ci, b.ci)
    assert one.meta["inputs"] == many.meta["inputs"]


def test_eval_on_ray_equals_single_process(ray_local, tiny, nifti_masked) -> None:
    ck = load_checkpoint(tiny[0])
    s1, c1, x1, y1, r1 = evaluate_scans(ck, str(nifti_masked))
    s2, c2, x2, y2, r2 = evaluate_scans(ck, str(nifti_masked), ray_map())
    assert c1 == c2 and r1 == r2
    _close(s1, s2)
    np.testing.assert_array_equal(x1, x2)


def test_predict_on_ray_equals_single_process(ray_local, tiny, nifti_masked, tmp_path) -> None:
    import nibabel as nib

    kw = {"model": str(tiny[0]), "threads": 1}
    one = predict_scans(nifti_masked, tmp_path / "one", **kw)
    many = predict_scans(nifti_masked, tmp_path / "many", ray_map(), **kw)
    assert [s["lesion"] for s in one] == [s["lesion"] for s in many]
    for name in ("c0", "c1"):
        a, b = (nib.load(tmp_path / d / name / "mask.nii.gz").get_fdata() for d in ("one", "many"))
        np.testing.assert_array_equal(a, b)


def test_no_ray_without_the_flag(tiny, nifti_masked, tmp_path) -> None:
    code = (
        "import sys\nfrom lightseg.cli import main\n"
        f"rc = main(['eval', {str(tiny[0])!r}, '--data', {str(nifti_masked)!r}])\n"
        "assert rc == 0 and 'ray' not in sys.modules, rc\n"
    )
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd=tmp_path)


def test_missing_ray_is_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LightsegError, match=r"pip install 'lightseg\[ray\]'"):
        ray_map()
    assert volume_map(False) is map
    with pytest.raises(LightsegError, match="--address needs --ray"):
        volume_map(False, "host:1")
    assert "lightseg[ray]" in RAY_HINT
