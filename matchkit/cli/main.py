"""`matchkit` entry point: dispatches to one module per command and maps errors to exit codes.

Exit codes: 0 success, 1 refused data or configuration (a clear message, never a traceback), 2 usage error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

from matchkit import __version__
from matchkit.errors import InternalError, MatchkitError
from matchkit.runtime.process import Terminated, exit_now, handle_sigterm

# Each module defines `register(subparsers)`, which adds its parser and sets `func=callable(args) -> int`.
COMMAND_MODULES = ("key", "hash", "verify", "link", "dedupe", "synth", "audit", "schema", "reasons")


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
    matchkit``): only then does it set up the process (SIGPIPE, SIGTERM handled as Ctrl-C, and the command's
    start-up, all from :mod:`matchkit.runtime.process`). Called with ``argv`` (tests, scripts) it leaves the
    caller's process as it is."""
    own_process = argv is None
    if own_process:
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `matchkit … | head` ends quietly, like other tools
        handle_sigterm()  # what schedulers and systemd send: unwind as Ctrl-C does, exit 143
    try:  # from here on, a SIGTERM (or Ctrl-C) ends in a message and its exit code, never a traceback
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        start_process = getattr(args, "start_process", None)
        if own_process and start_process is not None:
            start_process()
        return int(args.func(args) or 0)
    except MatchkitError as exc:
        code, message = 1, f"matchkit: error: {exc}"
    except InternalError as exc:
        code, message = 1, f"matchkit: internal error (please report, without data): {exc}"
    except OSError as exc:  # a net under the writers' own messages: an OS error is never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        code, message = 1, f"matchkit: error: {where}{exc.strerror or type(exc).__name__}"
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated) in the command's process
        code, message = (143, "matchkit: terminated") if isinstance(exc, Terminated) else (130, "matchkit: interrupted")
        print(message, file=sys.stderr)
        if own_process:
            exit_now(code)
        return code
    print(message, file=sys.stderr)
    if own_process and hasattr(signal, "SIGPIPE"):  # a worker pool may still be winding down: see stop_children
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
