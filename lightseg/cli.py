"""The ``lightseg`` command line. Exit codes: 0 ok, 1 a quality gate failed, 2 bad input or
environment, 3 an internal error (see :mod:`lightseg.errors`).

Each area defines its commands in its own module; this file only assembles them and turns
:class:`~lightseg.errors.LightsegError` (and OSError, and any bug) into one line on stderr and
the right exit code.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import typer

from lightseg.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    LightsegError,
    one_line,
)

app = typer.Typer(
    name="lightseg",
    help="Lightweight breast-CT tumour U-Net: profile, data, train, export to phones/Jetson/"
    "browser, and gate releases on parity and latency.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


_registered: list[bool] = []


@app.callback()
def _global_options(
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Silence progress lines and tables; errors still print."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show third-party warnings and native library output."
    ),
) -> None:
    """Lightweight breast-CT tumour U-Net: profile, data, train, export to phones/Jetson/
    browser, and gate releases on parity and latency."""
    from lightseg.console import configure

    configure(quiet=quiet, verbose=verbose)


def _leading_flags(argv: list[str]) -> set[str]:
    """The global options given before the command (``lightseg -v demo``)."""
    flags = set()
    for a in argv:
        if not a.startswith("-"):
            break
        flags.add(a)
    return flags


def _register() -> None:
    """Attach every area's commands, once per process (main() may run many times in-process)."""
    if _registered:
        return
    from lightseg.commands import register_core

    register_core(app)
    _registered.append(True)


def _crash_report(exc: BaseException) -> str:
    """Write the traceback of an internal error to a file in the temp folder; its path."""
    name = f"lightseg-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path = Path(tempfile.gettempdir()) / name
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"lightseg {' '.join(sys.argv[1:])}\n{trace}"
    try:
        from lightseg.fileio import atomic_write_text

        atomic_write_text(path, text)
    except OSError as e:
        return f"nowhere: {e.strerror or e}"
    except Exception:  # even the file IO module is broken: write it plainly
        try:
            path.write_text(text)
        except OSError as e:
            return f"nowhere: {e.strerror or e}"
    return str(path)


def _os_error(e: OSError) -> str:
    """``<what> (<path>)`` for an OSError (read-only or full disk, permission, wrong kind)."""
    what = e.strerror or one_line(e) or type(e).__name__
    paths = [str(p) for p in (e.filename, e.filename2) if p not in (None, "")]
    return one_line(f"{what} ({' -> '.join(paths)})" if paths else what)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the exit code.

    0 ok, 1 a gate failed, 2 bad input or environment (one ``error:`` line), 3 an internal
    error (one ``internal error:`` line; the traceback goes to a file in the temp folder).
    """
    from lightseg.console import captured_warnings, configure, print_warning_summary

    flags = _leading_flags(list(sys.argv[1:] if argv is None else argv))
    configure(quiet=bool(flags & {"-q", "--quiet"}), verbose=bool(flags & {"-v", "--verbose"}))
    summary: list[str] = []
    try:
        _register()
        with captured_warnings() as summary:
            rc = app(args=argv, standalone_mode=False)
        if rc == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent 130
            sys.stderr.write("interrupted\n")
    except LightsegError as e:
        sys.stderr.write(f"error: {one_line(e)}\n")
        rc = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        rc = EXIT_INTERRUPTED
    except OSError as e:
        sys.stderr.write(f"error: {_os_error(e)}\n")
        rc = EXIT_BAD_INPUT
    except Exception as e:
        if _is_usage_error(e):  # click's (typer vendors its own copy): bad option, no argument
            if type(e).__name__ == "NoArgsIsHelpError":  # bare ``lightseg``: the help
                e.show()
            else:
                sys.stderr.write(f"error: {one_line(e.format_message())}\n")
            return _exit(EXIT_BAD_INPUT, argv)
        msg = one_line(e)
        sys.stderr.write(
            f"internal error: {type(e).__name__}{': ' + msg if msg else ''} "
            f"(full trace in {_crash_report(e)})\n"
        )
        rc = EXIT_INTERNAL_ERROR
    rc = rc if isinstance(rc, int) else 0
    if rc in (0, 1):  # an error stays one line: no notes after it
        print_warning_summary(summary)
    return _exit(rc, argv)


def _is_usage_error(e: Exception) -> bool:
    return all(hasattr(e, a) for a in ("show", "exit_code", "format_message"))


def _exit(rc: int, argv: list[str] | None) -> int:
    if __name__ == "__main__" or argv is None:
        sys.exit(rc)
    return rc


if __name__ == "__main__":
    main()
