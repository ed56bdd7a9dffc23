"""`matchkit dedupe HASHED.parquet -o CLUSTERS.csv`: find the records of one hashed linkage file that are the same
entity, scored like `matchkit link`, and write `record_id,cluster_id`. Like link, it needs no key."""

from __future__ import annotations

import argparse
import sys

from matchkit.runtime.process import start_link_process
from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE, EM_THRESHOLD, FALLBACK_THRESHOLD


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedupe", help="deduplicate one hashed file (any linkage schema): record_id,cluster_id (no key needed)",
        description="Find duplicates within one file hashed with a linkage schema: the schema's blocking passes "
        "within the file, the same comparisons and Fellegi-Sunter model as 'matchkit link', then clusters of "
        "records joined by pairs scoring at least the threshold. Writes record_id,cluster_id for every record.",
    )
    parser.add_argument("hashed", metavar="HASHED.parquet", help="hashed file")
    parser.add_argument("-o", "--output", required=True, metavar="CLUSTERS.csv", help="clusters output (CSV)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help=f"minimum score in [0, 1] for two records to be joined (default {EM_THRESHOLD} = match "
                        f"probability under the estimated model; {FALLBACK_THRESHOLD} = mean field similarity "
                        "when the plain fallback scores)")
    parser.add_argument("--pairs", metavar="PAIRS.csv", default=None,
                        help="also write the joined pairs left_id,right_id,score (each pair once)")
    parser.add_argument("--clusters", choices=("average", "components"), default="average",
                        help="average (default): join two clusters when a pair scores at least the threshold and "
                        "so does the average of all scored pairs between them; components: every pair at or above "
                        "the threshold joins (chains: A-B and B-C join A and C)")
    parser.add_argument("--method", choices=("auto", "em", "threshold"), default="auto",
                        help="as for 'matchkit link'")
    parser.add_argument("--no-tf", action="store_true",
                        help="no term-frequency adjustment of exact agreements")
    parser.add_argument("--max-block-size", type=int, default=DEFAULT_MAX_BLOCK_SIZE, metavar="N",
                        help=f"skip a blocking key held by more than N records in that pass (default "
                        f"{DEFAULT_MAX_BLOCK_SIZE})")
    parser.add_argument("--stats", metavar="STATS.json", default=None,
                        help="also write the run's statistics as JSON")
    parser.set_defaults(func=run, start_process=start_link_process)


def run(args: argparse.Namespace) -> int:
    def progress(step: str) -> None:
        if sys.stderr.isatty():
            print(f"  {step}", file=sys.stderr)

    from matchkit.jobs.dedupe import dedupe_file  # numpy and pyarrow load only when a command needs them

    result = dedupe_file(args.hashed, args.output, threshold=args.threshold, pairs_path=args.pairs,
                         stats_path=args.stats, method=args.method, clusters=args.clusters,
                         max_block_size=args.max_block_size, term_frequency=not args.no_tf, progress=progress)
    stats = result.stats
    print(f"records: {stats.records:,}")
    print(f"candidate pairs: {stats.candidates:,} (reduction ratio {stats.reduction_ratio:.6f})")
    for name, counts in stats.passes.items():
        skipped = (f", skipped {counts.skipped_keys} frequent keys ({counts.skipped_pairs:,} pairs)"
                   if counts.skipped_keys else "")
        print(f"  pass {name}: {counts.candidates:,} candidates{skipped}")
    if stats.method == "em" and stats.em is not None:
        print(f"model: Fellegi-Sunter, m by EM over {len(stats.em.sessions)} blocking-pass sessions, u from "
              "random pairs" + (", term-frequency adjusted" if stats.term_frequencies else ""))
    else:
        print("model: plain threshold on mean field similarity"
              + (" (EM could not be trusted on this file)" if stats.em is not None else ""))
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"links: {stats.links:,} at score >= {stats.threshold}")
    print(f"clusters ({stats.clustering}): {stats.clusters:,} ({stats.records_in_clusters_of_two_or_more:,} records "
          f"in clusters of two or more; largest {stats.largest_cluster:,})")
    print(f"wrote {result.output}" + (f" and {args.pairs}" if args.pairs else ""))
    return 0
