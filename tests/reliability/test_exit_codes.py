"""Exit-code contract: 0 ok, 1 gate failed, 2 bad input or environment (OSError too),
3 internal error with the trace in a file, 130 interrupted; always exactly one stderr line."""

from __future__ import annotations

import errno
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rel_helpers import cli, one_error

from lightseg.errors import EXIT_INTERNAL_ERROR, GateFailed, LightsegError, one_line


def _profile_raises(monkeypatch, exc: BaseException) -> None:
    """Make ``lightseg profile`` raise ``exc`` where the work happens."""
    import lightseg.profile

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(lightseg.profile, "profile_model", boom)


def test_ok_is_0(capsys):
    rc, out, err = cli(capsys, "profile", "--input", "3x32x32")
    assert rc == 0 and err == [] and "params" in out


def test_gate_failed_is_1(capsys, monkeypatch):
    _profile_raises(monkeypatch, GateFailed("int8 masks differ from fp32"))
    assert one_error(capsys, "profile", code=1) == "error: int8 masks differ from fp32"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/out.json"),
         "error: No space left on device (/data/out.json)"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/x"),
         "error: Permission denied (/ro/x)"),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/a", None, "/mnt/ro/b"),
         "error: Read-only file system (/mnt/ro/a -> /mnt/ro/b)"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/sub"),
         "error: Not a directory (/f/sub)"),
        (LightsegError("\x1b[31mbad\x1b[0m input\nsecond line"), "error: bad input"),
    ],
)  # fmt: skip
def test_bad_input_and_environment_are_2(capsys, monkeypatch, exc, line):
    _profile_raises(monkeypatch, exc)
    assert one_error(capsys, "profile") == line


def test_internal_error_is_3_with_trace_file(capsys, monkeypatch):
    _profile_raises(monkeypatch, ZeroDivisionError("division by zero\nmore detail"))
    rc, _, err = cli(capsys, "profile")
    assert rc == EXIT_INTERNAL_ERROR == 3
    assert len(err) == 1, err
    m = re.fullmatch(
        r"internal error: ZeroDivisionError: division by zero \(full trace in (.+)\)", err[0]
    )
    assert m, err[0]
    trace = Path(m.group(1))
    try:
        text = trace.read_text()
        assert "Traceback" in text and "ZeroDivisionError" in text and "boom" in text
    finally:
        trace.unlink()


def test_interrupt_is_130(capsys, monkeypatch):
    _profile_raises(monkeypatch, KeyboardInterrupt())
    rc, _, err = cli(capsys, "profile")
    assert rc == 130 and err == ["interrupted"]


@pytest.mark.parametrize(
    "args",
    [["profile", "--bogus"], ["no-such-command"], ["train", "--steps", "many"], ["eval", "a", "b"]],
)
def test_usage_errors_are_one_line_2(capsys, args):
    assert "error: " in one_error(capsys, *args)


def test_is_a_directory_not_no_such_file(capsys, tmp_path):
    (tmp_path / "weights.pth").mkdir()
    line = one_error(capsys, "import-checkpoint", tmp_path / "weights.pth", "--out", tmp_path / "o")
    assert "is a directory" in line and "no such" not in line
    (tmp_path / "ck").write_text("a file")
    assert "not a folder (a file" in one_error(capsys, "eval", tmp_path / "ck")
    ck = tmp_path / "ck2"
    (ck / "model.json").mkdir(parents=True)
    assert "model.json is a directory" in one_error(capsys, "eval", ck)


def test_one_line_strips_escapes_and_keeps_the_first_line():
    assert one_line("\x1b[1;31merror\x1b[0m\r\nTraceback ...") == "error"
    assert one_line("\n\n  x  \ny") == "x"
    assert len(one_line("a" * 10_000)) == 400


def _run(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    # -I: isolated, so the checkout is not imported from the working directory
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path,
        timeout=120,
    )  # fmt: skip


def test_no_warnings_before_the_error_line(tmp_path):
    """A real process: torch/safetensors warnings must not precede the one error line."""
    import torch

    from lightseg.milesial import read_state_dict  # noqa: F401 (the importer under test)

    state = {"inc.double_conv.0.weight": torch.full((2, 3, 3, 3), float("nan")),
             "inc.double_conv.3.weight": torch.zeros(2, 2, 3, 3),
             "outc.conv.weight": torch.zeros(2, 2, 1, 1)}  # fmt: skip
    torch.save(state, tmp_path / "nan.pth")
    r = _run(
        tmp_path,
        "import sys, warnings; warnings.simplefilter('always');"
        "from lightseg.cli import main;"
        "sys.exit(main(['import-checkpoint', 'nan.pth', '--out', 'ck']))",
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "inc.double_conv.0.weight" in lines[0] and "NaN" in lines[0]
    assert not (tmp_path / "ck").exists()


def test_internal_error_in_a_real_process_is_one_line(tmp_path):
    r = _run(
        tmp_path,
        "import sys, lightseg.profile as p\n"
        "def boom(*a, **k): raise KeyError('x')\n"
        "p.profile_model = boom\n"
        "from lightseg.cli import main\n"
        "sys.exit(main(['profile']))",
    )
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: KeyError: 'x' (full trace in ")
    Path(lines[0].rsplit("full trace in ", 1)[1].rstrip(")")).unlink()
