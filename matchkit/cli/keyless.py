"""Keyless-mode commands (SPEC §7): ``seal``, ``request``, ``answer``, ``open`` (``key new-oprf`` is in ``key``).

Thin over :mod:`matchkit.jobs.keyless`: parse, call, print counts (never a value from the data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matchkit import settings
from matchkit.cli.audit import add_audit_option
from matchkit.errors import MatchkitError
from matchkit.runtime.cluster import add_scheduler_arguments


def _audit_log(args: argparse.Namespace) -> str | None:
    """``--audit-log``, else ``MATCHKIT_AUDIT_LOG`` (:mod:`matchkit.settings`), else no log."""
    return args.audit_log or settings.audit_log() or None

def register(subparsers: argparse._SubParsersAction) -> None:
    seal = subparsers.add_parser(
        "seal", help="agency: seal an extract for on-demand checks with no shared secret (full, delta or merge)",
        description="Seal a raw extract under the agency's own OPRF key: every row encrypted, opened only by the "
        "tax bureau's requests for the people on its list (SPEC §7). Full table, a delta against --previous, or "
        "--merge BASE DELTA... into one table.")
    seal.add_argument("source", metavar="SOURCE", nargs="?", help="built-in extract source (education, household, "
                      "civil_affairs, only_child, medical_insurance)")
    seal.add_argument("input", metavar="INPUT", nargs="?", help="raw extract: .csv, .xlsx or .parquet")
    seal.add_argument("--oprf-key", metavar="AGENCY.oprf", help="the agency's OPRF key file (mode 0600)")
    seal.add_argument("--tax-year", type=int, metavar="YEAR", help="the tax year the table serves (requests for "
                      "another year do not open it)")
    seal.add_argument("-o", "--output", required=True, metavar="TABLE.parquet",
                      help="the sealed table; DIR/ (a trailing slash) writes a partitioned table, 16 part files")
    seal.add_argument("--rejects", metavar="R.csv", default=None, help="rejected rows as line,column,reason")
    seal.add_argument("--previous", metavar="PREV.parquet", default=None,
                      help="write only the rows added, changed or removed since this full or merged table")
    seal.add_argument("--merge", nargs="+", metavar="TABLE", default=None,
                      help="BASE DELTA [DELTA ...]: apply deltas in the order sealed into one table")
    seal.add_argument("--sign", metavar="AGENCY.key", default=None, help="sign the table with this signing key")
    seal.add_argument("--encoding", default="auto", help="CSV text encoding (auto, utf-8, gb18030, gbk)")
    seal.add_argument("--purpose", default=None, help="override the schema's purpose label")
    seal.add_argument("--allow-empty", action="store_true",
                      help="accept an input with no data rows (a header only) and seal an empty table; without it "
                      "such an input is refused (exit 1)")
    add_audit_option(seal)
    add_scheduler_arguments(seal, partitions=False)
    seal.set_defaults(func=run_seal)

    request = subparsers.add_parser(
        "request", help="tax bureau: blinded request for the people of a claims list",
        description="Blind the tokens of every listed claim (the claims file, or any subset of it). Writes the "
        "REQUEST for the agencies and the private STATE (mode 0600) that 'open' needs.")
    request.add_argument("claims", metavar="CLAIMS_INPUT", help="raw claims: .csv, .xlsx or .parquet")
    request.add_argument("-o", "--output", required=True, metavar="REQUEST")
    request.add_argument("--state", required=True, metavar="STATE", help="private state file (created, mode 0600)")
    request.add_argument("--rejects", metavar="R.csv", default=None)
    request.add_argument("--encoding", default="auto")
    request.add_argument("--tax-year", type=int, default=None, metavar="YEAR",
                         help="list only the lines of this tax year (required when the claims cover several)")
    request.add_argument("--allow-empty", action="store_true",
                         help="accept a claims input with no data rows (a header only); without it such an input is "
                         "refused (exit 1)")
    request.set_defaults(func=run_request)

    answer = subparsers.add_parser(
        "answer", help="agency: evaluate a request's blinded elements under its OPRF key",
        description="Evaluate the blinded elements of a request under the agency's key for the request's purpose "
        "and tax year. Sees nothing about who is listed. Refuses requests over --max-elements, malformed elements "
        "and purposes or years the key does not serve.")
    answer.add_argument("request", metavar="REQUEST")
    answer.add_argument("--oprf-key", required=True, metavar="AGENCY.oprf")
    answer.add_argument("-o", "--output", required=True, metavar="ANSWER")
    answer.add_argument("--max-elements", type=int, default=None, metavar="N",
                        help="refuse a request with more than N elements")
    answer.add_argument("--sign", metavar="AGENCY.key", default=None, help="sign the answer")
    add_audit_option(answer)
    add_scheduler_arguments(answer, partitions=False)
    answer.set_defaults(func=run_answer)

    opener = subparsers.add_parser(
        "open", help="tax bureau: open the listed people's rows and write files that verify reads",
        description="Unblind each agency's answer, open exactly the rows whose evidence matches the list and "
        "write OPENED_DIR/claims.parquet and one hashed file per source for 'matchkit verify'.")
    opener.add_argument("--state", required=True, metavar="STATE")
    opener.add_argument("--answer", action="append", required=True, metavar="SOURCE=ANSWER")
    opener.add_argument("--table", action="append", required=True, metavar="SOURCE=TABLE.parquet")
    opener.add_argument("-o", "--output", required=True, metavar="OPENED_DIR")
    opener.add_argument("--trust", metavar="TRUST_DIR", default=None,
                        help="folder of trusted agency public keys: every table and answer must be signed")
    add_audit_option(opener)
    opener.set_defaults(func=run_open)


def _pairs(values: list[str], option: str) -> dict[str, str | Path]:
    out: dict[str, str | Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise MatchkitError(f"{option} expects SOURCE=FILE, got a value without '='")
        if name in out:
            raise MatchkitError(f"{option} given twice for {name}")
        out[name] = path
    return out


def run_seal(args: argparse.Namespace) -> int:
    from matchkit.jobs.keyless import merge_job, seal_job

    if args.merge:
        if args.source or args.input or args.previous or args.oprf_key:
            raise MatchkitError("--merge takes only BASE DELTA... -o TABLE (no SOURCE, INPUT, --previous, --oprf-key)")
        if len(args.merge) < 2:
            raise MatchkitError("--merge needs a base table and at least one delta")
        manifest = merge_job(args.merge[0], args.merge[1:], args.output, sign=args.sign,
                             audit_log=_audit_log(args))
        print(f"merged {len(args.merge) - 1} delta(s) into {args.output}: {manifest['rows']} rows "
              f"(chain of {len(manifest['chain'])} seals, key {manifest['key_fingerprint']})")
        return 0
    if not args.source or not args.input or not args.oprf_key or args.tax_year is None:
        raise MatchkitError("seal needs SOURCE INPUT --oprf-key AGENCY.oprf --tax-year YEAR -o TABLE "
                            "(or --merge BASE DELTA... -o TABLE)")
    result = seal_job(args.source, args.input, args.oprf_key, args.output, tax_year=args.tax_year,
                      rejects=args.rejects, previous=args.previous, sign=args.sign, encoding=args.encoding,
                      purpose=args.purpose, audit_log=_audit_log(args), allow_empty=args.allow_empty,
                      scheduler=args.scheduler)
    print(f"{args.input}: {result.rows_in} rows in = {result.rows_sealed} sealed + {result.rows_rejected} rejected")
    kind = result.manifest["table_kind"]
    extra = f" ({result.rows_added} added or changed, {result.rows_removed} removed)" if kind == "delta" else ""
    print(f"wrote {kind} table {result.output}: {result.rows_added} rows, {result.entries} entries{extra}, "
          f"key {result.manifest['key_fingerprint']}, tax year {result.manifest['tax_year']}")
    if result.rejects:
        print(f"rejects: {result.rejects}")
    return 0


def run_request(args: argparse.Namespace) -> int:
    from matchkit.jobs.keyless import request_job

    result = request_job(args.claims, args.output, args.state, rejects=args.rejects, encoding=args.encoding,
                         tax_year=args.tax_year, allow_empty=args.allow_empty)
    print(f"{args.claims}: {result.rows_in} rows in = {result.rows_listed} listed + {result.rows_rejected} rejected"
          + (f" + {result.rows_other_years} of other tax years" if result.rows_other_years else ""))
    print(f"wrote request {result.output}: {result.elements} blinded elements, purpose "
          f"{result.manifest['purpose']}, tax year {result.manifest['tax_year']}, request id "
          f"{result.manifest['request_id']}")
    print(f"state {result.state} (mode 0600): keep it private; delete it once the check is done")
    return 0


def run_answer(args: argparse.Namespace) -> int:
    from matchkit.jobs.keyless import answer_job

    result = answer_job(args.request, args.oprf_key, args.output, max_elements=args.max_elements,
                        audit_log=_audit_log(args), sign=args.sign, scheduler=args.scheduler)
    print(f"answered request {result.request_id}: {result.elements} elements -> {result.output}")
    return 0


def run_open(args: argparse.Namespace) -> int:
    from matchkit.jobs.keyless import open_job

    answers = _pairs(args.answer, "--answer")
    tables = _pairs(args.table, "--table")
    trust = args.trust or settings.trust_dir() or None
    result = open_job(args.state, answers, tables, args.output, trust=trust, audit_log=_audit_log(args))
    print(f"wrote {result.claims} ({result.claim_lines} claim lines)")
    for opened in result.sources:
        print(f"{opened.source}: opened {opened.rows_opened} of {opened.table_rows} rows -> {opened.output}")
    return 0
