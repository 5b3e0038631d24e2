"""The one exception family and the exit codes of the CLI.

Exit codes: 0 ok, 1 a gate failed (:class:`GateFailed`), 2 bad input or environment
(:class:`LightsegError`, any ``OSError``), 3 an internal error (a bug: any other exception),
130 interrupted. The CLI prints ``error: <message>`` on one line.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(message: object, limit: int = 400) -> str:
    """``message`` as one printable line: ANSI escapes and control characters removed, the
    first non-empty line kept, at most ``limit`` characters."""
    text = _CONTROL.sub("", _ANSI.sub("", str(message)).replace("\r", "\n"))
    first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


class LightsegError(Exception):
    """Bad input or an unusable environment (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class BackendUnavailable(LightsegError):
    """A backend is not installed or cannot run on this machine; the message says why/how."""


class GateFailed(LightsegError):
    """A quality gate (parity, accuracy) did not hold (exit code 1)."""

    exit_code = EXIT_GATE_FAILED
