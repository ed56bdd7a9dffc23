"""`matchkit key new|new-signing|info`: create a shared secret or an agency signing key, or show a key's public
id and fingerprint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matchkit.security.keys import load_key, new_key, write_key
from matchkit.security.signing import (
    PUBLIC_KEY_FORMAT,
    SIGNING_KEY_FORMAT,
    load_public_key,
    load_signing_key,
    new_signing_key,
    public_key_path,
    write_signing_key,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("key", help="create or inspect a shared key file",
                                   description="Create or inspect a shared secret key file.")
    actions = parser.add_subparsers(dest="key_command", metavar="ACTION")
    new = actions.add_parser("new", help="write a new 256-bit shared secret (mode 0600) with a key id",
                             description="Write a new 256-bit shared secret key file (mode 0600).")
    new.add_argument("-o", "--output", required=True, metavar="KEYFILE", help="where to write the key file")
    new.set_defaults(func=run_new)
    signing = actions.add_parser(
        "new-signing", help="write an agency's Ed25519 signing key (mode 0600) and its public key (.pub)",
        description="Write a new Ed25519 signing key for one agency (AGENCY.key, mode 0600) and its public key "
        "beside it (AGENCY.pub). Sign hashed files with 'matchkit hash --sign AGENCY.key'; give the .pub file to "
        "the people who run 'matchkit verify --trust DIR'.")
    signing.add_argument("-o", "--output", required=True, metavar="AGENCY.key", help="where to write the private key")
    signing.add_argument("--signer", default=None,
                         help="the agency's name as shown to verify operators (default: the file name's stem)")
    signing.set_defaults(func=run_new_signing)
    info = actions.add_parser("info", help="print the key id and fingerprint (never the secret)",
                              description="Print a key file's id and fingerprint (shared key, signing key or "
                              ".pub public key); never the secret.")
    info.add_argument("keyfile", metavar="KEYFILE")
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_new(args: argparse.Namespace) -> int:
    key = new_key()
    path = write_key(key, args.output)
    print(f"wrote key {key.key_id} to {path} (mode 0600)")
    print(f"fingerprint {key.fingerprint}")
    return 0


def run_new_signing(args: argparse.Namespace) -> int:
    signer = args.signer or Path(args.output).stem
    key = new_signing_key(signer)
    private_path, public_path = write_signing_key(key, args.output)
    print(f"wrote signing key {key.key_id} for '{signer}' to {private_path} (mode 0600)")
    print(f"wrote public key to {public_path}: copy it into the verify operators' trust folder")
    print(f"fingerprint {key.public.fingerprint}")
    return 0


def _key_format(path: str) -> object:
    try:
        return json.loads(Path(path).read_bytes()).get("format")
    except (OSError, ValueError, AttributeError):
        return None  # load_key below reports what is wrong


def run_info(args: argparse.Namespace) -> int:
    kind = _key_format(args.keyfile)
    if kind in (SIGNING_KEY_FORMAT, PUBLIC_KEY_FORMAT):
        public = load_signing_key(args.keyfile).public if kind == SIGNING_KEY_FORMAT else \
            load_public_key(args.keyfile)
        print(f"signer      {public.signer}")
        print(f"key id      {public.key_id}")
        print(f"fingerprint {public.fingerprint}")
        print(f"created     {public.created or 'unknown'}")
        if kind == SIGNING_KEY_FORMAT:
            print(f"public key  {public_key_path(args.keyfile)}")
        return 0
    key = load_key(args.keyfile)
    print(f"key id      {key.key_id}")
    print(f"fingerprint {key.fingerprint}")
    print(f"created     {key.created or 'unknown'}")
    return 0
