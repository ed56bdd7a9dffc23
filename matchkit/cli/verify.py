"""`matchkit verify --claims CLAIMS.parquet EXTRACT.parquet ... -o FLAGS.csv`: the batch verification job.

It needs no key: it works on hashed files only, and refuses files hashed under different keys, purposes or
encoding versions, or whose content does not match their manifest.
"""

from __future__ import annotations

import argparse

from matchkit.cli.audit import add_audit_option
from matchkit.cli.options import progress_bar
from matchkit.report.catalogue import DEFAULT_LANGUAGE, LANGUAGES
from matchkit.runtime.cluster import add_scheduler_arguments
from matchkit.settings import TRUST_ENV_VAR


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify", help="verify hashed claims against hashed agency extracts (no key needed)",
        description="Verify hashed claim lines against hashed agency extracts and write one flag per claim line.",
    )
    parser.add_argument("--claims", required=True, metavar="CLAIMS.parquet", help="hashed claims file")
    parser.add_argument("extracts", nargs="*", metavar="EXTRACT.parquet",
                        help="hashed extracts (education, household, civil_affairs, only_child, medical_insurance)")
    parser.add_argument("-o", "--output", required=True, metavar="FLAGS.csv|FLAGS.parquet|FLAGS.xlsx",
                        help="flags output; .xlsx is a workbook for tax staff (reasons explained, summary sheet)")
    parser.add_argument("--report", metavar="REPORT.html", default=None,
                        help="also write the review workbench: one self-contained HTML page (summary, worklist)")
    parser.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANGUAGE,
                        help="language of the workbook and the report: zh (default) or en")
    parser.add_argument("--trust", metavar="TRUST_DIR", default=None,
                        help=f"folder of trusted agency public keys (*.pub); every input must then be signed by one "
                        f"of them and unchanged since (default: ${TRUST_ENV_VAR}; unset: signatures not required)")
    add_audit_option(parser)
    add_scheduler_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matchkit.jobs.verify import (
        verify_files,  # numpy, pandas and pyarrow load only when a command needs them
    )

    # On a terminal, a tqdm bar names the stage the run is in (a bar has no truth value before it knows a total:
    # test it against None); in CI logs and pipes nothing is drawn.
    bar = progress_bar("verify", unit="stage", unit_scale=False, bar_format="{desc} [{elapsed}]")

    def progress(step: str) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_description_str(f"verify: {step}")  # drawn now: a stage can last long

    try:
        result = verify_files(args.claims, args.extracts, args.output, report_path=args.report,
                              progress=progress if bar is not None else None, trust=args.trust,
                              audit_log=args.audit_log, lang=args.lang, partitions=args.partitions,
                              scheduler=args.scheduler)
    finally:
        if bar is not None:
            bar.close()
    from matchkit.report.console import summary_table

    print(summary_table(result.flags))
    for described in result.inputs:
        if "signer" in described:
            print(f"{described['name']}: signature OK, signed by {described['signer']}")
    print(f"wrote {result.output} ({len(result.flags)} claim lines)")
    if result.report:
        print(f"report: {result.report}")
    return 0
