"""Output for people and for CI logs: one console, wide tables off a terminal, quiet third parties.

- ``console``: the one rich console every command prints through. Off a terminal (a CI log, a
  file) it renders at a fixed wide width without colour, so a table prints full width instead of
  wrapping cell by cell at 80 columns; ``--quiet`` silences it (errors still go to stderr).
- :func:`captured_warnings`: Python warnings and library log records raised during a command
  are collected and summarised at the end in one line per kind (``--verbose`` prints them).
- :func:`native_output`: what native libraries write straight to the process's stdout/stderr
  (converters' INFO lines) is held back during a step and replayed only with ``--verbose``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

#: Width of tables in a log; wide enough for every table lightseg prints.
LOG_WIDTH = 240
#: Kinds of third-party warnings listed at the end of a command (the rest are counted).
SHOWN = 5


def _make() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(width=LOG_WIDTH, no_color=True, highlight=False, emoji=False)


console = _make()
_verbose: list[bool] = [False]


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """Apply the global ``--quiet`` / ``--verbose`` flags."""
    console.quiet = quiet
    _verbose[0] = verbose


def verbose() -> bool:
    return _verbose[0]


def is_terminal() -> bool:
    """Progress bars and live displays only where a person watches a terminal."""
    return console.is_terminal and not console.quiet


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect warnings (and library log records >= WARNING) while the body runs.

    Yields a list that, after the body, holds the summary lines (one per kind, most frequent
    first). With ``--verbose`` nothing is captured: warnings print as they happen.
    """
    summary: list[str] = []
    if verbose():
        yield summary
        return
    handler = _Collector()
    root = logging.getLogger()
    old_handlers, old_level = root.handlers[:], root.level
    root.handlers, root.level = [handler], logging.WARNING
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield summary
        finally:
            root.handlers, root.level = old_handlers, old_level
            kinds = Counter(
                f"{w.category.__name__} from {_origin(w.filename)}: {_first(w.message)}"
                for w in caught
            )
            kinds.update(
                f"log {r.levelname} from {r.name}: {_first(r.getMessage())}"
                for r in handler.records
            )
            summary.extend(f"{n} x {k}" if n > 1 else k for k, n in kinds.most_common())


def _first(message) -> str:
    """The message's first line with numbers masked, so one kind is one line."""
    text = str(message).strip().splitlines()
    return re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", text[0] if text else "")[:120]


def _origin(filename: str) -> str:
    """The package a warning came from (``torch.onnx``), not its full path."""
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return ".".join(p.removesuffix(".py") for p in rest[:2])
    return os.path.basename(filename)


def print_warning_summary(summary: list[str]) -> None:
    """One header line and one line per kind on stderr (nothing when there were none)."""
    if not summary:
        return
    sys.stderr.write(f"note: {len(summary)} kind(s) of third-party warnings hidden "
                     "(--verbose prints them):\n")  # fmt: skip
    for line in summary[:SHOWN]:
        sys.stderr.write(f"  {line}\n")
    if len(summary) > SHOWN:
        sys.stderr.write(f"  ... and {len(summary) - SHOWN} more kinds\n")


@contextmanager
def native_output() -> Iterator[None]:
    """Hold back what native code writes to fds 1 and 2 during the body.

    Python-level output inside the body is held back too. If the body raises, the last lines
    held back are written to stderr first (they may explain the error); with ``--verbose``
    nothing is held back.
    """
    if verbose():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        except KeyboardInterrupt:  # an interrupt is not explained by what was held back
            failed = False
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if failed:
                held.seek(0)
                tail = held.read().decode(errors="replace").splitlines()[-20:]
                sys.stderr.write("".join(f"  | {line}\n" for line in tail))
