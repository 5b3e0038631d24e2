"""`lightseg data` commands and the training dataset (augmentation, lesion crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightseg.cli import main
from lightseg.data import Preprocessing, synth_slices
from lightseg.data.dataset import augment_pair, build_dataset, lesion_crop
from lightseg.data.readers import read_folder


@pytest.mark.parametrize("fmt", ["npz", "nifti", "png"])
def test_synth_then_check_round_trip(tmp_path: Path, fmt: str, capsys) -> None:
    out = tmp_path / fmt
    assert main(["data", "synth", "--n", "3", "--seed", "4", "--size", "32", "--out", str(out),
                 "--format", fmt]) == 0  # fmt: skip
    assert (out / "montage.png").stat().st_size > 100
    assert main(["data", "check", str(out)]) == 0
    assert "3 with a lesion" in capsys.readouterr().out
    ref = synth_slices(3, 4, size=32)
    vols = read_folder(out)
    for v, s in zip(vols, ref, strict=True):
        np.testing.assert_array_equal(v.mask[0], s.mask)
        tol = 600 / 255 if fmt == "png" else 1e-4  # png holds windowed grey values
        inside = (s.hu > -300) & (s.hu < 300)
        np.testing.assert_allclose(v.hu[0][inside], s.hu[inside], atol=tol)
    if fmt == "npz":
        with np.load(out / "slice_00000.npz") as z:
            assert z["hu"].dtype == np.float32 and z["mask"].dtype == np.uint8


def test_synth_refuses_nonempty_out_and_bad_format(tmp_path: Path, capsys) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main(["data", "synth", "--n", "2", "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "synth", "--n", "2", "--out", str(tmp_path / "y"), "--format", "jpg"]) == 2
    assert not (tmp_path / "y").exists() and (tmp_path / "x" / "keep.txt").exists()
    assert "error:" in capsys.readouterr().err


def test_check_lists_every_problem_and_exits_2(tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "a.npz", hu=np.zeros((4, 4), np.float32), mask=np.zeros((4, 5)))
    np.savez(tmp_path / "b.npz", hu=np.full((4, 4), np.nan, np.float32), mask=np.zeros((4, 4)))
    assert main(["data", "check", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "a.npz" in out.out and "b.npz" in out.out and "2 problem(s)" in out.err


def test_show_writes_a_montage(tmp_path: Path, capsys) -> None:
    from PIL import Image

    main(["data", "synth", "--n", "4", "--size", "32", "--out", str(tmp_path / "d")])
    capsys.readouterr()
    dst = tmp_path / "m.png"
    assert main(["data", "show", str(tmp_path / "d"), "--out", str(dst)]) == 0
    assert capsys.readouterr().out.strip() == str(dst)
    img = np.asarray(Image.open(dst).convert("RGB"))
    assert img.shape == (256, 1024, 3)
    red = img[..., 0].astype(int) - img[..., 1] > 60
    assert red.sum() > 50  # the lesion overlay is drawn


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    s = synth_slices(1, 0, size=64)[0]
    pre = Preprocessing(size=64)
    img, mask = pre.window(s.hu), s.mask.astype(np.int64)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, m = augment_pair(img, mask, rng)
        assert a.shape == img.shape and a.dtype == np.float32 and 0 <= a.min() <= a.max() <= 1
        assert abs(int(m.sum()) - int(mask.sum())) <= 0.2 * mask.sum()  # rotation resamples
        # the lesion is brighter than its surroundings, so aligned masks cover bright pixels
        assert a[m > 0].mean() > a[(m == 0) & (a > 0.1)].mean() + 0.05


def test_lesion_crop_contains_lesion() -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((64, 64), np.int64)
    mask[50:54, 3:6] = 1
    img = np.zeros((64, 64), np.float32)
    for _ in range(20):
        a, m = lesion_crop(img, mask, 16, rng)
        assert a.shape == (16, 16) and m.sum() > 0


def test_synth_dataset_items_and_fraction() -> None:
    ds = build_dataset("synth", Preprocessing(size=64), 10, 0, augment=True, crop=32)
    assert len(ds) == 10
    have = [bool(ds[i][1].any()) for i in range(10)]
    assert sum(have[:7]) == 7 and not any(have[7:])  # 70 % lesion slices, crops keep them
    x, y = ds[0]
    assert tuple(x.shape) == (3, 32, 32) and str(x.dtype) == "torch.float32"
    assert tuple(y.shape) == (32, 32) and str(y.dtype) == "torch.int64"
