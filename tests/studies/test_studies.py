"""The studies run end to end at a tiny size and write well-formed results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"study_{name}", STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_speed_measures_a_positive_rate():
    speed = _load("data_speed")
    assert speed.slices_per_second(n=2, size=64, lesion=True) > 0


def test_claim_at_a_tiny_budget(tmp_path):
    claim = _load("claim")
    doc = claim.run(tmp_path, steps=2, crop=32, batch=2, seed=0, eval_n=4, runs=1, train_n=8,
                    val_n=2)  # fmt: skip
    saved = json.loads((tmp_path / "claim.json").read_text())
    assert saved["budget"]["steps"] == 2 and set(saved["models"]) == {"unet", "lightunet"}
    assert saved["models"]["unet"]["params"] == 31_043_586
    assert saved["models"]["lightunet"]["params"] == 4_198_000
    for m in doc["models"].values():
        assert 0.0 <= m["eval"]["lesion_dice"] <= 1.0 and m["latency"]["p50_ms"] > 0
    assert "| unet |" in (tmp_path / "claim.md").read_text()
