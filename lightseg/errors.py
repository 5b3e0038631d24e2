"""The one exception family. The CLI prints ``error: <message>`` and exits with ``exit_code``."""

from __future__ import annotations


class LightsegError(Exception):
    """Bad input or an unusable environment (exit code 2)."""

    exit_code = 2


class BackendUnavailable(LightsegError):
    """A backend is not installed or cannot run on this machine; the message says why/how."""


class GateFailed(LightsegError):
    """A quality gate (parity, accuracy) did not hold (exit code 1)."""

    exit_code = 1
