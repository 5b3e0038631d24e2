"""Bad options and unwritable outputs are refused in one line (exit 2) before any heavy work;
import-checkpoint --force deletes only a lightseg checkpoint folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from rel_helpers import TINY_TRAIN, cli, one_error, snapshot, tiny_checkpoint


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if training data is built, a model is profiled or a checkpoint loaded."""
    import lightseg.checkpoint
    import lightseg.data.dataset
    import lightseg.profile

    def heavy(*a, **k):
        raise AssertionError("heavy work started before the options were checked")

    monkeypatch.setattr(lightseg.data.dataset, "build_dataset", heavy)
    monkeypatch.setattr(lightseg.profile, "profile_model", heavy)
    monkeypatch.setattr(lightseg.checkpoint, "load_checkpoint", heavy)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "bogus"], "unknown model 'bogus'"),
        (["--base", "1"], "base must be 2..256"),
        (["--base", "100000"], "base must be 2..256"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--lr", "inf"], "lr must be a finite number"),
        (["--lr", "-1"], "lr must be a finite number"),
        (["--threads", "-1"], "--threads"),
        (["--size", "100000"], "size must be an integer in 16..2048"),
        (["--size", "8"], "size must be an integer in 16..2048"),
        (["--crop", "-3"], "--crop"),
        (["--crop", "500", "--size", "64"], "crop must be 1..size"),
        (["--batch", "0"], "must be positive"),
        (["--seed", "-1"], "seed must be an integer"),
        (["--train-n", "100000000"], "train_n must be an integer"),
        (["--train-n", "900000", "--size", "2048"], "GiB"),
    ],
)
def test_bad_train_options(capsys, tmp_path, no_heavy_work, args, words):
    out = tmp_path / "run"
    line = one_error(capsys, "train", "--out", out, *args)
    assert words in line, line
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("3x100000x100000", "at most 4x2048x2048"),
        ("3x2049x16", "at most"),
        ("9x32x32", "at most"),
        ("0x32x32", "positive"),
        ("3x32", "must look like"),
        ("axbxc", "must look like"),
    ],
)
def test_bad_profile_input(capsys, no_heavy_work, spec, words):
    assert words in one_error(capsys, "profile", "--input", spec)


def test_profile_channels_must_match_the_checkpoint(capsys, tmp_path):
    ck = tiny_checkpoint(tmp_path / "ck")
    assert "takes 3 channels, not 1" in one_error(capsys, "profile", "-m", ck, "--input", "1x32x32")


def _unwritable(tmp_path: Path) -> list[tuple[str, Path]]:
    """Output folders that cannot be written here: below a file, a read-only folder (not as
    root), a pseudo file system that refuses new entries."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [("below a file", blocker / "out")]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):  # root writes anyway
        cases.append(("read-only folder", ro / "out"))
    for base in (Path("/sys"), Path("/proc")):
        try:
            (base / "lightseg-write-probe").mkdir()
        except OSError:
            cases.append(("pseudo file system", base / "lightseg-out"))
            break
    return cases


def test_unwritable_outputs_are_refused_up_front(capsys, tmp_path, no_heavy_work):
    for why, out in _unwritable(tmp_path):
        for args in (
            ["train", "--out", out, "--steps", "1", *TINY_TRAIN],
            ["eval", "default", "--out", out],
            ["eval", "default", "--json", out / "m.json"],
            ["profile", "--json", out / "p.json"],
        ):
            line = one_error(capsys, *args)
            assert str(out) in line or "a file" in line, (why, line)


def test_json_output_that_is_a_directory(capsys, tmp_path, no_heavy_work):
    (tmp_path / "d").mkdir()
    assert "is a directory" in one_error(capsys, "profile", "--json", tmp_path / "d")
    assert "is a directory" in one_error(capsys, "eval", "--json", tmp_path / "d")


def test_eval_option_bounds(capsys, no_heavy_work):
    assert "--n must be" in one_error(capsys, "eval", "--n", "0")
    assert "--n must be" in one_error(capsys, "eval", "--n", "10000000")
    assert "--worst" in one_error(capsys, "eval", "--worst", "-1")


@pytest.fixture
def pth(tmp_path: Path) -> Path:
    from lightseg.models import create_model

    torch.manual_seed(0)
    p = tmp_path / "m.pth"
    torch.save(create_model("unet", base=2).state_dict(), p)
    return p


def test_force_never_deletes_a_foreign_folder(capsys, tmp_path, pth):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    before = snapshot(precious)
    assert "exists; pass --force" in one_error(capsys, "import-checkpoint", pth, "-o", precious)
    line = one_error(capsys, "import-checkpoint", pth, "-o", precious, "--force")
    assert "not a lightseg checkpoint folder" in line
    assert snapshot(precious) == before

    # a checkpoint folder with one unexpected file is not replaced either
    ck = tiny_checkpoint(tmp_path / "ck")
    (ck / "notes.txt").write_text("mine")
    before = snapshot(ck)
    assert "not a lightseg" in one_error(capsys, "import-checkpoint", pth, "-o", ck, "--force")
    assert snapshot(ck) == before

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "not a lightseg" in one_error(capsys, "import-checkpoint", pth, "-o", a_file, "--force")
    assert a_file.read_text() == "x"


def test_force_replaces_a_checkpoint_folder(capsys, tmp_path, pth):
    from lightseg.checkpoint import load_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck")
    rc, _, err = cli(capsys, "import-checkpoint", pth, "-o", ck, "--force")
    assert rc == 0 and err == []
    assert load_checkpoint(ck).arch == "unet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "m.pth"]  # no backup left
    (tmp_path / "empty").mkdir()
    assert cli(capsys, "import-checkpoint", pth, "-o", tmp_path / "empty", "--force")[0] == 0


def test_save_checkpoint_refuses_to_replace_a_foreign_folder(tmp_path):
    from lightseg.checkpoint import save_checkpoint
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.errors import LightsegError
    from lightseg.models import create_model

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("keep")
    with pytest.raises(LightsegError, match="not a lightseg checkpoint folder"):
        save_checkpoint(create_model("lightunet", base=2), tmp_path / "mine", "lightunet",
                        Preprocessing(size=16))  # fmt: skip
    assert (tmp_path / "mine" / "a.txt").read_text() == "keep"
