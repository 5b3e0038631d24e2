"""The ``lightseg`` command line. Exit codes: 0 ok, 1 a quality gate failed, 2 bad input.

Each area defines its commands in its own module; this file only assembles them and turns
:class:`~lightseg.errors.LightsegError` into one line on stderr and the right exit code.
"""

from __future__ import annotations

import sys

import typer

from lightseg.errors import LightsegError

app = typer.Typer(
    name="lightseg",
    help="Lightweight breast-CT tumour U-Net: profile, data, train, export to phones/Jetson/"
    "browser, and gate releases on parity and latency.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from lightseg.commands import register_core

    register_core(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the exit code."""
    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
    except LightsegError as e:
        sys.stderr.write(f"error: {e}\n")
        rc = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        rc = 130
    except Exception as e:
        if not (hasattr(e, "show") and hasattr(e, "exit_code")):  # a usage error from click/typer
            raise
        e.show()
        rc = 2
    rc = rc if isinstance(rc, int) else 0
    if __name__ == "__main__" or argv is None:
        sys.exit(rc)
    return rc


if __name__ == "__main__":
    main()
