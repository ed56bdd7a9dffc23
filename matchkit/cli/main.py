"""`matchkit` entry point: dispatches to one module per command and maps errors to exit codes.

Exit codes: 0 success, 1 refused data or configuration (a clear message, never a traceback), 2 usage error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from matchkit import __version__
from matchkit.errors import InternalError, MatchkitError

# Each module defines `register(subparsers)`, which adds its parser and sets `func=callable(args) -> int`.
COMMAND_MODULES = ("key", "hash", "verify", "link", "synth", "audit", "schema")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run unwinds as it does on Ctrl-C: ``.partial`` files removed,
    an ``interrupted`` audit line (every clean-up that handles KeyboardInterrupt runs for it too)."""


def _terminate(signum: int, frame: object) -> None:
    """The command's SIGTERM handler (what schedulers and systemd send, to this process only).

    Ctrl-C reaches every process of the terminal's process group, the encoding workers included; SIGTERM reaches
    this one alone, so the workers are stopped here first: left running they would block for ever on the pool's
    pipes and keep the caller's stdout and stderr open. Then the run unwinds as on Ctrl-C.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one unwinding: a second SIGTERM must not cut the clean-up short
    _stop_children()
    raise Terminated


def _stop_children() -> None:
    """Stop this process's worker processes, and let a pool thread that still writes to one get EPIPE (which the
    pool expects) instead of a SIGPIPE that would kill this process before its clean-up."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()


def _exit_now(code: int) -> NoReturn:
    """Leave at once after an interrupted run's clean-up, as a process killed by a signal would: the worker pool's
    own threads may wait for ever on a worker stopped half-way through sending a result, and interpreter shutdown
    would join them. Only the finalizers that release (the pool's semaphores) run, not those that join threads."""
    _stop_children()
    if "multiprocessing.util" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["multiprocessing.util"]._run_finalizers(0)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


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
    if argv is None:  # the command's own process (never a library caller's or a test's): its signal handling
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `matchkit … | head` ends quietly, like other tools
        signal.signal(signal.SIGTERM, _terminate)  # what schedulers and systemd send: unwind as Ctrl-C does
    try:  # from here on, a SIGTERM (or Ctrl-C) ends in a message and its exit code, never a traceback
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
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
        if argv is None:
            _exit_now(code)
        return code
    print(message, file=sys.stderr)
    if argv is None and hasattr(signal, "SIGPIPE"):  # a worker pool may still be winding down: see _stop_children
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
