"""`matchkit hash SOURCE INPUT --key KEYFILE -o OUT.parquet`: hash one raw extract on the agency's machine."""

from __future__ import annotations

import argparse
import sys

from matchkit.cli.audit import add_audit_option
from matchkit.cli.options import add_key_option, progress_bar
from matchkit.runtime.cluster import add_scheduler_arguments
from matchkit.runtime.process import start_hash_process
from matchkit.security.keys import load_key
from matchkit.security.signing import load_signing_key


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hash", help="turn a raw extract into a hashed Parquet file that is safe to hand over",
        description="Hash a raw extract (CSV in UTF-8 or GB18030, XLSX or Parquet) into keyed tokens and fuzzy "
        "encodings. Identifiers, names and birth dates never leave in clear.",
    )
    parser.add_argument("source", metavar="SOURCE",
                        help="built-in source (claims, education, household, civil_affairs, only_child, "
                        "medical_insurance) or a schema .toml file")
    parser.add_argument("input", metavar="INPUT", help="raw extract: .csv, .xlsx or .parquet")
    add_key_option(parser)
    parser.add_argument("-o", "--output", required=True, metavar="OUT.parquet|OUT_DIR/",
                        help="hashed output file, or a directory (a path ending in /) for a "
                        "partitioned Parquet dataset: parts written as the hashing goes, bound by an index")
    parser.add_argument("--rejects", metavar="REJECTS.csv", default=None,
                        help="write rejected rows as line,column,reason (never the raw value)")
    parser.add_argument("--encoding", default="auto",
                        help="CSV text encoding: auto (default; BOM, UTF-8, else GB18030), utf-8, gb18030, gbk")
    parser.add_argument("--purpose", default=None, help="override the schema's purpose label")
    parser.add_argument("--sign", metavar="AGENCY.key", default=None,
                        help="sign the whole output file with this agency signing key (mode 0600; made by "
                        "'matchkit key new-signing'), so verify --trust can tell who produced it")
    parser.add_argument("--allow-empty", action="store_true",
                        help="accept an input with no data rows (a header only) and write an empty hashed file; "
                        "without it such an input is refused (exit 1)")
    add_audit_option(parser)
    add_scheduler_arguments(parser)
    parser.set_defaults(func=run, start_process=start_hash_process)


def run(args: argparse.Namespace) -> int:
    from matchkit.jobs.hash import hash_file  # the worker fork server imports the encoders meanwhile

    key = load_key(args.key)
    signing_key = load_signing_key(args.sign) if args.sign else None
    bar = progress_bar("hashing")  # a tqdm bar has no truth value before it knows its total: test for None
    try:
        result = hash_file(args.source, args.input, key, args.output, rejects_path=args.rejects,
                           encoding=args.encoding, purpose=args.purpose,
                           progress=bar.update if bar is not None else None,
                           signing_key=signing_key, audit_log=args.audit_log,
                           allow_empty=args.allow_empty, scheduler=args.scheduler, partitions=args.partitions)
    finally:
        if bar is not None:
            bar.close()
    print(f"{args.input}: {result.rows_in} rows in = {result.rows_hashed} hashed + {result.rows_rejected} rejected")
    manifest = result.manifest
    parts = f", {result.parts} parts" if result.parts is not None else ""
    print(f"wrote {result.output} (source {manifest.source}, encoding {manifest.encoding_version}, key "
          f"{manifest.key_id}{parts})")
    for field, count in (manifest.linkage.kept_invalid if manifest.linkage else {}).items():
        if count:
            print(f"{field}: {count} values not valid for their type were encoded as written (on_invalid = keep)")
    if signing_key:
        print(f"signed by {signing_key.public.describe()}")
    if result.rejects:
        print(f"rejects: {result.rejects}")
    elif result.rows_rejected:
        print(f"{result.rows_rejected} rows rejected; pass --rejects FILE to see their lines and reasons",
              file=sys.stderr)
    return 0
