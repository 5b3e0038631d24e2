"""Resuming continues the run in --out and only there, keeps its history, refuses a corrupt
state (exit 2), and a replacement of last/ cut between its two renames loses nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rel_helpers import TINY_TRAIN, cli, one_error, snapshot

from lightseg.checkpoint import backup_path, load_checkpoint
from lightseg.train import STATE_JSON, STATE_TENSORS


def _state(run: Path) -> dict:
    return json.loads((run / "last" / STATE_JSON).read_text())


def _resume(capsys, run: Path, steps: int) -> tuple[int, str, list[str]]:
    return cli(capsys, "train", "--resume", "--out", run, "--steps", steps, *TINY_TRAIN)


def test_resume_continues_in_out_and_only_there(capsys, run_copy, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(run_copy, moved)  # the saved config still names the original folder
    before = snapshot(run_copy)
    rc, _, err = _resume(capsys, moved, 4)
    assert rc == 0, err
    assert snapshot(run_copy) == before  # the original run is untouched
    assert _state(moved)["step"] == 4
    assert _state(moved)["config"]["out"] == str(moved)
    summary = json.loads((moved / "summary.json").read_text())
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]  # defect 23: history kept
    assert summary["train_config"]["out"] == str(moved)


def test_summary_keeps_history_across_an_interruption(capsys, run_copy):
    (run_copy / "summary.json").unlink()  # as if killed after the last save
    assert [h["step"] for h in _state(run_copy)["history"]] == [1, 2]
    assert _resume(capsys, run_copy, 3)[0] == 0
    summary = json.loads((run_copy / "summary.json").read_text())
    assert [h["step"] for h in summary["history"]] == [1, 2, 3]
    assert summary["final"]["step"] == 3


def _json_edit(fn):
    def corrupt(last: Path) -> None:
        doc = json.loads((last / STATE_JSON).read_text())
        fn(doc)
        (last / STATE_JSON).write_text(json.dumps(doc))

    return corrupt


def _truncate_tensors(last: Path) -> None:
    p = last / STATE_TENSORS
    p.write_bytes(p.read_bytes()[:200])


def _wrong_shape_tensor(last: Path) -> None:
    from safetensors.torch import load_file, save_file

    t = load_file(last / STATE_TENSORS)
    t["opt.0.exp_avg"] = t["opt.0.exp_avg"].new_zeros(7, 7)
    save_file(t, last / STATE_TENSORS)


def _nan_tensor(last: Path) -> None:
    from safetensors.torch import load_file, save_file

    t = load_file(last / STATE_TENSORS)
    t["opt.1.exp_avg_sq"][...] = float("nan")
    save_file(t, last / STATE_TENSORS)


def _bad_rng(last: Path) -> None:
    from safetensors.torch import load_file, save_file

    t = load_file(last / STATE_TENSORS)
    t["rng.torch"] = t["rng.torch"][:10].clone()
    save_file(t, last / STATE_TENSORS)


@pytest.mark.parametrize(
    ("corrupt", "words"),
    [
        (lambda last: (last / STATE_JSON).write_text("{oops"), "not valid JSON"),
        (lambda last: (last / STATE_JSON).write_text("[]"), "training state is corrupt"),
        (lambda last: (last / STATE_JSON).unlink(), "no training state"),
        (_json_edit(lambda d: d.update(step="2")), "training state is corrupt"),
        (_json_edit(lambda d: d.update(step=-1)), "training state is corrupt"),
        (_json_edit(lambda d: d.update(best_dice=float("nan"))), "training state is corrupt"),
        (_json_edit(lambda d: d.update(history="all")), "training state is corrupt"),
        (_json_edit(lambda d: d["config"].update(evil=1)), "training state is corrupt"),
        (_json_edit(lambda d: d["config"].update(model="resnet")), "unknown model"),
        (_json_edit(lambda d: d["config"].update(lr=float("nan"))), "lr must be"),
        (_json_edit(lambda d: d["config"].update(size=10**6)), "size must be"),
        (_json_edit(lambda d: d["config"]["model_overrides"].update(base=10**6)), "base must"),
        (_json_edit(lambda d: d["config"]["model_overrides"].update(base=4)), "does not fit"),
        (_json_edit(lambda d: d["param_groups"][0].update(lr="fast")), "param_groups"),
        (_json_edit(lambda d: d["param_groups"][0].update(params=[0])), "param_groups"),
        (_json_edit(lambda d: d["param_groups"].append({})), "param_groups"),
        (_json_edit(lambda d: d["scheduler"].update(get_lr=1)), "scheduler"),
        (_json_edit(lambda d: d["scheduler"].update(last_epoch=1.5)), "scheduler"),
        (_truncate_tensors, STATE_TENSORS),
        (_wrong_shape_tensor, "opt.0.exp_avg has shape"),
        (_nan_tensor, "opt.1.exp_avg_sq has NaN"),
        (_bad_rng, "rng.torch"),
    ],
)
def test_corrupt_training_state_is_refused(capsys, run_copy, corrupt, words):
    corrupt(run_copy / "last")
    before = snapshot(run_copy)
    line = one_error(capsys, "train", "--resume", "--out", run_copy, "--steps", "4", *TINY_TRAIN)
    assert words in line, line
    assert snapshot(run_copy) == before  # nothing was written


def test_resume_without_a_run(capsys, tmp_path):
    assert "no training state" in one_error(capsys, "train", "--resume", "--out", tmp_path / "x")


# --- defect 9: a kill between the two renames of save_checkpoint ------------------------------


def _cut_between_renames(run: Path) -> None:
    """What a kill after `last -> .last.old` and before `new -> last` leaves behind."""
    (run / "last").rename(backup_path(run / "last"))


def test_load_recovers_last_from_its_backup(run_copy):
    _cut_between_renames(run_copy)
    ck = load_checkpoint(run_copy / "last")
    assert ck.path == run_copy / "last" and (run_copy / "last" / STATE_JSON).is_file()
    assert not backup_path(run_copy / "last").exists()


def test_resume_recovers_last_from_its_backup(capsys, run_copy):
    _cut_between_renames(run_copy)
    rc, _, err = _resume(capsys, run_copy, 3)
    assert rc == 0, err
    assert _state(run_copy)["step"] == 3
    assert not backup_path(run_copy / "last").exists()


def test_a_new_run_does_not_delete_the_hidden_copy(capsys, run_copy):
    _cut_between_renames(run_copy)
    hidden = snapshot(backup_path(run_copy / "last"))
    line = one_error(capsys, "train", "--out", run_copy, "--steps", "2", *TINY_TRAIN)
    assert "already holds a run" in line
    assert snapshot(run_copy / "last") == hidden  # restored, not deleted


def test_save_after_a_cut_keeps_the_old_checkpoint_until_the_new_one_is_in(run_copy):
    from lightseg.checkpoint import save_checkpoint

    _cut_between_renames(run_copy)
    ck = load_checkpoint(run_copy / "best")
    save_checkpoint(ck.model, run_copy / "last", ck.arch, ck.preprocessing, note="new")
    assert load_checkpoint(run_copy / "last").meta["note"] == "new"
    assert not backup_path(run_copy / "last").exists()
    names = sorted(p.name for p in run_copy.iterdir())
    assert names == ["best", "last", "summary.json"], names  # no temp folder left


def test_stale_backup_next_to_a_complete_checkpoint_is_ignored(run_copy):
    shutil.copytree(run_copy / "best", backup_path(run_copy / "last"))
    assert load_checkpoint(run_copy / "last").path == run_copy / "last"
    assert json.loads((run_copy / "last" / STATE_JSON).read_text())["step"] == 2
