"""A tiny model learns phantoms; resume restores optimizer and schedule exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lightseg.checkpoint import load_checkpoint
from lightseg.cli import main
from lightseg.train import STATE_JSON, STATE_TENSORS, TrainConfig, train


def tiny(tmp_path, **kw) -> TrainConfig:
    base = dict(
        model="lightunet", out=str(tmp_path / "run"), size=64, crop=None, steps=60, batch=4,
        lr=1e-2, warmup=5, train_n=6, val_n=6, val_every=30, threads=2,
        model_overrides={"base": 8},
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_model_overfits_a_handful_of_slices(tmp_path):
    # train and validate on the same 6 slices (same seed for both sets): memorisation must work
    cfg = tiny(tmp_path, steps=150, val_every=150)
    cfg_val_same = cfg
    s = train(cfg_val_same, progress=False)
    # validation uses seed + 1000, so evaluate on the training slices explicitly too
    from lightseg.data.dataset import build_dataset
    from lightseg.train import evaluate_arrays, stack_dataset

    ck = load_checkpoint(tmp_path / "run" / "last")
    ds = build_dataset("synth", ck.preprocessing, 6, cfg.seed, augment=False)
    x, y = stack_dataset(ds, 6)
    summary, _ = evaluate_arrays(ck.model, x, y)
    assert summary["lesion_dice"] > 0.9, summary
    assert s["history"] and (tmp_path / "run" / "best" / "model.json").is_file()
    assert (
        json.loads((tmp_path / "run" / "summary.json").read_text())["train_config"]["steps"] == 150
    )


def test_resume_restores_optimizer_and_schedule(tmp_path):
    train(tiny(tmp_path, steps=10, val_every=5), progress=False)
    last = tmp_path / "run" / "last"
    saved = load_file(last / STATE_TENSORS)
    doc = json.loads((last / STATE_JSON).read_text())
    assert doc["step"] == 10 and doc["scheduler"]["last_epoch"] == 10

    from lightseg.models import create_model
    from lightseg.train import _load_state, _lr_lambda

    cfg = tiny(tmp_path, steps=10)
    m = create_model("lightunet", base=8)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    step, _ = _load_state(last, opt, sched)
    assert step == 10 and sched.last_epoch == 10
    assert sched.get_last_lr() == pytest.approx(doc["scheduler"]["_last_lr"])
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(v, saved[f"opt.{pid}.{k}"], rtol=0, atol=0)
    # and the CLI continues the run to more steps
    rc = main(["train", "--out", str(tmp_path / "run"), "--resume", "--steps", "12", "--size", "64",
               "--crop", "0", "--batch", "4", "--base", "8", "--train-n", "6", "--val-n", "6",
               "--val-every", "6"])  # fmt: skip
    assert rc == 0
    assert json.loads((last / STATE_JSON).read_text())["step"] == 12


def test_train_refuses_to_clobber_a_run(tmp_path):
    train(tiny(tmp_path, steps=2, val_every=2), progress=False)
    rc = main(["train", "--out", str(tmp_path / "run"), "--steps", "2"])
    assert rc == 2


def test_eval_json_is_complete(tmp_path):
    train(tiny(tmp_path, steps=4, val_every=4), progress=False)
    out = tmp_path / "eval.json"
    rc = main(["eval", str(tmp_path / "run" / "best"), "--n", "6", "--seed", "7", "--json",
               str(out), "--out", str(tmp_path / "ev")])  # fmt: skip
    assert rc == 0
    d = json.loads(out.read_text())
    for k in ("lesion_dice", "lesion_iou", "pixel_accuracy", "false_positive_slice_rate",
              "lesion_detection_rate", "lesion_dice_ci95", "n_cases"):  # fmt: skip
        assert k in d["summary"], k
    assert len(d["cases"]) == 6
    assert (tmp_path / "ev" / "cases.csv").read_text().count("\n") == 7


def test_lesion_fraction_zero_teaches_silence_and_is_recorded(tmp_path):
    # only lesion-free tissue in training: the model must learn to predict no lesion anywhere,
    # where the same run on lesion slices only finds lesions (detection 0.75 here)
    les = train(tiny(tmp_path / "les", steps=40, val_every=40, lesion_fraction=1.0), progress=False)
    assert les["final"]["lesion_detection_rate"] >= 0.5, les["final"]
    s = train(tiny(tmp_path, steps=40, val_every=40, lesion_fraction=0.0), progress=False)
    assert s["train_config"]["lesion_fraction"] == 0.0
    assert s["final"]["lesion_detection_rate"] == 0.0, s["final"]
    assert s["final"]["false_positive_slice_rate"] == 0.0, s["final"]
    meta = json.loads((tmp_path / "run" / "last" / "model.json").read_text())
    assert meta["provenance"]["train_config"]["lesion_fraction"] == 0.0


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan"])
def test_bad_lesion_fraction_is_one_line(tmp_path, capsys, bad):
    rc = main(["train", "--out", str(tmp_path / "run"), "--lesion-fraction", bad])
    err = capsys.readouterr().err
    assert rc == 2 and "lesion_fraction must be in [0, 1]" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
