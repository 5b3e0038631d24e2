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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightseg.checkpoint import load_checkpoint, save_checkpoint, torch_versions
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError
from lightseg.metrics import case_metrics, summarize
from lightseg.models import create_model

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


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice of the lesion class over the batch)."""
    ce = F.cross_entropy(logits, target)
    p = logits.softmax(1)[:, 1]
    t = (target == 1).float()
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


def _stack(ds, n: int) -> tuple[np.ndarray, np.ndarray]:
    items = [ds[i] for i in range(n)]
    x = np.stack([np.asarray(i[0], dtype=np.float32) for i in items])
    y = np.stack([np.asarray(i[1]) for i in items])
    return x, y


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp:
        return torch.autocast(device.type, enabled=False)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _state_files(opt, sched, step: int, best: float, cfg: TrainConfig) -> dict[str, bytes]:
    """Optimizer/schedule/progress as safetensors + JSON bytes (no pickles)."""
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
    }
    return {STATE_TENSORS: save(tensors), STATE_JSON: json.dumps(doc, indent=2).encode()}


def saved_config(path: Path) -> dict:
    """The TrainConfig (as a dict) stored with a ``last`` checkpoint."""
    if not (path / STATE_JSON).is_file():
        raise LightsegError(f"{path}: no training state to resume from")
    return json.loads((path / STATE_JSON).read_text())["config"]


def _load_state(path: Path, opt, sched) -> tuple[int, float]:
    from safetensors.torch import load_file

    if not (path / STATE_JSON).is_file() or not (path / STATE_TENSORS).is_file():
        raise LightsegError(f"{path}: no training state to resume from")
    doc = json.loads((path / STATE_JSON).read_text())
    tensors = load_file(path / STATE_TENSORS)
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    sched.load_state_dict({**doc["scheduler"], "lr_lambdas": [None] * len(opt.param_groups)})
    torch.set_rng_state(tensors["rng.torch"])
    return int(doc["step"]), float(doc["best_dice"])


def _provenance(cfg: TrainConfig, seconds: float, device: str) -> dict:
    init = {}
    if cfg.init:  # the run this one fine-tunes, so the whole chain stays on record
        init = {"init_from": {"path": cfg.init, **load_checkpoint(cfg.init).meta}}
    return {
        **init,
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

    With ``resume`` the saved run's configuration is used; only ``cfg.steps`` may change
    (e.g. to extend a run, or to anneal it sooner: the cosine schedule follows the new end).
    """
    from lightseg.data.dataset import build_dataset

    if resume:
        cfg = TrainConfig(**{**saved_config(Path(cfg.out) / "last"), "steps": cfg.steps})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pre = Preprocessing(size=cfg.size)
    out = Path(cfg.out)
    model = create_model(cfg.model, **cfg.model_overrides)
    if resume or cfg.init:
        ck = load_checkpoint(out / "last" if resume else cfg.init)
        model.load_state_dict(ck.model.state_dict())
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    step, best = _load_state(out / "last", opt, sched) if resume else (0, -1.0)

    train_ds = build_dataset(cfg.data, pre, cfg.train_n, cfg.seed, augment=True, crop=cfg.crop)
    val_ds = build_dataset(cfg.data, pre, cfg.val_n, cfg.seed + 1000, per_volume=2)
    val_x, val_y = _stack(val_ds, min(cfg.val_n, len(val_ds)))
    rng = np.random.default_rng([cfg.seed, step])  # a resumed run draws new batches
    history: list[dict] = []
    t0 = time.time()

    def save(name: str, metrics: dict) -> None:
        save_checkpoint(
            model.cpu(), out / name, cfg.model, pre,
            files=_state_files(opt, sched, step, best, cfg) if name == "last" else None,
            metrics=metrics, provenance=_provenance(cfg, time.time() - t0, device.type),
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
    metrics: dict = {}
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
        **_provenance(cfg, time.time() - t0, device.type),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _fmt(m: dict) -> str:
    return f"val dice {m['lesion_dice']:.3f}" if m else ""
