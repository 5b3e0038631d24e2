"""Parity and eval on DICOM/NIfTI folders: scans found, masks paired, slices on predict's grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scan_data import PRE, VOLUMES, volumes

from lightseg.benchmarks.inputs import load_set
from lightseg.benchmarks.scan_parity import run_parity_scans
from lightseg.checkpoint import load_checkpoint
from lightseg.cli import main
from lightseg.data.scans import find_scans, is_scan_data, scan_slices
from lightseg.train import evaluate_arrays

N_SLICES = sum(n for n, _ in VOLUMES)
N_INPUTS = 3 * 4 + 2  # the 40 px slices are 2 x 2 tiles of 32 px, the 24 px ones padded


def test_find_scans_pairs_nifti_masks(nifti_masked: Path) -> None:
    items = find_scans(nifti_masked)
    assert [(Path(i.path).name, Path(i.mask).relative_to(nifti_masked)) for i in items] == [
        ("c0.nii.gz", Path("c0_mask.nii.gz")),
        ("c1.nii.gz", Path("labels/c1.nii.gz")),
    ]
    assert is_scan_data(str(nifti_masked)) and not is_scan_data("verification")


def test_slices_follow_predicts_tiles(nifti_masked: Path) -> None:
    s = scan_slices(find_scans(nifti_masked)[0], PRE)
    hu, m = volumes()[0]
    assert s.slices == 3 and s.where[:4] == [(0, 0, 0), (0, 0, 8), (0, 8, 0), (0, 8, 8)]
    np.testing.assert_array_equal(s.x[3], PRE(hu[0, 8:, 8:]))
    np.testing.assert_array_equal(s.masks[3], m[0, 8:, 8:])


@pytest.mark.parametrize("masked", [True, False])
def test_parity_on_dicom_series(tiny, dicom_masked, dicom_bare, masked: bool) -> None:
    data = str(dicom_masked if masked else dicom_bare)
    run = run_parity_scans(tiny[1], data, threads=1)
    rec = run.meta["inputs"]
    assert (rec["scans"], rec["slices"], rec["n"]) == (2, N_SLICES, N_INPUTS)
    assert rec["masks"] == ("all" if masked else "none")
    assert run.meta["data"].endswith("with masks)" if masked else "without masks)")
    (v,) = run.verdicts
    assert v.status == "pass" and v.metrics["slices"] == N_INPUTS
    assert v.metrics["prob_abs_max"] < 1e-4  # ONNX fp32 against its own PyTorch weights
    assert ("gt_dice_ratio" in v.metrics) is masked  # no masks: no Dice-vs-GT gate
    # the same inputs load_set gives (bench, pack), masks included
    x, m, _, record = load_set(data, PRE)
    np.testing.assert_array_equal(x, run.inputs)
    assert (m is None) is (not masked) and record == rec


def test_parity_cli_writes_the_data_record(tiny, dicom_masked, tmp_path) -> None:
    out = tmp_path / "p.json"
    assert main(["parity", str(tiny[1]), "--data", str(dicom_masked), "--json", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["inputs"]["path"] == str(dicom_masked) and meta["inputs"]["scans"] == 2


def test_eval_on_nifti_equals_eval_of_the_arrays(tiny, nifti_masked, tmp_path) -> None:
    out = tmp_path / "e.json"
    assert main(["eval", str(tiny[0]), "--data", str(nifti_masked), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    parts = [scan_slices(i, PRE) for i in find_scans(nifti_masked)]
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.masks for p in parts])
    summary, cases = evaluate_arrays(load_checkpoint(tiny[0]).model, x, y)
    assert doc["cases"] == cases
    assert doc["summary"]["lesion_dice"] == pytest.approx(summary["lesion_dice"], abs=1e-12)
    assert doc["data"]["scans"] == 2 and doc["data"]["masks"] == "all"
    assert len(cases) == N_INPUTS and summary["n_lesion_cases"] > 0


def _one_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_eval_without_masks_says_so(tiny, dicom_bare, capsys) -> None:
    line = _one_error(capsys, ["eval", str(tiny[0]), "--data", str(dicom_bare)])
    assert "eval needs masks" in line and "2 of 2 scans" in line


def test_mask_of_the_wrong_shape_is_one_line(tiny, tmp_path, capsys) -> None:
    from scan_data import write_nifti

    hu, m = volumes()[1]
    write_nifti(tmp_path / "a.nii.gz", hu)
    write_nifti(tmp_path / "a_seg.nii.gz", m[:1], np.uint8)
    line = _one_error(capsys, ["eval", str(tiny[0]), "--data", str(tmp_path)])
    assert "a_seg.nii.gz: mask shape" in line
