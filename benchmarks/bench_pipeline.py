"""The whole job at scale (issue 4): synthetic data -> `matchkit key new` -> `matchkit hash` every source ->
`matchkit verify`, each stage a subprocess through the real CLI, then accuracy against the synthetic truth.

For each size: generate with `python -m matchkit synth --claims N --seed S --out DIR --formats csv` (reused when the
folder already holds a complete data set), run every stage measured (wall seconds, records/s, peak RSS of the
process tree, workers included), then compare the flags with `truth.csv` — which matchkit itself never reads; only
this harness does.

Usage: python benchmarks/bench_pipeline.py --claims 10000 100000 1000000 [--seed 1] [--workdir benchmarks/work]
Figures are printed, never asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _measure import Measurement, run_measured

# The order agencies would hash in (claims last is as good as first: they are independent).
SOURCES = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")
EXTRACTS = SOURCES[1:]
REASON_CODES = (
    "INVALID_SUBJECT_ID", "SUBJECT_NOT_FOUND", "FUZZY_MATCH", "NOT_ENROLLED", "STAGE_MISMATCH", "AGE_INELIGIBLE",
    "SHARE_EXCEEDED", "OVER_CAP", "SUBJECT_DECEASED", "NOT_ONLY_CHILD", "SIBLING_CAP_EXCEEDED",
    "RELATION_UNVERIFIED", "EXPENSE_BELOW_THRESHOLD", "AMOUNT_EXCEEDS_EVIDENCE", "DUPLICATE_CLAIM",
    "SOURCE_MISSING", "AMBIGUOUS_MATCH", "NOT_IN_FORCE", "NAME_MISMATCH",
)  # fmt: skip


@dataclass
class Stage:
    name: str  # "key new", "hash claims", ..., "verify"
    records: int  # rows read by the stage (0 for key new)
    seconds: float
    peak_rss_mb: float
    command: list[str]

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.records and self.seconds > 0 else float("nan")


@dataclass
class PipelineRun:
    claims: int
    seed: int
    data_dir: Path
    run_dir: Path
    flags: Path
    synth_seconds: float | None  # None when the data set was reused
    stages: list[Stage] = field(default_factory=list)
    hashed_rows: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> rows_in/hashed/rejected


def matchkit_command() -> list[str]:
    return [sys.executable, "-m", "matchkit"]


def machine_info() -> dict[str, Any]:
    """Cores, memory and Python of this machine (Linux /proc where available)."""
    memory_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _complete(data_dir: Path) -> bool:
    manifest = data_dir / "manifest.json"
    if not manifest.exists() or not (data_dir / "truth.csv").exists():
        return False
    files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    return all(source in files and (data_dir / files[source]["path"]).exists() for source in SOURCES)


def ensure_data(n_claims: int, seed: int, workdir: Path) -> tuple[Path, float | None]:
    """The synthetic data set for (n_claims, seed), generated through the CLI unless already complete."""
    data_dir = workdir / f"synth-{n_claims}-s{seed}"
    if _complete(data_dir):
        return data_dir, None
    started = time.perf_counter()
    subprocess.run(
        [*matchkit_command(), "synth", "--claims", str(n_claims), "--seed", str(seed), "--out", str(data_dir),
         "--formats", "csv"],
        check=True, capture_output=True, text=True,
    )
    return data_dir, time.perf_counter() - started


def raw_files(data_dir: Path) -> dict[str, tuple[Path, int]]:
    """source -> (raw file, data rows) from the generator's manifest."""
    files = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))["files"]
    return {source: (data_dir / files[source]["path"], int(files[source]["rows"])) for source in SOURCES}


def _measured(name: str, command: list[str], records: int, env: dict[str, str] | None = None) -> tuple[Stage,
                                                                                                        Measurement]:
    result = run_measured(command, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {result.returncode}): {shlex.join(command)}\n{result.stderr}")
    return Stage(name, records, result.seconds, result.peak_rss_mb, command), result


def run_pipeline(n_claims: int, seed: int, workdir: str | Path, *, flags_name: str = "flags.csv",
                 say: Any = None) -> PipelineRun:
    """Generate (or reuse) the data set, then key new -> hash every source -> verify, each measured."""
    say = say or (lambda message: None)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"[{n_claims:,} claims] synthetic data ...")
    data_dir, synth_seconds = ensure_data(n_claims, seed, workdir)
    run_dir = workdir / f"run-{n_claims}-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = PipelineRun(n_claims, seed, data_dir, run_dir, run_dir / flags_name, synth_seconds)
    matchkit = matchkit_command()

    key = run_dir / "bench.key"
    key.unlink(missing_ok=True)
    stage, _ = _measured("key new", [*matchkit, "key", "new", "-o", str(key)], 0)
    run.stages.append(stage)
    env = {"MATCHKIT_KEY_FILE": str(key)}

    hashed: dict[str, Path] = {}
    for source, (raw, rows) in raw_files(data_dir).items():
        out = run_dir / f"{source}.parquet"
        say(f"[{n_claims:,} claims] hash {source} ({rows:,} rows) ...")
        stage, _ = _measured(
            f"hash {source}",
            [*matchkit, "hash", source, str(raw), "-o", str(out), "--rejects", str(run_dir / f"{source}.rejects.csv")],
            rows, env,
        )
        hashed[source] = out
        run.hashed_rows[source] = _manifest_counts(out)
        stage.records = run.hashed_rows[source]["rows_in"]
        run.stages.append(stage)

    say(f"[{n_claims:,} claims] verify ...")
    run.flags.unlink(missing_ok=True)
    stage, _ = _measured(
        "verify",
        [*matchkit, "verify", "--claims", str(hashed["claims"]), *(str(hashed[s]) for s in EXTRACTS),
         "-o", str(run.flags)],
        run.hashed_rows["claims"]["rows_hashed"],
    )
    run.stages.append(stage)
    return run


def _manifest_counts(path: Path) -> dict[str, int]:
    from matchkit.io.hashed.reader import open_hashed

    manifest = open_hashed(path, check_digest=False).manifest.to_json()
    return {k: int(manifest[k]) for k in ("rows_in", "rows_hashed", "rows_rejected")}


# ---- accuracy -----------------------------------------------------------------------------------------------
def _codes(cell: str) -> set[str]:
    return {code for code in str(cell).split(";") if code}


def accuracy(truth_path: str | Path, flags_path: str | Path) -> dict[str, Any]:
    """Compare flags with the synthetic truth, line by line (joined on claim_id)."""
    import numpy as np
    import pandas as pd

    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False, encoding="utf-8")
    if str(flags_path).endswith(".parquet"):
        flags = pd.read_parquet(flags_path).astype({"reasons": str, "match": str, "status": str})
        flags["reasons"] = flags["reasons"].replace({"None": "", "nan": ""})
    else:
        flags = pd.read_csv(flags_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    joined = truth.merge(flags, on="claim_id", how="left", suffixes=("", "_flag"), indicator=True)
    has_flag = (joined["_merge"] == "both").to_numpy()
    for column in ("status", "reasons", "match", "allowed_amount"):
        joined[column] = joined[column].fillna("")

    expected = [_codes(c) for c in joined["expected_reasons"]]
    got = [_codes(c) for c in joined["reasons"]]
    status_ok = (joined["status"] == joined["expected_status"]).to_numpy()
    expected_amount = pd.to_numeric(joined["expected_allowed_amount"], errors="coerce").to_numpy(dtype=float)
    got_amount = pd.to_numeric(joined["allowed_amount"], errors="coerce").to_numpy(dtype=float)
    amount_ok = (np.abs(expected_amount - got_amount) < 0.005) | (np.isnan(expected_amount) & np.isnan(got_amount))
    reasons_ok = np.array([e == g for e, g in zip(expected, got)], dtype=bool)

    legit = (joined["defect"] == "none").to_numpy()
    verified = (joined["status"] == "verified").to_numpy()

    per_code: dict[str, dict[str, float]] = {}
    seen = sorted(set().union(*expected, *got) if len(joined) else set(),
                  key=lambda c: (REASON_CODES.index(c) if c in REASON_CODES else len(REASON_CODES), c))
    for code in seen:
        exp = np.array([code in e for e in expected], dtype=bool)
        hit = np.array([code in g for g in got], dtype=bool)
        per_code[code] = {
            "expected": int(exp.sum()),
            "detected": int((exp & hit).sum()),
            "detection_rate": float((exp & hit).sum() / exp.sum()) if exp.any() else float("nan"),
            "false_positives": int((hit & ~exp).sum()),
        }

    # Fuzzy links. A line flagged match=fuzzy without AMBIGUOUS_MATCH is a link the engine made.
    fuzzy_made = (joined["match"] == "fuzzy").to_numpy() & np.array(["AMBIGUOUS_MATCH" not in g for g in got])
    wants_fuzzy = np.array(["FUZZY_MATCH" in e for e in expected], dtype=bool)
    wants_ambiguous = np.array(["AMBIGUOUS_MATCH" in e for e in expected], dtype=bool)
    # Wrong: a link where the truth expects none (the subject is nobody: SUBJECT_NOT_FOUND, or an exact-only line),
    # or a link where one is expected but the outcome disagrees (a different person would change it).
    wrong_unexpected = fuzzy_made & ~wants_fuzzy & ~wants_ambiguous
    wrong_outcome = fuzzy_made & wants_fuzzy & ~(status_ok & amount_ok)
    # Issue 16: a subject ID mistyped into another real person's ID. Linked to the right person = a fuzzy link
    # with the status and amount the truth computes for the person the claim names.
    other_id = (joined["defect"] == "id_of_another_person").to_numpy()
    return {
        "lines": len(joined),
        "lines_without_flag": int((~has_flag).sum()),
        "legitimate": int(legit.sum()),
        "legitimate_verified": int((legit & verified).sum()),
        "legitimate_verified_share": float((legit & verified).sum() / legit.sum()) if legit.any() else float("nan"),
        "status_agree": int(status_ok.sum()),
        "status_agree_share": float(status_ok.mean()) if len(joined) else float("nan"),
        "amount_agree": int(amount_ok.sum()),
        "amount_agree_share": float(amount_ok.mean()) if len(joined) else float("nan"),
        "reasons_agree": int(reasons_ok.sum()),
        "reasons_agree_share": float(reasons_ok.mean()) if len(joined) else float("nan"),
        "reason_codes": per_code,
        "fuzzy_expected": int(wants_fuzzy.sum()),
        "fuzzy_found": int((fuzzy_made & wants_fuzzy).sum()),
        "fuzzy_wrong_unexpected": int(wrong_unexpected.sum()),
        "fuzzy_wrong_outcome": int(wrong_outcome.sum()),
        "fuzzy_wrong": int((wrong_unexpected | wrong_outcome).sum()),
        "other_id_lines": int(other_id.sum()),
        "other_id_linked_right": int((other_id & fuzzy_made & status_ok & amount_ok).sum()),
        "ambiguous_expected": int(wants_ambiguous.sum()),
        "ambiguous_found": int((wants_ambiguous & np.array(["AMBIGUOUS_MATCH" in g for g in got])).sum()),
    }


# ---- printing -----------------------------------------------------------------------------------------------
def format_machine(info: dict[str, Any]) -> str:
    return (f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']:.1f} GB RAM, "
            f"Python {info['python']} ({info['platform']})")


def format_stages(run: PipelineRun) -> str:
    lines = [f"{'stage':<26} {'records':>11} {'seconds':>9} {'records/s':>11} {'peak RSS MB':>12}"]
    for stage in run.stages:
        rate = f"{stage.records_per_second:>11,.0f}" if stage.records else f"{'':>11}"
        lines.append(f"{stage.name:<26} {stage.records:>11,} {stage.seconds:>9.2f} {rate} "
                     f"{stage.peak_rss_mb:>12,.0f}")
    hashing = [s for s in run.stages if s.name.startswith("hash ")]
    total_rows = sum(s.records for s in hashing)
    total_seconds = sum(s.seconds for s in hashing)
    lines.append(f"{'hash, all sources':<26} {total_rows:>11,} {total_seconds:>9.2f} "
                 f"{total_rows / total_seconds:>11,.0f} {max(s.peak_rss_mb for s in hashing):>12,.0f}")
    extract_rows = sum(run.hashed_rows[s]["rows_hashed"] for s in EXTRACTS)
    rejected = {s: c["rows_rejected"] for s, c in run.hashed_rows.items() if c["rows_rejected"]}
    lines.append(f"verify input: {run.hashed_rows['claims']['rows_hashed']:,} claim lines against "
                 f"{extract_rows:,} extract rows; hash rejects: "
                 + (", ".join(f"{s} {n}" for s, n in rejected.items()) or "none"))
    return "\n".join(lines)


def format_accuracy(acc: dict[str, Any]) -> str:
    def pct(x: float) -> str:
        if math.isnan(x):
            return "n/a"
        text = f"{100 * x:.2f}%"
        return f"{100 * x:.4f}%" if text == "100.00%" and x < 1 else text  # never round a miss up to 100%

    lines = [
        f"claim lines: {acc['lines']:,} (without a flag: {acc['lines_without_flag']:,})",
        (f"legitimate lines verified: {acc['legitimate_verified']:,} / {acc['legitimate']:,} "
         f"({pct(acc['legitimate_verified_share'])})"),
        f"status agreement: {acc['status_agree']:,} / {acc['lines']:,} ({pct(acc['status_agree_share'])})",
        (f"allowed_amount exact (±0.005): {acc['amount_agree']:,} / {acc['lines']:,} "
         f"({pct(acc['amount_agree_share'])})"),
        f"reason set exact: {acc['reasons_agree']:,} / {acc['lines']:,} ({pct(acc['reasons_agree_share'])})",
        (f"fuzzy links found: {acc['fuzzy_found']:,} / {acc['fuzzy_expected']:,} expected; wrong links made: "
         f"{acc['fuzzy_wrong']:,} (where none expected: {acc['fuzzy_wrong_unexpected']:,}, expected but outcome "
         f"differs: {acc['fuzzy_wrong_outcome']:,}); ambiguous found: {acc['ambiguous_found']:,} / "
         f"{acc['ambiguous_expected']:,}"),
        (f"subject ID of another real person (issue 16): {acc['other_id_linked_right']:,} / "
         f"{acc['other_id_lines']:,} linked to the right person"),
        f"{'reason code':<26} {'expected':>9} {'detected':>9} {'rate':>8} {'false pos.':>10}",
    ]
    for code, row in acc["reason_codes"].items():
        lines.append(f"{code:<26} {row['expected']:>9,} {row['detected']:>9,} {pct(row['detection_rate']):>8} "
                     f"{row['false_positives']:>10,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=str(HERE / "work"))
    parser.add_argument("--flags", default="flags.csv", help="flags file name (.csv or .parquet; default flags.csv)")
    args = parser.parse_args(argv)
    print(format_machine(machine_info()))
    print(f"command: {shlex.join([sys.executable, *sys.argv])}" if argv is None
          else f"command: bench_pipeline.main({argv!r})", flush=True)
    for n_claims in args.claims:
        run = run_pipeline(n_claims, args.seed, args.workdir, flags_name=args.flags,
                           say=lambda message: print(message, file=sys.stderr, flush=True))
        synth = ("reused" if run.synth_seconds is None else f"generated in {run.synth_seconds:.1f} s")
        print(f"\n== {n_claims:,} claims, seed {args.seed} (data: {run.data_dir}, {synth}) ==")
        print(format_stages(run))
        print(format_accuracy(accuracy(run.data_dir / "truth.csv", run.flags)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
