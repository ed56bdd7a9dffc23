"""`matchkit audit check LOG`: check that an audit log's hash chain is intact (no line edited, removed or moved)."""

from __future__ import annotations

import argparse

from matchkit.security.audit import check_log
from matchkit.settings import AUDIT_ENV_VAR


def add_audit_option(parser: argparse.ArgumentParser) -> None:
    """``--audit-log FILE`` for the commands that log their runs (hash, verify)."""
    parser.add_argument(
        "--audit-log", metavar="FILE", default=None,
        help=f"append one hash-chained JSON line about this run to FILE (default: ${AUDIT_ENV_VAR}; unset: "
        "no log). Only file names, digests and counts are logged, never a value from the data.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="check an audit log written by hash/verify --audit-log",
                                   description="Check the audit log that hash and verify append to.")
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    check = actions.add_parser(
        "check", help="recompute the hash chain; exit 1 naming the first edited, removed or reordered line",
        description="Recompute an audit log's hash chain. Prints OK with the line count and the head hash; "
        "exits 1 naming the first line that was edited, removed or moved. Record the head hash elsewhere and "
        "pass it later with --anchor to also catch lines cut off the end or a rewritten chain.")
    check.add_argument("log", metavar="LOG", help="audit log file")
    check.add_argument("--anchor", metavar="HASH", default=None,
                       help="a head hash printed by an earlier check: the line with it must still be in the log")
    check.set_defaults(func=run_check)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_check(args: argparse.Namespace) -> int:
    result = check_log(args.log, anchor=args.anchor)
    print(f"OK {result.path}: {result.count} line(s), chain intact; head {result.head}")
    return 0
