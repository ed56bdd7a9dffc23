"""Partitioned link (issue 14): `matchkit link` once in one piece and once per `--partitions N [--scheduler S]`
setting on the same two hashed files; wall time and peak RSS of each run's whole process tree
(`benchmarks/_measure.py`: Dask workers included), and whether every run's pairs (and candidates, with
--candidates) are byte for byte those of the single run.

Usage:
    python benchmarks/bench_link_partitioned.py LEFT.parquet RIGHT.parquet --runs single 8 16:local \
        [--candidates] [--one-to-one] [--workdir DIR]

A run is `single` (no partition flags), `N` (--partitions N, tasks in the command's own process) or `N:SCHEDULER`
(--partitions N --scheduler SCHEDULER). Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _measure import run_measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left", type=Path)
    parser.add_argument("right", type=Path)
    parser.add_argument("--runs", nargs="+", default=["single", "4"])
    parser.add_argument("--candidates", action="store_true", help="also write and compare every candidate pair")
    parser.add_argument("--one-to-one", action="store_true")
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "partitioned")
    options = parser.parse_args(argv)
    options.workdir.mkdir(parents=True, exist_ok=True)
    matchkit = [sys.executable, "-m", "matchkit"]
    results = []
    for run in options.runs:
        folder = options.workdir / run.replace(":", "-")
        folder.mkdir(exist_ok=True)
        command = [*matchkit, "link", str(options.left), str(options.right), "-o", str(folder / "pairs.csv"),
                   "--stats", str(folder / "stats.json")]
        if options.candidates:
            command += ["--candidates", str(folder / "candidates.csv")]
        if options.one_to_one:
            command.append("--one-to-one")
        if run != "single":
            partitions, _, scheduler = run.partition(":")
            command += ["--partitions", partitions] + (["--scheduler", scheduler] if scheduler else [])
        print("$ " + " ".join(command), flush=True)
        measured = run_measured(command)
        if measured.returncode != 0:
            print(measured.stderr, file=sys.stderr)
            return 1
        print(measured.stdout.strip(), flush=True)
        results.append((run, folder, measured))
    reference = results[0][1]
    print(f"\n| run | wall s | peak RSS MB | pairs = {results[0][0]} |" + (" candidates = |" if options.candidates else ""))
    print("|---|---:|---:|---|" + ("---|" if options.candidates else ""))
    for run, folder, measured in results:
        same = filecmp.cmp(reference / "pairs.csv", folder / "pairs.csv", shallow=False)
        row = f"| {run} | {measured.seconds:.1f} | {measured.peak_rss_mb:,.0f} | {'yes' if same else 'NO'} |"
        if options.candidates:
            same = filecmp.cmp(reference / "candidates.csv", folder / "candidates.csv", shallow=False)
            row += f" {'yes' if same else 'NO'} |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
