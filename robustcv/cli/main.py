"""The ``robustcv`` command line: builds the parser and dispatches to one module per command.

Each command lives in ``robustcv/cli/<module>.py`` with ``NAME``, ``add_parser(sub, *, common,
model_args)`` and ``run(args) -> int``, and imports what it shares with the others from
:mod:`robustcv.cli._common` (never from this module).

Exit codes, the same for every command: 0 ok, 1 a check or threshold failed, 2 bad usage or
input (a one-line message, no traceback), 3 internal error, 141 stdout was closed before the
output was written (``robustcv list --json | head -c 20``: the command stops quietly, as any
Unix tool stopped by a closed pipe does; 141 is 128 + SIGPIPE).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from robustcv.cli import (
    attack,
    audit,
    check,
    compare,
    corrupt,
    data,
    explain,
    leaderboard,
    listing,
    report,
    train,
)
from robustcv.cli import eval as eval_command
from robustcv.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    add_common_options,
    add_model_args,
    check_device,
    check_numbers,
    os_error_message,
)
from robustcv.core.errors import InputError, RobustcvError

__all__ = [
    "COMMANDS",
    "EXIT_BROKEN_PIPE",
    "EXIT_CHECK_FAILED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

COMMANDS: tuple[ModuleType, ...] = (
    listing,
    eval_command,
    attack,
    train,
    data,
    corrupt,
    explain,
    audit,
    compare,
    check,
    report,
    leaderboard,
)
"""The command modules, in the order ``robustcv --help`` lists them. Add a module here to add a
command."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``robustcv`` command.

    Example:
        >>> build_parser().parse_args(["list", "models"]).what
        'models'
    """
    from robustcv import __version__

    parser = Parser(
        prog="robustcv",
        description="Find how and where a computer-vision model breaks.",
        epilog="exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 internal error, "
        "141 output pipe closed early",
    )
    parser.add_argument("--version", action="version", version=f"robustcv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub, common=add_common_options, model_args=add_model_args)
    return parser


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a usage error returns its code; --help / --version exit 0
        if stop.code in (0, None):
            raise
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.cli_argv = list(sys.argv[1:] if argv is None else argv)
    commands = {module.NAME: module for module in COMMANDS}
    try:
        check_numbers(args)
        check_device(getattr(args, "device", None))
        code: int = commands[args.command].run(args)
        return code
    except (RobustcvError, InputError) as err:
        print(f"robustcv: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("robustcv: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except OSError as err:
        message = os_error_message(err, args)
        if message is None:
            return _internal_error()
        print(f"robustcv: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        return _internal_error()


def _one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined with '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def _internal_error() -> int:
    """Print the traceback of the exception being handled and the 'internal error' line."""
    traceback.print_exc()
    print(
        "robustcv: internal error (a bug in robustcv - please report it with the traceback above)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again.

    The pattern the Python docs recommend for ``BrokenPipeError`` (see the ``signal`` module's
    "Note on SIGPIPE"); nothing happens when stdout has no file descriptor (captured output).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    A usage error that argparse finds (an unknown command or flag, a missing or malformed
    value) returns :data:`EXIT_USAGE` like every other user mistake; ``--help`` and
    ``--version`` print and raise ``SystemExit(0)`` as argparse does.

    A closed stdout (``robustcv list --json | head -c 20``) ends any command quietly with
    :data:`EXIT_BROKEN_PIPE` (141): no traceback, no "internal error".
    """
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
