"""`matchkit` entry point: dispatches to one module per command and maps errors to exit codes.

Exit codes: 0 success, 1 refused data or configuration (a clear message, never a traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

from matchkit import __version__
from matchkit.errors import InternalError, MatchkitError

# Each module defines `register(subparsers)`, which adds its parser and sets `func=callable(args) -> int`.
COMMAND_MODULES = ("key", "hash", "verify", "link", "dedupe", "synth", "audit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matchkit",
        description="Privacy-preserving record matching for government data sharing.",
    )
    parser.add_argument("--version", action="version", version=f"matchkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"matchkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"matchkit.cli.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Without ``argv`` this is the command's own process (the ``matchkit`` script, ``python -m
    matchkit``): only then does it set up the process (SIGPIPE, and the command's start-up from
    :mod:`matchkit.runtime.process`). Called with ``argv`` (tests, scripts) it leaves the caller's process as it is."""
    own_process = argv is None
    if hasattr(signal, "SIGPIPE") and own_process:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `matchkit … | head` ends quietly, like other tools
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    start_process = getattr(args, "start_process", None)
    if own_process and start_process is not None:
        start_process()
    try:
        return int(args.func(args) or 0)
    except MatchkitError as exc:
        print(f"matchkit: error: {exc}", file=sys.stderr)
        return 1
    except InternalError as exc:
        print(f"matchkit: internal error (please report, without data): {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("matchkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
