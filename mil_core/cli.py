"""What every command-line entry point shares: errors as one line, ``--debug`` for the traceback.

An entry point keeps its argument parsing and work in a private ``_main(argv) -> int``, gives its
parser the ``--debug`` flag with :func:`add_debug_argument`, and runs through :func:`run_main`::

    def main(argv: list[str] | None = None) -> int:
        return run_main(_main, argv)

How errors end the process (the status :func:`run_main` returns, and what goes to stderr):

- :class:`~mil_core.errors.ConfigError` (a bad argument or setting): status 2, as argparse's own
  usage errors; ``error: <message>``.
- any other mil_core error (:class:`~mil_core.errors.MilError`: data, checkpoint, training,
  offline): status 1; ``error: <message>``.
- ``OSError`` / ``ValueError`` (a bad path or value, reported by Python or a library): status 1;
  ``error: <Type>: <message> (rerun with --debug for the traceback)``.
- ``KeyboardInterrupt`` (Ctrl-C): status 130, as a shell reports SIGINT; ``interrupted``.
- anything else is a bug: it propagates, so Python prints the full traceback (status 1).

The message is one line (the exception's text with its line breaks joined). ``--debug`` on the
command line, or the environment variable ``MIL_DEBUG=1``, prints the full traceback instead of
the one line, with the same exit status. ``SystemExit`` (``--help``, argparse's own usage errors)
passes through unchanged.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Sequence

from .errors import ConfigError, MilError

__all__ = ["run_main", "add_debug_argument", "debug_requested", "EXIT_ERROR", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

EXIT_ERROR = 1          # a mil_core error other than ConfigError, an OSError or a ValueError
EXIT_USAGE = 2          # a ConfigError: a bad argument or setting (argparse also exits 2)
EXIT_INTERRUPTED = 130  # KeyboardInterrupt, as a shell reports a process stopped by SIGINT

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MIL_DEBUG"


def add_debug_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``--debug`` flag (read by :func:`run_main`) to ``parser``; returns ``parser``."""
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"on an error, print the full traceback instead of one line (also: "
                             f"{DEBUG_ENV}=1)")
    return parser


def debug_requested(argv: Sequence[str]) -> bool:
    """True when ``--debug`` is among ``argv`` (before a ``--``) or ``MIL_DEBUG`` is set to a
    value other than empty, ``0``, ``false``, ``no`` or ``off``."""
    args = list(argv)
    if "--" in args:
        args = args[:args.index("--")]
    if DEBUG_FLAG in args:
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def run_main(main: Callable[[list[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` and turn the errors a user can cause into one line and an exit status.

    ``argv``: the arguments without the program name (None: ``sys.argv[1:]``); ``main`` gets
    them as a list. Returns ``main``'s status, or the status of the table in the module
    docstring; a bug (any other exception) propagates with its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    try:
        return main(args)
    except KeyboardInterrupt as exc:
        if debug:
            _print_traceback(exc)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MilError as exc:
        status = EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
        line = f"error: {_one_line(exc) or type(exc).__name__}"
        error: BaseException = exc
    except (OSError, ValueError) as exc:
        status = EXIT_ERROR
        line = (f"error: {type(exc).__name__}: {_one_line(exc)} (rerun with {DEBUG_FLAG} for "
                "the traceback)")
        error = exc
    if debug:
        _print_traceback(error)
    else:
        print(line, file=sys.stderr)
    return status


def _print_traceback(exc: BaseException) -> None:
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
