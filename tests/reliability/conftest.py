"""Reliability tests: hostile input, exit codes, kills. Prints the fuzzers' example counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rel_helpers import FUZZ_COUNTS, TINY_TRAIN

from lightseg.cli import main


def pytest_terminal_summary(terminalreporter) -> None:
    if FUZZ_COUNTS:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(FUZZ_COUNTS.items()))
        terminalreporter.write_line(f"fuzz examples run per parser: {counts}")


@pytest.fixture(scope="session")
def _trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--out", str(run), "--steps", "2", *TINY_TRAIN]) == 0
    return run


@pytest.fixture
def run_copy(_trained_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of a finished 2-step tiny run (best/, last/, summary.json)."""
    dst = tmp_path / "run"
    shutil.copytree(_trained_run, dst)
    return dst
