"""`matchkit key new|info`: create a shared secret key file, or show its public id and fingerprint."""

from __future__ import annotations

import argparse

from matchkit.keys import load_key, new_key, write_key


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("key", help="create or inspect a shared key file",
                                   description="Create or inspect a shared secret key file.")
    actions = parser.add_subparsers(dest="key_command", metavar="ACTION")
    new = actions.add_parser("new", help="write a new 256-bit shared secret (mode 0600) with a key id",
                             description="Write a new 256-bit shared secret key file (mode 0600).")
    new.add_argument("-o", "--output", required=True, metavar="KEYFILE", help="where to write the key file")
    new.set_defaults(func=run_new)
    info = actions.add_parser("info", help="print the key id and fingerprint (never the secret)",
                              description="Print a key file's id and fingerprint; never the secret.")
    info.add_argument("keyfile", metavar="KEYFILE")
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_new(args: argparse.Namespace) -> int:
    key = new_key()
    path = write_key(key, args.output)
    print(f"wrote key {key.key_id} to {path} (mode 0600)")
    print(f"fingerprint {key.fingerprint}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    key = load_key(args.keyfile)
    print(f"key id      {key.key_id}")
    print(f"fingerprint {key.fingerprint}")
    print(f"created     {key.created or 'unknown'}")
    return 0
