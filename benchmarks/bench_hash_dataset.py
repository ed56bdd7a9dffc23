"""Hashing into one file against hashing into a partitioned dataset (issue 14): here, and on Dask schedulers.

Generates N education rows (``benchmarks/make_raw.py``) and runs ``matchkit hash`` as a separate process for each
output mode, printing wall time, rows/s, peak RSS of the whole process tree and the part count. The dataset runs must
hold the same rows as the single file (checked after each run). Usage::

    python benchmarks/bench_hash_dataset.py --rows 1000000 [--modes file,dir,processes,local]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _measure import run_measured

MODES = {
    "file": lambda out: ["-o", str(out) + ".parquet"],
    "dir": lambda out: ["-o", f"{out}/"],
    "processes": lambda out: ["-o", f"{out}/", "--scheduler", "processes"],
    "local": lambda out: ["-o", f"{out}/", "--scheduler", "local"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=str(HERE / "work"))
    parser.add_argument("--modes", default="file,dir,processes,local")
    parser.add_argument("--partitions", type=int, default=None)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    matchkit = [sys.executable, "-m", "matchkit"]
    key = work / "bench.key"
    if not key.exists():
        subprocess.run([*matchkit, "key", "new", "-o", str(key)], check=True, capture_output=True)
    raw = work / f"education_{args.rows}.csv"
    if not raw.exists():
        subprocess.run([sys.executable, str(HERE / "make_raw.py"), "education", str(args.rows), str(raw)], check=True)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; rows {args.rows:,}; "
          f"input {raw.stat().st_size / 2**20:,.0f} MiB")
    print(f"{'mode':<10} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'parts':>6}")
    reference = None
    for mode in args.modes.split(","):
        out = work / f"education_{args.rows}_{mode}"
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--partitions", str(args.partitions)] if args.partitions and mode != "file" else []
        result = run_measured([*matchkit, "hash", "education", str(raw), "--key", str(key), *MODES[mode](out),
                               *extra])
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            raise SystemExit(f"hash ({mode}) failed")
        from matchkit.io.hashed.reader import open_hashed

        hashed = open_hashed(str(out) + ".parquet" if mode == "file" else out)
        table = hashed.read()
        if reference is None:
            reference = table
        elif not table.equals(reference):
            raise SystemExit(f"{mode}: rows differ from the first mode's")
        parts = len(getattr(hashed, "parts", ())) or 1
        print(f"{mode:<10} {result.seconds:>8.2f} {args.rows / result.seconds:>10,.0f} {result.peak_rss_mb:>12,.0f} "
              f"{parts:>6}")


if __name__ == "__main__":
    main()
