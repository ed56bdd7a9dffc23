"""Scale (issue #14, SPEC §8): synth -> hash every source -> verify at 10^6-10^7 claim lines, each stage a real CLI
command as a user would run it, measured: wall time, rows/s and the peak resident memory of the stage's WHOLE process
tree (the command and every worker it starts, sampled from /proc; see _measure.py).

Usage (from the repository root):

    python benchmarks/bench_scale.py --claims 1000000 10000000 --work /data/scale \\
        [--synth-args "--scheduler processes"] [--hash-dir] [--hash-args "..."] \\
        [--verify-args "--partitions 64 --scheduler processes"] [--reuse] [--accuracy] [--table FILE]

- ``--work DIR`` keeps everything: ``DIR/synth-N-sS/`` (the raw data set), ``DIR/run-N-sS/`` (key, hashed files,
  rejects, flags); ``--reuse`` keeps a complete data set already there instead of generating it again (its stage
  is then shown as reused).
- ``--hash-dir``: ``hash -o DIR/SOURCE/`` (a partitioned dataset directory) instead of ``-o DIR/SOURCE.parquet``;
  ``--hash-args`` / ``--verify-args`` / ``--synth-args``: extra arguments for every such command (shell words).
- ``--accuracy``: compare the flags with the synthetic truth (bench_pipeline.accuracy; reads both whole, so it needs
  memory in proportion to the size: leave it off at 10^7 on a 24 GB machine).
- The table goes to stdout and to ``--table`` (default ``DIR/scale-results.md``), appended run after run, with the
  command, the machine and its load average before and after every stage (this machine is shared: say so).

Figures are printed, never asserted. The whole chain at 10^7 runs unattended: every stage is a subprocess whose
failure is reported with its command and stderr, and the table is rewritten after every stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _measure import run_measured
from bench_pipeline import accuracy, format_accuracy, format_machine, machine_info

SOURCES = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")
EXTRACTS = SOURCES[1:]


@dataclass
class Row:
    size: int
    stage: str
    rows: int
    seconds: float | None  # None: reused, not run
    peak_mb: float | None
    load_before: float
    load_after: float
    note: str = ""

    def cells(self) -> list[str]:
        seconds = "reused" if self.seconds is None else f"{self.seconds:,.1f}"
        rate = (f"{self.rows / self.seconds:,.0f}" if self.seconds and self.rows else "")
        peak = "" if self.peak_mb is None else f"{self.peak_mb:,.0f}"
        return [f"{self.size:,}", self.stage, f"{self.rows:,}", seconds, rate, peak,
                f"{self.load_before:.1f} / {self.load_after:.1f}", self.note]


HEADER = ["claim lines", "stage", "rows", "wall s", "rows/s", "peak MB (tree)", "load 1-min before / after", "note"]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def matchkit() -> list[str]:
    return [sys.executable, "-m", "matchkit"]


def complete(data: Path) -> bool:
    manifest = data / "manifest.json"
    if not manifest.exists() or not (data / "truth.csv").exists():
        return False
    files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    return all(source in files and (data / files[source]["path"]).exists() for source in SOURCES)


class Failed(RuntimeError):
    pass


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(seconds, peak MB of the process tree, stderr) of a command that must succeed."""
    result = run_measured(command, env=env, interval=0.2)
    if result.returncode != 0:
        raise Failed(f"exit {result.returncode}: {shlex.join(command)}\n{result.stderr[-4000:]}")
    return result.seconds, result.peak_rss_mb, result.stderr


def run_size(n: int, args: argparse.Namespace, rows: list[Row], flush: Callable[[], None]) -> Path:
    work = Path(args.work)
    data = work / f"synth-{n}-s{args.seed}"
    run = work / f"run-{n}-s{args.seed}"
    run.mkdir(parents=True, exist_ok=True)

    def stage(name: str, count: int, command: list[str] | None, env: dict[str, str] | None = None,
              note: str = "") -> None:
        before = os.getloadavg()[0]
        print(f"[{n:,}] {name} ...", file=sys.stderr, flush=True)
        seconds = peak = None
        if command is not None:
            seconds, peak, _ = measured(command, env)
        rows.append(Row(n, name, count, seconds, peak, before, os.getloadavg()[0], note))
        flush()

    if args.reuse and complete(data):
        files = json.loads((data / "manifest.json").read_text(encoding="utf-8"))["files"]
        stage("synth", sum(int(f["rows"]) for f in files.values()), None, note=f"reused {data}")
    else:
        command = [*matchkit(), "synth", "--claims", str(n), "--seed", str(args.seed), "--out", str(data),
                   "--formats", args.formats, *shlex.split(args.synth_args)]
        before = os.getloadavg()[0]
        print(f"[{n:,}] synth ...", file=sys.stderr, flush=True)
        seconds, peak, _ = measured(command)
        files = json.loads((data / "manifest.json").read_text(encoding="utf-8"))["files"]
        rows.append(Row(n, "synth", sum(int(f["rows"]) for f in files.values()), seconds, peak, before,
                        os.getloadavg()[0], "rows: claims + every extract"))
        flush()
    files = json.loads((data / "manifest.json").read_text(encoding="utf-8"))["files"]

    key = run / "scale.key"
    if not key.exists():
        measured([*matchkit(), "key", "new", "-o", str(key)])
    env = {"MATCHKIT_KEY_FILE": str(key)}
    hashed: dict[str, str] = {}
    first = len(rows)
    for source in SOURCES:
        raw = data / files[source]["path"]
        out = f"{run / source}/" if args.hash_dir else str(run / f"{source}.parquet")
        hashed[source] = out
        stage(f"hash {source}", int(files[source]["rows"]),
              [*matchkit(), "hash", source, str(raw), "-o", out, "--rejects", str(run / f"{source}.rejects.csv"),
               *shlex.split(args.hash_args)], env)
    done = rows[first:]
    total_seconds = sum(r.seconds or 0.0 for r in done)
    rows.append(Row(n, "hash, all sources", sum(r.rows for r in done), total_seconds,
                    max(r.peak_mb or 0.0 for r in done), done[0].load_before, done[-1].load_after,
                    "sum of the six commands; peak = the largest"))
    flush()

    flags = run / "flags.csv"
    flags.unlink(missing_ok=True)
    extract_rows = sum(int(files[s]["rows"]) for s in EXTRACTS)
    stage("verify", int(files["claims"]["rows"]) + extract_rows,
          [*matchkit(), "verify", "--claims", hashed["claims"], *(hashed[s] for s in EXTRACTS),
           "-o", str(flags), *shlex.split(args.verify_args)],
          note=f"rows: {int(files['claims']['rows']):,} claim lines + {extract_rows:,} extract rows")
    verify = rows[-1]
    if verify.seconds:
        verify.note += f"; {int(files['claims']['rows']) / verify.seconds:,.0f} claim lines/s"
        flush()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, nargs="+", default=[1_000_000, 10_000_000], metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", required=True, metavar="DIR", help="keeps data sets, hashed files and flags")
    parser.add_argument("--reuse", action="store_true", help="reuse a complete data set already in --work")
    parser.add_argument("--formats", default="csv", help="synth --formats (default csv: the 1M mix at any size)")
    parser.add_argument("--synth-args", default="", help="extra synth arguments, e.g. '--scheduler processes'")
    parser.add_argument("--hash-args", default="", help="extra hash arguments for every source")
    parser.add_argument("--hash-dir", action="store_true", help="hash -o DIR/SOURCE/ (a partitioned dataset)")
    parser.add_argument("--verify-args", default="", help="extra verify arguments, e.g. '--partitions 64'")
    parser.add_argument("--accuracy", action="store_true", help="compare the flags with the truth (memory!)")
    parser.add_argument("--table", metavar="FILE", help="where the table goes too (default WORK/scale-results.md)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table_path = Path(args.table) if args.table else work / "scale-results.md"
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else f"bench_scale.main({argv!r})"
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    heading = (f"\n## bench_scale run {started}\n\n{format_machine(machine_info())}; load average at start "
               f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}\n\ncommand: `{command}`\n\n")
    previous = table_path.read_text(encoding="utf-8") if table_path.exists() else ""
    rows: list[Row] = []
    notes: list[str] = []

    def flush() -> None:
        text = heading + table(rows) + "\n" + "".join(f"\n{note}\n" for note in notes)
        table_path.write_text(previous + text, encoding="utf-8")

    print(heading.strip(), flush=True)
    status = 0
    for n in args.claims:
        try:
            data = run_size(n, args, rows, flush)
        except Failed as exc:
            notes.append(f"{n:,} claim lines: FAILED {exc}")
            flush()
            print(f"[{n:,}] failed: {exc}", file=sys.stderr, flush=True)
            status = 1
            continue
        if args.accuracy:
            flags = Path(args.work) / f"run-{n}-s{args.seed}" / "flags.csv"
            text = format_accuracy(accuracy(data / "truth.csv", flags))
            notes.append(f"accuracy at {n:,} claim lines (flags against truth.csv):\n\n```\n{text}\n```")
            flush()
    by_size = {row.size: row for row in rows if row.stage == "verify" and row.seconds}
    sizes = sorted(by_size)
    if len(sizes) >= 2:
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        notes.append(f"verify time ratio {sizes[-1]:,} / {sizes[0]:,} lines: "
                     f"{(large.seconds or 0) / (small.seconds or 1):.1f}x for {sizes[-1] / sizes[0]:.0f}x the lines")
    flush()
    print(table(rows))
    for note in notes:
        print(f"\n{note}")
    print(f"\n(table also in {table_path})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
