"""`lightseg parity`: undecided verdicts, --n auto, the recorded input set, and bad input."""

import json

import numpy as np
import pytest
from bench_data import SIZE

from lightseg.cli import main
from lightseg.data import sets


def test_one_slice_is_undecided_exit_1(good_dir, capsys):
    assert main(["parity", str(good_dir), "--n", "1"]) == 1
    err = capsys.readouterr().err
    assert "onnx-fp32 (onnxruntime): undecided: extend the set (--n)" in err


def test_auto_doubles_an_undecided_set_and_records_it(good_dir, tmp_path, monkeypatch):
    spec = sets.SETS["verification"]
    monkeypatch.setitem(sets.SETS, "verification", sets.SetSpec(spec.seed, 1, True, spec.purpose))
    out = tmp_path / "p.json"
    assert main(["parity", str(good_dir), "--json", str(out), "--md", str(tmp_path / "p.md")]) == 0
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert meta["n_auto"]["tried"] == [1, 2] and meta["n"] == 2  # 1 slice: undecided; 2: decided
    assert meta["inputs"] == {"name": "verification", "seed": 202, "n": 2, "source": "phantom",
                              "purpose": spec.purpose}  # fmt: skip
    (b,) = doc["backends"]
    assert b["status"] == "pass" and b["ci"]["flip_rate"] == [0.0, 0.0]
    assert b["ci"]["gt_dice_ratio"] == [1.0, 1.0]
    md = (tmp_path / "p.md").read_text()
    assert "seed 202" in md and "| **pass** | all small |" in md


def test_default_set_is_64_slices(good_dir, tmp_path):
    out = tmp_path / "p.json"
    assert main(["parity", str(good_dir), "--json", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["n"] == 64 and meta["n_auto"]["tried"] == [64]


def npz(tmp_path, images, masks=None):
    path = tmp_path / "in.npz"
    np.savez(path, images=images, **({} if masks is None else {"masks": masks}))
    return str(path)


@pytest.mark.parametrize("case", ["nan", "inf", "mask_shape", "mask_count", "mask_fraction"])
def test_bad_npz_inputs_exit_2_in_one_line(good_dir, tmp_path, capsys, case):
    x = np.random.default_rng(0).random((3, 3, SIZE, SIZE), dtype=np.float32)
    m = np.zeros((3, SIZE, SIZE), np.int64)
    if case in ("nan", "inf"):
        x[1, 0, 2, 2] = np.nan if case == "nan" else np.inf
    elif case == "mask_shape":
        m = np.zeros((3, SIZE, SIZE - 1), np.int64)
    elif case == "mask_count":
        m = m[:2]
    else:
        m = m.astype(np.float32) + 0.5
    assert main(["parity", str(good_dir), "--data", npz(tmp_path, x, m)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert ("NaN/Inf" in err) if case in ("nan", "inf") else ("masks" in err)


BAD_OPTIONS = [(["--threads", "0"], "--threads"), (["--n", "abc"], "--n"), (["--n", "0"], "--n")]


@pytest.mark.parametrize(("args", "words"), BAD_OPTIONS)
def test_bad_options_exit_2_in_one_line(good_dir, capsys, args, words):
    assert main(["parity", str(good_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
