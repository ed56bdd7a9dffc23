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
    oprf = actions.add_parser(
        "new-oprf", help="write an agency's own OPRF key for the keyless mode (mode 0600; never shared)",
        description="Write a new OPRF key for one agency (SPEC §7). It seals the agency's tables and answers the tax "
        "bureau's requests; it is never shared with anyone.")
    oprf.add_argument("-o", "--output", required=True, metavar="AGENCY.oprf", help="where to write the key file")
    oprf.add_argument("--purpose", action="append", default=None, metavar="PURPOSE",
                      help="a purpose the key serves (repeatable; default: iit-special-deduction)")
    oprf.add_argument("--years", default="2019-2099", metavar="FIRST-LAST",
                      help="the tax years the key serves (default 2019-2099)")
    oprf.set_defaults(func=run_new_oprf)
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


def run_new_oprf(args: argparse.Namespace) -> int:
    from matchkit.errors import MatchkitError
    from matchkit.jobs.keyless import new_oprf_key_job
    from matchkit.security.keys import DEFAULT_PURPOSE

    first, sep, last = args.years.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise MatchkitError("--years expects FIRST-LAST, e.g. 2019-2030")
    key = new_oprf_key_job(args.output, purposes=args.purpose or [DEFAULT_PURPOSE],
                           years=(int(first), int(last)))
    print(f"wrote OPRF key {key.key_id} to {args.output} (mode 0600); it never leaves the agency")
    print(f"serves {', '.join(key.purposes)}, tax years {key.years[0]}-{key.years[1]}")
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
    if kind == "matchkit-oprf-key":
        from matchkit.jobs.keyless import load_oprf_key

        oprf_key = load_oprf_key(args.keyfile)
        print(f"OPRF key    {oprf_key.key_id} (keyless mode; never shared)")
        print(f"serves      {', '.join(oprf_key.purposes)}, tax years {oprf_key.years[0]}-{oprf_key.years[1]}")
        print("fingerprint one per (purpose, tax year): printed by 'seal' and stored in each table and answer")
        print(f"created     {oprf_key.created or 'unknown'}")
        return 0
    key = load_key(args.keyfile)
    print(f"key id      {key.key_id}")
    print(f"fingerprint {key.fingerprint}")
    print(f"created     {key.created or 'unknown'}")
    return 0
