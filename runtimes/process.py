"""Drive a backend worker: in its own process (default) or in this one."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

from lightseg.runtimes.worker import Session


class BackendDied(Exception):
    """The worker process crashed, hung past its timeout, or broke the protocol."""


class IsolatedBackend:
    """A ``python -I -m lightseg.runtimes.worker`` child; each call has a timeout.

    ``-I`` (isolated mode) keeps the working directory and PYTHON* variables out of the child's
    import path: it runs the installed package, wherever it is started from.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "lightseg.runtimes.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.buf = b""

    def _tail(self) -> str:
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln]
        return lines[-1][:300] if lines else ""

    def _died(self, what: str) -> BackendDied:
        self.kill()
        tail = self._tail()
        return BackendDied(f"{what}" + (f"; last stderr line: {tail}" if tail else ""))

    def call(self, msg: dict) -> dict:
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(f"worker exited with code {self.proc.wait()}") from None
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise self._died(f"timed out after {self.timeout:g} s during {msg['cmd']}")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    code = self.proc.wait()
                    how = f"signal {-code}" if code < 0 else f"code {code}"
                    raise self._died(f"worker crashed ({how}) during {msg['cmd']}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise self._died(f"worker broke the protocol: {line[:80]!r}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def close(self) -> dict:
        try:
            reply = self.call({"cmd": "close"}) if self.proc.poll() is None else {}
        except BackendDied:
            reply = {}
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()
        self.stderr.close()
        return reply


class LocalBackend:
    """The same protocol in this process (no isolation; for the API and debugging)."""

    def __init__(self, timeout: float = 0) -> None:
        self.session = Session()

    def call(self, msg: dict) -> dict:
        return self.session.handle(msg)

    def kill(self) -> None:
        """Nothing to kill in-process."""

    def close(self) -> dict:
        return self.session.handle({"cmd": "close"})
