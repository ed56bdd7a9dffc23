"""`matchkit synth`: write a synthetic population's agency extracts, claims and ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

NOISE_HELP = ("noise level 0..1 (default 0.3): scales traditional characters and homophones in names, full-width "
              "digits, lowercase x, stray spaces and 15-digit legacy IDs, alternative date/month/share formats, "
              "Chinese code values, and a few rejectable row faults in the extracts; 0 writes canonical values")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--claims", type=int, default=1000, metavar="N",
                        help="number of claim lines (the population scales with it: ~3 people per line)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; the same seed gives identical files")
    parser.add_argument("--out", metavar="DIR", help="output directory")
    parser.add_argument("--noise", type=float, default=0.3, help=NOISE_HELP)
    parser.add_argument("--formats", choices=("auto", "mixed", "csv", "parquet"), default="auto",
                        help="file formats: mixed = claims CSV GB18030 with Chinese headers, education CSV UTF-8 "
                             "with BOM, household XLSX, civil_affairs and only_child CSV UTF-8, medical Parquet; "
                             "csv = all CSV UTF-8; parquet = all Parquet; auto (default) = mixed up to 20,000 "
                             "claims, csv above")
    parser.add_argument("--tax-year", type=int, default=2024, help="tax year of the claims (default 2024)")
    parser.add_argument("--defect-rate", type=float, default=0.15,
                        help="share of claim lines carrying a defect (default 0.15; every class at least once)")
    parser.add_argument("--block-claims", type=int, default=None, metavar="N",
                        help="claim lines per block (default 100,000): the data set is generated in independent "
                             "blocks of families, each from (seed, block number), and appended to every file block "
                             "by block, so memory is bounded by a block per worker. Part of the data's definition "
                             "like the seed; the output never depends on --scheduler or MATCHKIT_WORKERS")
    from matchkit.runtime.cluster import add_scheduler_arguments

    add_scheduler_arguments(parser, partitions=False)
    parser.add_argument("--sample", metavar="DIR",
                        help="write the small bundled sample (fixed seed, mixed formats) to DIR and exit")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate a synthetic population, agency extracts, claims and ground truth",
        description="Generate a coherent synthetic population (three generations, valid GB 11643 IDs), every "
                    "agency extract, a claims file with labelled defects, and truth.csv (expected status, reasons "
                    "and allowed amount per claim line). Everything is synthetic.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matchkit.synth import generate, write_sample

    started = time.perf_counter()
    try:
        paths = _write(args, generate, write_sample)
    except OSError as exc:  # a full disk, a file where the folder should be, no permission
        from matchkit.errors import OutputFileError

        target = exc.filename or args.sample or args.out
        raise OutputFileError(f"cannot write the synthetic data ({exc.strerror or type(exc).__name__})",
                              path=target) from exc
    if paths is None:
        return 2
    elapsed = time.perf_counter() - started
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"done in {elapsed:.1f}s", file=sys.stderr)
    return 0


def _write(args: argparse.Namespace, generate: Any, write_sample: Any) -> dict[str, Any] | None:
    if args.sample:
        paths = write_sample(args.sample)
    else:
        if not args.out:
            print("matchkit synth: error: --out DIR is required (or --sample DIR)", file=sys.stderr)
            return None
        from matchkit.synth.dataset import BLOCK_CLAIMS, MIN_BLOCK_CLAIMS

        block_claims = BLOCK_CLAIMS if args.block_claims is None else args.block_claims
        if args.claims < 1 or not 0 <= args.noise <= 1 or not 0 <= args.defect_rate <= 1:
            print("matchkit synth: error: --claims must be >= 1, --noise and --defect-rate in [0, 1]",
                  file=sys.stderr)
            return None
        if block_claims < MIN_BLOCK_CLAIMS:
            print(f"matchkit synth: error: --block-claims must be >= {MIN_BLOCK_CLAIMS}",
                  file=sys.stderr)
            return None
        paths = generate(args.claims, args.seed, args.out, noise=args.noise, formats=args.formats,
                         tax_year=args.tax_year, defect_rate=args.defect_rate, scheduler=args.scheduler,
                         block_claims=block_claims,
                         progress=lambda message: print(message, file=sys.stderr, flush=True))
    return dict(paths)
