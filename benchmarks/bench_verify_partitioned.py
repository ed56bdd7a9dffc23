"""Partitioned verify (issue #14): wall time and peak RSS of the whole process tree of `matchkit verify`, in one
piece (`--partitions 1`) and split into N partitions (in this process, or with `--scheduler`), on hashed files
already made (e.g. by `benchmarks/bench_pipeline.py` or `matchkit hash`), and whether the flags are byte-identical.

Usage: python benchmarks/bench_verify_partitioned.py HASHED_DIR --partitions 1 16 64 [--scheduler processes]
       [--extracts education household ...]
HASHED_DIR holds claims.parquet and the five extracts. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _measure import run_measured

EXTRACTS = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hashed", type=Path)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--extracts", nargs="+", default=list(EXTRACTS), help="the extracts to verify against")
    parser.add_argument("--out", type=Path, default=None, help="where the flags go (default: HASHED_DIR)")
    args = parser.parse_args()
    out = args.out or args.hashed
    matchkit = [sys.executable, "-m", "matchkit"]
    inputs = ["--claims", str(args.hashed / "claims.parquet"), *(str(args.hashed / f"{s}.parquet") for s in args.extracts)]
    reference: Path | None = None
    print(f"load average before: {os.getloadavg()}")
    print(f"{'partitions':>10} {'scheduler':>10} {'seconds':>9} {'peak RSS MB':>12}  flags")
    for count in args.partitions:
        flags = out / f"flags-p{count}{'-' + args.scheduler if args.scheduler and count > 1 else ''}.csv"
        command = [*matchkit, "verify", *inputs, "-o", str(flags), "--partitions", str(count)]
        if args.scheduler and count > 1:
            command += ["--scheduler", args.scheduler]
        measured = run_measured(command)
        if measured.returncode != 0:
            print(measured.stderr[-2000:])
            return 1
        same = "reference" if reference is None else (
            "identical" if filecmp.cmp(reference, flags, shallow=False) else "DIFFERENT")
        reference = reference or flags
        print(f"{count:>10} {args.scheduler if count > 1 and args.scheduler else 'inline':>10} "
              f"{measured.seconds:>9.1f} {measured.peak_rss_mb:>12.0f}  {same}   (load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
