"""`matchkit link LEFT.parquet RIGHT.parquet -o PAIRS.csv`: generic privacy-preserving linkage of two hashed files.

Both files come from `matchkit hash` with the same linkage schema and key. Like verify, it needs no key.
"""

from __future__ import annotations

import argparse
import sys

from matchkit.runtime.cluster import add_scheduler_arguments
from matchkit.runtime.process import start_link_process
from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE, EM_THRESHOLD, FALLBACK_THRESHOLD


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "link", help="link two hashed files (any linkage schema): left_id,right_id,score (no key needed)",
        description="Link two files hashed with the same linkage schema and key: keyed blocking, Bloom-filter "
        "and token comparison, a Fellegi-Sunter model estimated without labels (EM), and an optional "
        "one-to-one assignment. Writes left_id,right_id,score.",
    )
    parser.add_argument("left", metavar="LEFT.parquet", help="hashed left file")
    parser.add_argument("right", metavar="RIGHT.parquet", help="hashed right file")
    parser.add_argument("-o", "--output", required=True, metavar="PAIRS.csv", help="pairs output (CSV)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help=f"minimum score in [0, 1] for a link (default {EM_THRESHOLD} = match probability "
                        f"under the estimated model; {FALLBACK_THRESHOLD} = mean field similarity when the "
                        "plain fallback scores)")
    parser.add_argument("--one-to-one", action="store_true",
                        help="each record in at most one link (greedy by score)")
    parser.add_argument("--method", choices=("auto", "em", "threshold"), default="auto",
                        help="auto: EM-estimated Fellegi-Sunter model, falling back to the plain similarity "
                        "threshold if it cannot be estimated; em: the model or an error; threshold: the "
                        "plain mean field similarity")
    parser.add_argument("--max-block-size", type=int, default=DEFAULT_MAX_BLOCK_SIZE, metavar="N",
                        help="skip a blocking key held by more than N right-hand records in that pass "
                        f"(reported; default {DEFAULT_MAX_BLOCK_SIZE})")
    parser.add_argument("--candidates", metavar="CANDIDATES.csv", default=None,
                        help="also write every candidate pair with its score (for tuning and evaluation)")
    parser.add_argument("--no-tf", action="store_true",
                        help="no term-frequency adjustment of exact agreements (by default names and texts, or "
                        "what the schema's tf / [[tf_group]] say, weigh a rare value more than a common one)")
    parser.add_argument("--stats", metavar="STATS.json", default=None,
                        help="also write the run's statistics (counts, timings, estimated m/u) as JSON")
    add_scheduler_arguments(parser)
    parser.set_defaults(func=run, start_process=start_link_process)


def run(args: argparse.Namespace) -> int:
    def progress(step: str) -> None:
        if sys.stderr.isatty():
            print(f"  {step}", file=sys.stderr)

    from matchkit.jobs.link import link_files  # numpy and pyarrow load only when a command needs them

    result = link_files(args.left, args.right, args.output, threshold=args.threshold, one_to_one=args.one_to_one,
                        method=args.method, candidates_path=args.candidates, stats_path=args.stats,
                        max_block_size=args.max_block_size, progress=progress, term_frequency=not args.no_tf,
                        partitions=args.partitions, scheduler=args.scheduler)
    stats = result.stats
    print(f"records: {stats.left_records:,} left x {stats.right_records:,} right")
    print(f"candidate pairs: {stats.candidates:,} (reduction ratio {stats.reduction_ratio:.6f})")
    for name, counts in stats.passes.items():
        skipped = (f", skipped {counts.skipped_keys} frequent keys ({counts.skipped_pairs:,} pairs)"
                   if counts.skipped_keys else "")
        found = stats.links_found_by_pass.get(name, 0)
        print(f"  pass {name}: {counts.candidates:,} candidates{skipped}; finds {found:,} of the links")
    if stats.comparisons_per_second:
        print(f"compared {stats.field_comparisons:,} field pairs in {stats.compare_seconds:.2f} s "
              f"({stats.comparisons_per_second / 1e6:.1f} M comparisons/s)")
    if stats.method == "em" and stats.em is not None:
        print(f"model: Fellegi-Sunter, m by EM over {len(stats.em.sessions)} blocking-pass sessions, u from random "
              f"pairs; expected links {stats.em.expected_links or 0:,.0f}")
    else:
        print("model: plain threshold on mean field similarity"
              + (" (EM could not be trusted on these files)" if stats.em is not None else ""))
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"links: {stats.links:,} at score >= {stats.threshold}" + (" (one-to-one)" if args.one_to_one else ""))
    print(f"wrote {result.output}")
    return 0
