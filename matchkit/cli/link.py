"""`matchkit link LEFT.parquet RIGHT.parquet -o PAIRS.csv`: generic privacy-preserving linkage of two hashed files.

Both files come from `matchkit hash` with the same linkage schema and key. Like verify, it needs no key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE, EM_THRESHOLD, FALLBACK_THRESHOLD
from matchkit.workers import lean_process


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    def progress(step: str) -> None:
        if sys.stderr.isatty():
            print(f"  {step}", file=sys.stderr)

    lean_process()  # numpy and pyarrow only: pyarrow would otherwise import pandas (~0.2 s)
    from matchkit.link.job import link_files  # numpy and pyarrow load only when a command needs them

    result = link_files(args.left, args.right, args.output, threshold=args.threshold, one_to_one=args.one_to_one,
                        method=args.method, candidates_path=args.candidates, max_block_size=args.max_block_size,
                        progress=progress, term_frequency=not args.no_tf)
    stats = result.stats
    print(f"records: {stats['left_records']:,} left x {stats['right_records']:,} right")
    print(f"candidate pairs: {stats['candidates']:,} (reduction ratio {stats['reduction_ratio']:.6f})")
    for name, described in stats["passes"].items():
        skipped = (f", skipped {described['skipped_keys']} frequent keys ({described['skipped_pairs']:,} pairs)"
                   if described["skipped_keys"] else "")
        found = stats["links_found_by_pass"].get(name, 0)
        print(f"  pass {name}: {described['candidates']:,} candidates{skipped}; finds {found:,} of the links")
    rate = stats.get("comparisons_per_second")
    if rate:
        print(f"compared {stats['candidates'] * len(stats['fields']):,} field pairs in "
              f"{stats['compare_seconds']:.2f} s ({rate / 1e6:.1f} M comparisons/s)")
    if stats["method"] == "em":
        em = stats["em"]
        print(f"model: Fellegi-Sunter, m by EM over {len(em['sessions'])} blocking-pass sessions, u from random "
              f"pairs; expected links {em['expected_links']:,.0f}")
    else:
        print("model: plain threshold on mean field similarity"
              + (" (EM could not be trusted on these files)" if "em" in stats else ""))
    for warning in stats.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"links: {stats['links']:,} at score >= {stats['threshold']}"
          + (" (one-to-one)" if args.one_to_one else ""))
    print(f"wrote {result.output}")
    if args.stats:
        Path(args.stats).write_text(json.dumps(stats, indent=2, default=float) + "\n", encoding="utf-8")
    return 0
