"""Training and evaluation of the U-Nets on phantoms or the user's data.

Loss = cross-entropy + soft Dice of the lesion class; AdamW with warm-up + cosine decay; bf16
autocast on CPUs with AMX or fp16/bf16 on a GPU when ``--amp`` is on. Validation every
``val_every`` steps (an "epoch") writes ``best`` and ``last`` checkpoints; ``last`` also holds the
optimizer, schedule and step (no pickles: tensors in safetensors, the rest in JSON), so a killed
run resumes with ``--resume``.
"""

from __future__ import annotations

import json
import math
import platform
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightseg.checkpoint import (
    check_finite,
    check_writable,
    load_checkpoint,
    read_json_file,
    read_meta,
    recover,
    save_checkpoint,
    torch_versions,
)
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError, one_line
from lightseg.fileio import atomic_write_text
from lightseg.metrics import case_metrics, summarize
from lightseg.models import MODELS, create_model, model_config

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


@dataclass
class TrainConfig:
    """What a run does. Defaults train the lightweight model on phantoms on a CPU."""

    model: str = "lightunet"
    data: str = "synth"
    out: str = "runs/lightunet"
    size: int = 256  # model input size (Preprocessing.size)
    crop: int | None = 96  # random training crops (lesion-biased); None = full slices
    lesion_fraction: float = 0.7  # share of synthetic training slices with a lesion
    steps: int = 1500
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    train_n: int = 2000  # distinct training slices
    val_n: int = 48  # validation slices (full size)
    val_every: int = 250
    amp: bool = False
    threads: int | None = None
    init: str | None = None  # start from this checkpoint's weights (fine-tuning)
    model_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a bad setting (from the CLI or a saved run) before any work: one line."""
        _check_config(self)


MAX_DATA_BYTES = 32 << 30  # training + validation slices held in memory
_INT_RANGES = {"size": (16, 2048), "steps": (1, 10**8), "batch": (1, 4096), "warmup": (0, 10**8),
               "seed": (0, 2**31 - 1), "train_n": (1, 10**6), "val_n": (1, 10**6),
               "val_every": (1, 10**8)}  # fmt: skip
_FLOAT_RANGES = {"lr": (0.0, 10.0), "weight_decay": (0.0, 10.0)}


def _check_config(c: TrainConfig) -> None:
    def bad(what: str) -> LightsegError:
        return LightsegError(f"train: {what}")

    for name in ("model", "data", "out"):
        if not isinstance(getattr(c, name), str) or not getattr(c, name):
            raise bad(f"{name} must be a non-empty string")
    if c.model not in MODELS:
        raise bad(f"unknown model {one_line(repr(c.model), 60)}; choose one of {', '.join(MODELS)}")
    for name, (lo, hi) in _INT_RANGES.items():
        v = getattr(c, name)
        if type(v) is not int or not lo <= v <= hi:
            raise bad(f"{name} must be an integer in {lo}..{hi}, got {one_line(repr(v), 40)}")
    for name, (lo, hi) in _FLOAT_RANGES.items():
        v = getattr(c, name)
        if type(v) not in (int, float) or not lo <= v <= hi or (name == "lr" and v == 0):
            raise bad(f"{name} must be a finite number in ({lo}, {hi}], got {v!r}")
    lf = c.lesion_fraction
    if type(lf) not in (int, float) or not 0 <= lf <= 1:
        raise bad(f"lesion_fraction must be in [0, 1], got {one_line(repr(lf), 40)}")
    if c.crop is not None and (type(c.crop) is not int or not 1 <= c.crop <= c.size):
        raise bad(f"crop must be 1..size ({c.size}) or none, got {c.crop!r}")
    if c.threads is not None and (type(c.threads) is not int or not 1 <= c.threads <= 1024):
        raise bad(f"threads must be 1..1024 (or 0/none for torch's default), got {c.threads!r}")
    if type(c.amp) is not bool:
        raise bad(f"amp must be true or false, got {c.amp!r}")
    if c.init is not None and (not isinstance(c.init, str) or not c.init):
        raise bad("init must be a checkpoint folder")
    if not isinstance(c.model_overrides, dict):
        raise bad("model_overrides must be an object")
    try:
        model_config(c.model, **c.model_overrides)
    except (ValueError, TypeError) as e:
        raise bad(f"model settings: {one_line(e, 160)}") from None
    need = (c.train_n + c.val_n) * c.size * c.size * 4
    if need > MAX_DATA_BYTES:
        raise bad(
            f"{c.train_n} + {c.val_n} slices of {c.size}x{c.size} need {need / 2**30:.0f} GiB "
            f"(at most {MAX_DATA_BYTES >> 30} GiB); use fewer or smaller slices"
        )


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice of the lesion class over the batch).

    A batch without lesion pixels trains on cross-entropy alone: its soft Dice would be
    1 / (1 + sum of lesion probabilities), which a few hundred thousand background pixels at
    ~1e-4 each hold near 0 however well the model does, and whose gradient pushes every pixel
    toward background: lesion-free-heavy training then shrinks the lesions (docs/qat.md).
    """
    ce = F.cross_entropy(logits, target)
    t = (target == 1).float()
    if not t.any():
        return ce
    p = logits.softmax(1)[:, 1]
    soft_dice = (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return ce + (1 - soft_dice)


@torch.no_grad()
def predict_masks(model: torch.nn.Module, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """Argmax masks (N x H x W, uint8) of a model on preprocessed inputs (N x C x H x W)."""
    model.eval()
    out = [
        model(torch.from_numpy(x[i : i + batch])).argmax(1).to(torch.uint8).numpy()
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out)


def evaluate_arrays(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[dict, list]:
    """(summary, per-case metrics) of a model on preprocessed inputs and reference masks."""
    pred = predict_masks(model, x)
    cases = [case_metrics(p, r) for p, r in zip(pred, y, strict=True)]
    return summarize(cases), cases


def stack_dataset(ds, n: int) -> tuple[np.ndarray, np.ndarray]:
    items = [ds[i] for i in range(n)]
    x = np.stack([np.asarray(i[0], dtype=np.float32) for i in items])
    y = np.stack([np.asarray(i[1]) for i in items])
    return x, y


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp:
        return torch.autocast(device.type, enabled=False)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _state_files(
    opt, sched, step: int, best: float, cfg: TrainConfig, history: list[dict] | None = None
) -> dict[str, bytes]:
    """Optimizer/schedule/progress (and the validation history) as safetensors + JSON bytes."""
    from safetensors.torch import save

    sd = opt.state_dict()
    tensors = {
        f"opt.{pid}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
        for pid, st in sd["state"].items()
        for k, v in st.items()
    }
    tensors["rng.torch"] = torch.get_rng_state()
    doc = {
        "step": step,
        "best_dice": best,
        "param_groups": sd["param_groups"],
        "scheduler": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"},
        "config": asdict(cfg),
        "history": history or [],
    }
    return {STATE_TENSORS: save(tensors), STATE_JSON: json.dumps(doc, indent=2).encode()}


def _state_doc(path: Path) -> dict:
    """The validated train_state.json of a ``last`` checkpoint."""
    f = path / STATE_JSON
    if not f.is_file() or not (path / STATE_TENSORS).is_file():
        raise LightsegError(f"{path}: no training state to resume from")
    doc = read_json_file(f, STATE_JSON)
    ok = (
        isinstance(doc, dict)
        and isinstance(doc.get("config"), dict)
        and type(doc.get("step")) is int
        and doc["step"] >= 0
        and type(doc.get("best_dice")) in (int, float)
        and -1.0 <= doc["best_dice"] <= 1.0
        and isinstance(doc.get("param_groups"), list)
        and isinstance(doc.get("scheduler"), dict)
        and isinstance(doc.get("history", []), list)
        and all(isinstance(h, dict) for h in doc.get("history", []))
    )
    if not ok:
        raise LightsegError(f"{f}: training state is corrupt (step, best_dice, config, ...)")
    return doc


def saved_config(path: Path) -> dict:
    """The TrainConfig (as a dict) stored with a ``last`` checkpoint."""
    return _state_doc(path)["config"]


def _like(ref: object, val: object) -> bool:
    """``val`` (from JSON) has the structure and types of ``ref`` (what this code saves);
    keys ``ref`` lacks are refused, keys ``val`` lacks are allowed (torch fills defaults)."""
    if ref is None or isinstance(ref, (bool, str)):
        return type(val) is type(ref)
    if isinstance(ref, int):
        return type(val) is int
    if isinstance(ref, float):
        return type(val) in (int, float) and math.isfinite(val)
    if isinstance(ref, (list, tuple)):
        return (
            isinstance(val, list)
            and len(val) == len(ref)
            and all(_like(a, b) for a, b in zip(ref, val, strict=True))
        )
    if isinstance(ref, dict):
        return isinstance(val, dict) and all(k in ref and _like(ref[k], v) for k, v in val.items())
    return False


def _load_state(path: Path, opt, sched) -> tuple[int, float]:
    """Restore optimizer, schedule and RNG from ``path``; (step, best Dice).
    Everything is checked against what this optimizer holds; a mismatch is refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    doc = _state_doc(path)

    def corrupt(why: str) -> LightsegError:
        return LightsegError(f"{path}: training state is corrupt ({one_line(why, 160)})")

    params = [p for g in opt.param_groups for p in g["params"]]
    ref_groups = opt.state_dict()["param_groups"]
    groups = doc["param_groups"]
    if len(groups) != len(ref_groups) or not all(
        _like(r, g) and g.get("params") == r["params"]
        for r, g in zip(ref_groups, groups, strict=False)
    ):
        raise corrupt("param_groups do not match the model's optimizer")
    ref_sched = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    if not _like(ref_sched, doc["scheduler"]):
        raise corrupt("scheduler state does not match")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tensors = load_file(path / STATE_TENSORS)
    except (SafetensorError, OSError, ValueError) as e:
        raise corrupt(f"{STATE_TENSORS}: {e}") from None
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key == "rng.torch":
            continue
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "opt" or not parts[1].isdigit():
            raise corrupt(f"unexpected tensor {key}")
        pid, k = int(parts[1]), parts[2]
        if pid >= len(params) or k not in ("step", "exp_avg", "exp_avg_sq"):
            raise corrupt(f"unexpected tensor {key}")
        want = () if k == "step" else tuple(params[pid].shape)
        if tuple(v.shape) != want or not v.is_floating_point():
            raise corrupt(f"{key} has shape {list(v.shape)}, expected {list(want)}")
        state.setdefault(pid, {})[k] = v
    check_finite(tensors, str(path / STATE_TENSORS))
    if any(len(st) != 3 for st in state.values()):
        raise corrupt("incomplete optimizer state")
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise corrupt("rng.torch is missing or has the wrong size")
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
        sched.load_state_dict({**doc["scheduler"], "lr_lambdas": [None] * len(opt.param_groups)})
        torch.set_rng_state(rng)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise corrupt(str(e)) from None
    return doc["step"], float(doc["best_dice"])


def _init_record(cfg: TrainConfig) -> dict:
    """The run this one fine-tunes (read once), so the whole chain stays on record."""
    if not cfg.init:
        return {}
    try:
        meta = read_meta(cfg.init)
    except LightsegError:
        return {"init_from": {"path": cfg.init, "unreadable": True}}
    skip = ("config", "preprocessing", "classes")
    return {"init_from": {"path": cfg.init, **{k: v for k, v in meta.items() if k not in skip}}}


def _provenance(cfg: TrainConfig, seconds: float, device: str, init: dict | None = None) -> dict:
    return {
        **(_init_record(cfg) if init is None else init),
        "command": " ".join(["lightseg", *sys.argv[1:]]) if sys.argv else "",
        "train_config": asdict(cfg),
        "data": (
            f"synthetic breast-CT phantoms (lightseg.data.phantom), {cfg.train_n} training slices "
            f"drawn with seed {cfg.seed}, validation {cfg.val_n} slices with seed {cfg.seed + 1000}"
            if cfg.data == "synth"
            else f"user data at {cfg.data}"
        ),
        "seconds": round(seconds, 1),
        "device": device,
        "machine": platform.processor() or platform.machine(),
        "versions": torch_versions(),
    }


class _Terminate(Exception):
    pass


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Run training; returns the summary written to ``out/summary.json``.

    With ``resume`` the run in ``cfg.out`` continues there with its saved configuration; only
    ``cfg.steps`` may change (e.g. to extend a run, or to anneal it sooner: the cosine schedule
    follows the new end). Its validation history carries on into summary.json.
    """
    from lightseg.data.dataset import build_dataset

    out = Path(cfg.out)
    for name in ("last", "best"):
        recover(out / name)  # a kill between the two renames of a save left only the backup
    if resume:
        saved = saved_config(out / "last")
        try:
            cfg = TrainConfig(**{**saved, "steps": cfg.steps, "out": cfg.out})
        except TypeError as e:
            raise LightsegError(
                f"{out / 'last' / STATE_JSON}: training state is corrupt ({one_line(e)})"
            ) from None
    check_writable(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pre = Preprocessing(size=cfg.size)
    model = create_model(cfg.model, **cfg.model_overrides)
    init = _init_record(cfg)
    if resume or cfg.init:
        src = out / "last" if resume else cfg.init
        ck = load_checkpoint(src)
        try:
            model.load_state_dict(ck.model.state_dict())
        except RuntimeError as e:
            raise LightsegError(
                f"checkpoint {src}: does not fit {cfg.model} {cfg.model_overrides or ''} "
                f"({one_line(e, 120)})"
            ) from None
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    step, best = _load_state(out / "last", opt, sched) if resume else (0, -1.0)
    history: list[dict] = list(_state_doc(out / "last").get("history", [])) if resume else []

    train_ds = build_dataset(
        cfg.data, pre, cfg.train_n, cfg.seed, augment=True,
        lesion_fraction=cfg.lesion_fraction, crop=cfg.crop,
    )  # fmt: skip
    val_ds = build_dataset(cfg.data, pre, cfg.val_n, cfg.seed + 1000, per_volume=2)
    val_x, val_y = stack_dataset(val_ds, min(cfg.val_n, len(val_ds)))
    rng = np.random.default_rng([cfg.seed, step])  # a resumed run draws new batches
    t0 = time.time()

    def save(name: str, metrics: dict) -> None:
        state = _state_files(opt, sched, step, best, cfg, history) if name == "last" else None
        save_checkpoint(
            model.cpu(), out / name, cfg.model, pre, files=state, metrics=metrics,
            provenance=_provenance(cfg, time.time() - t0, device.type, init),
        )  # fmt: skip
        model.to(device)

    def on_term(*_):
        raise _Terminate

    old = signal.signal(signal.SIGTERM, on_term)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress,
    )  # fmt: skip
    metrics: dict = dict(history[-1]) if history else {}
    try:
        with bar:
            task = bar.add_task("train", total=cfg.steps, completed=step, info="")
            while step < cfg.steps:
                model.train()
                idx = rng.integers(0, len(train_ds), cfg.batch)
                xb, yb = zip(*(train_ds[int(i)] for i in idx), strict=True)
                x = torch.as_tensor(np.stack(xb)).to(device)
                y = torch.as_tensor(np.stack(yb)).long().to(device)
                with _autocast(cfg, device):
                    logits = model(x)
                loss = loss_fn(logits.float(), y)
                if not torch.isfinite(loss):
                    raise LightsegError(f"training diverged at step {step} (loss {loss.item()})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                bar.update(task, advance=1, info=f"loss {loss.item():.3f} {_fmt(metrics)}")
                if step % cfg.val_every == 0 or step == cfg.steps:
                    metrics, _ = evaluate_arrays(model.cpu(), val_x, val_y)
                    model.to(device)
                    metrics["step"] = step
                    history.append(metrics)
                    bar.console.print(
                        f"step {step}: loss {loss.item():.4f}, val lesion Dice "
                        f"{metrics['lesion_dice']:.4f}, FP slice rate "
                        f"{metrics['false_positive_slice_rate']:.3f}, {time.time() - t0:.0f} s"
                    )
                    if metrics["lesion_dice"] > best:
                        best = metrics["lesion_dice"]
                        save("best", metrics)
                    save("last", metrics)
    except (KeyboardInterrupt, _Terminate):
        save("last", metrics)
        raise LightsegError(
            f"interrupted at step {step}; resume with --resume (state in {out / 'last'})"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    summary = {
        "best_lesion_dice": best,
        "final": metrics,
        "history": history,
        **_provenance(cfg, time.time() - t0, device.type, init),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _fmt(m: dict) -> str:
    v = m.get("lesion_dice")
    return f"val dice {v:.3f}" if type(v) in (int, float) else ""
