"""Hashing throughput: 1,000,000 claim rows and 1,000,000 education rows from CSV, end to end (`matchkit hash`).

Prints rows, wall seconds, records/s and the peak RSS of the whole process tree (workers included).
Usage: python benchmarks/bench_hash.py [--rows 1000000] [--workdir benchmarks/work] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _measure import run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=str(HERE / "work"))
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores, max 4)")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    matchkit = [sys.executable, "-m", "matchkit"]
    key = work / "bench.key"
    if not key.exists():
        subprocess.run([*matchkit, "key", "new", "-o", str(key)], check=True, capture_output=True)
    env = {"MATCHKIT_KEY_FILE": str(key)}
    if args.workers:
        env["MATCHKIT_WORKERS"] = str(args.workers)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"{'source':<10} {'rows':>10} {'seconds':>8} {'records/s':>11} {'peak RSS MB':>12}")
    for source in ("claims", "education"):
        raw = work / f"{source}_{args.rows}.csv"
        if not raw.exists():
            subprocess.run([sys.executable, str(HERE / "make_raw.py"), source, str(args.rows), str(raw)], check=True)
        out = work / f"{source}_{args.rows}.parquet"
        result = run_measured([*matchkit, "hash", source, str(raw), "-o", str(out)], env=env)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            raise SystemExit(f"hash {source} failed")
        print(f"{source:<10} {args.rows:>10,} {result.seconds:>8.2f} {args.rows / result.seconds:>11,.0f} "
              f"{result.peak_rss_mb:>12,.0f}")


if __name__ == "__main__":
    main()
