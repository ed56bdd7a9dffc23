"""Hashing throughput on the messy `synth` mix (issue #14): every source of a `matchkit synth --formats mixed` folder.

The mix is what real extracts look like: claims and household as GB18030 CSV with Chinese headers, education as UTF-8
CSV with a BOM, civil affairs and only-child as UTF-8 CSV, medical insurance as Parquet; 15-digit legacy IDs,
full-width digits, traditional characters and homophones in names, several date formats, and many distinct names.
Each source is hashed by its own `matchkit hash` process, end to end (raw file in, Parquet + rejects out). Prints
rows read, wall seconds and rows/s per source and for all sources together (total rows / total wall time), and the
peak RSS of the process tree. With ``--compare DIR`` the hashed tables and rejects files are compared with those of
an earlier run kept in DIR (``read_table().equals`` on the data, bytes of the rejects) and the result printed.

Usage:
    python -m matchkit synth --claims 1000000 --formats mixed --out MIX
    python benchmarks/bench_hash_mix.py MIX --workdir OUT [--repeat 1] [--compare EARLIER_OUT]
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

from _measure import Measurement, run_measured

from matchkit.io.hashed.reader import open_hashed

SOURCES = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")


def _input(mix: Path, source: str) -> Path:
    for ext in (".csv", ".parquet", ".xlsx"):
        if (mix / f"{source}{ext}").exists():
            return mix / f"{source}{ext}"
    raise SystemExit(f"{mix}: no extract for {source}")


_TICKS = os.sysconf("SC_CLK_TCK")


def _session_cpu(session: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) so far of every process in ``session`` (the command's own session,
    so its fork server and workers too), keeping the largest value seen per process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:  # field 6 of stat: the session id
            cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14, 15: utime, stime
            seen[int(entry.name)] = max(seen.get(int(entry.name), 0.0), cpu)


def _run(command: list[str], env: dict[str, str]) -> tuple[Measurement, float]:
    """``run_measured`` plus the CPU seconds of the whole process tree, sampled from /proc every 20 ms (the last
    few milliseconds of each process can be missed, so this is a slight underestimate)."""
    import threading

    seen: dict[int, float] = {}
    done = threading.Event()
    session: list[int] = []

    def sample() -> None:
        while not done.is_set():
            if not session:
                for entry in Path("/proc").iterdir():
                    if entry.name.isdigit():
                        try:
                            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                        except OSError:
                            continue
                        if cmdline[:len(command)] == [c.encode() for c in command]:
                            session.append(int(entry.name))
                            break
            if session:
                _session_cpu(session[0], seen)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_measured(command, env=env)
    done.set()
    sampler.join()
    return result, sum(seen.values())


def _compare(work: Path, earlier: Path) -> bool:
    import pyarrow.parquet as pq

    same = True
    for source in SOURCES:
        a, b = pq.read_table(work / f"{source}.parquet"), pq.read_table(earlier / f"{source}.parquet")
        tables = a.equals(b)
        rejects = (work / f"{source}.rejects.csv").read_bytes() == (earlier / f"{source}.rejects.csv").read_bytes()
        meta = (a.schema.metadata or {}).keys() == (b.schema.metadata or {}).keys()
        print(f"compare {source:<18} rows {a.num_rows:>9,} table equal: {tables}  rejects equal: {rejects}  "
              f"metadata keys equal: {meta}")
        same = same and tables and rejects
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mix", type=Path, help="a `matchkit synth --formats mixed` output folder")
    parser.add_argument("--workdir", type=Path, required=True, help="where the hashed files and rejects go")
    parser.add_argument("--key", type=Path, default=None, help="shared key file (default: a new one in workdir)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores, max 4)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per source; the median wall time is reported")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--compare", type=Path, default=None, help="earlier workdir to compare outputs with")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    matchkit = [sys.executable, "-m", "matchkit"]
    key = args.key or work / "bench.key"
    if not key.exists():
        subprocess.run([*matchkit, "key", "new", "-o", str(key)], check=True, capture_output=True)
    env = {"MATCHKIT_KEY_FILE": str(key)}
    if args.workers:
        env["MATCHKIT_WORKERS"] = str(args.workers)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'source':<18} {'input':<26} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'CPU s':>7} "
          f"{'rows/CPU-s':>10} {'peak RSS MB':>12}")
    total_rows, total_seconds, total_cpu = 0, 0.0, 0.0
    for source in args.sources:
        raw = _input(args.mix, source)
        out, rejects = work / f"{source}.parquet", work / f"{source}.rejects.csv"
        times, cpus, peak, rows = [], [], 0.0, 0
        for _ in range(args.repeat):
            result, cpu = _run([*matchkit, "hash", source, str(raw), "-o", str(out), "--rejects", str(rejects)],
                               env=env)
            cpus.append(cpu)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                raise SystemExit(f"hash {source} failed")
            times.append(result.seconds)
            peak = max(peak, result.peak_rss_mb)
        rows = open_hashed(out).manifest.rows_in
        seconds = sorted(times)[len(times) // 2]
        cpu = sorted(cpus)[len(cpus) // 2]
        total_rows += rows
        total_seconds += seconds
        total_cpu += cpu
        print(f"{source:<18} {raw.name:<26} {rows:>10,} {seconds:>8.2f} {rows / seconds:>10,.0f} {cpu:>7.2f} "
              f"{rows / cpu:>10,.0f} {peak:>12,.0f}")
    print(f"{'all sources':<18} {'':<26} {total_rows:>10,} {total_seconds:>8.2f} {total_rows / total_seconds:>10,.0f} "
          f"{total_cpu:>7.2f} {total_rows / total_cpu:>10,.0f}")
    if args.compare:
        same = _compare(work, args.compare)
        print("outputs identical to", args.compare, ":", same)
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
