"""Keyless mode (SPEC §7) throughput against the bare group-operation floor, measured in the same run.

1. Floor: the bare ristretto255 operations (rbcl / libsodium) on every worker core — one-way map from 64 uniform
   bytes (HashToGroup's group part), scalar multiplication, scalar inversion — and from them the floor of each stage:
   seal  = Evaluate   (HashToGroup + 1 scalar mult) per distinct OPRF input,
   request = Blind    (HashToGroup + 1 scalar mult + the blind's inversion, kept for Finalize) per element,
   answer = BlindEvaluate (validity check + 1 scalar mult) per element,
   open  = Finalize   (validity check + 1 scalar mult by the stored inverse) per element per agency.
2. The whole flow on a ``matchkit synth`` population (``--claims N``), each stage a real CLI command, timed with
   the peak RSS of its process tree: seal of every extract, request, answer per agency, open, verify.

Usage: python benchmarks/bench_keyless.py [--claims 100000] [--workdir benchmarks/work/keyless] [--workers N]
The machine is shared (2 cores, other jobs running): each stage's floor is measured right before and right after
it (their mean is the stage's "floor/s"), so a stage is compared with the machine as it was during that stage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _measure import run_measured

EXTRACTS = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


def _floor_chunk(args: tuple[str, int]) -> float:
    import rbcl

    kind, count = args
    uniform = [os.urandom(64) for _ in range(count)]
    scalar = rbcl.crypto_core_ristretto255_scalar_random()
    point = rbcl.crypto_core_ristretto255_from_hash(uniform[0])
    started = time.perf_counter()
    if kind == "map":
        for u in uniform:
            rbcl.crypto_core_ristretto255_from_hash(u)
    elif kind == "smul":
        for _ in range(count):
            rbcl.crypto_scalarmult_ristretto255(scalar, point)
    elif kind == "valid":
        for _ in range(count):
            rbcl.crypto_core_ristretto255_is_valid_point(point)
    else:
        for _ in range(count):
            rbcl.crypto_core_ristretto255_scalar_invert(scalar)
    return time.perf_counter() - started


def floor(workers: int, count: int) -> dict[str, float]:
    """Operations per second of each bare operation, all workers busy at once (the same cores the stages use)."""
    from concurrent.futures import ProcessPoolExecutor

    rates = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for kind in ("map", "smul", "valid", "invert"):
            started = time.perf_counter()
            list(pool.map(_floor_chunk, [(kind, count)] * workers))
            rates[kind] = workers * count / (time.perf_counter() - started)
    cost = {k: 1.0 / v for k, v in rates.items()}
    rates["seal_evaluate"] = 1.0 / (cost["map"] + cost["smul"])
    rates["request_blind"] = 1.0 / (cost["map"] + cost["smul"] + cost["invert"])
    rates["answer_blind_evaluate"] = 1.0 / (cost["valid"] + cost["smul"])
    rates["open_finalize"] = 1.0 / (cost["valid"] + cost["smul"])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--workdir", default=str(HERE / "work" / "keyless"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--floor-ops", type=int, default=20_000, help="operations per core for the floor")
    parser.add_argument("--stage-floor-ops", type=int, default=3_000,
                        help="operations per core for the floor measured before and after each stage")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--resume", action="store_true",
                        help="keep the run folder and skip every stage whose output is already there (a long run "
                        "interrupted, or stopped between stages, goes on where it was)")
    parser.add_argument("--data", default=None, help="an existing synth folder (default WORKDIR/synth_N)")
    args = parser.parse_args()
    from matchkit.runtime.workers import default_workers

    workers = args.workers or default_workers()
    work = Path(args.workdir)
    data = Path(args.data) if args.data else work / f"synth_{args.claims}"
    run_dir = work / "run"
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    done_log = run_dir / "stages.jsonl"  # one line per finished stage, written as it finishes
    env = {"MATCHKIT_WORKERS": str(workers)}
    matchkit = [sys.executable, "-m", "matchkit"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared, noisy), Python "
          f"{platform.python_version()}, workers {workers}, load average {os.getloadavg()[0]:.1f}")
    before = floor(workers, args.floor_ops)
    print("floor (ops/s, all workers): " + ", ".join(f"{k} {v:,.0f}" for k, v in before.items()))
    if not (data / "claims.csv").exists():
        subprocess.run([*matchkit, "synth", "--claims", str(args.claims), "--seed", str(args.seed), "--out",
                        str(data), "--formats", "csv"], check=True, capture_output=True)
    results: list[dict] = []

    finished = {}
    if done_log.exists():
        for line in done_log.read_text().splitlines():
            record = json.loads(line)
            finished[record["stage"]] = record

    def stage(name: str, command: list[str], ops: int | None = None, floor_key: str | None = None,
              rows: int | None = None) -> dict:
        if name in finished:
            entry = dict(finished[name])
            results.append(entry)
            return entry
        # the floor right before and right after the stage: on a shared machine only an adjacent floor compares
        floor_before = floor(workers, args.stage_floor_ops)
        load_before = os.getloadavg()[0]
        measured = run_measured([*matchkit, *command], env=env)
        floor_after = floor(workers, args.stage_floor_ops)
        if measured.returncode != 0:
            raise SystemExit(f"{name} failed: {measured.stderr[-2000:]}")
        entry = {"stage": name, "seconds": round(measured.seconds, 2), "peak_rss_mb": round(measured.peak_rss_mb),
                 "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                 "floor": {k: (floor_before[k] + floor_after[k]) / 2 for k in floor_before}}
        if rows is not None:
            entry["rows"] = rows
            entry["rows_per_s"] = round(rows / measured.seconds)
        results.append(entry)
        return entry

    def finish(entry: dict, ops: int, floor_key: str) -> None:
        rate = ops / entry["seconds"]
        adjacent = entry["floor"][floor_key]
        entry.update(oprf_ops=ops, ops_per_s=round(rate), floor_ops_per_s=round(adjacent),
                     of_floor=f"{100 * rate / adjacent:.0f}%")
        if entry["stage"] not in finished:
            finished[entry["stage"]] = entry
            with done_log.open("a") as log:
                log.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)

    tables = {}
    for source in EXTRACTS:
        key = run_dir / f"{source}.oprf"
        if not key.exists():
            subprocess.run([*matchkit, "key", "new-oprf", "-o", str(key)], check=True, capture_output=True)
        table = run_dir / f"{source}.table.parquet"
        entry = stage(f"seal {source}", ["seal", source, str(data / f"{source}.csv"), "--oprf-key", str(key),
                                         "--tax-year", "2024", "-o", str(table)])
        import pyarrow.parquet as pq

        manifest = json.loads(pq.read_metadata(table).metadata[b"matchkit.sealed"])
        entry.update(rows=manifest["rows"], rows_per_s=round(manifest["rows"] / entry["seconds"]),
                     entries=manifest["entries"], mb=round(table.stat().st_size / 1e6, 1))
        finish(entry, manifest["oprf_evaluations"], "seal_evaluate")
        tables[source] = table
    entry = stage("request", ["request", str(data / "claims.csv"), "-o", str(run_dir / "request.parquet"),
                              "--state", str(run_dir / "state")])
    import pyarrow.parquet as pq

    request = json.loads(pq.read_metadata(run_dir / "request.parquet").metadata[b"matchkit.request"])
    claim_lines = pq.read_metadata(run_dir / "request.parquet").num_rows and args.claims
    entry.update(rows=claim_lines, rows_per_s=round(claim_lines / entry["seconds"]))
    finish(entry, request["element_count"], "request_blind")
    elements = request["element_count"]
    for source in EXTRACTS:
        entry = stage(f"answer {source}", ["answer", str(run_dir / "request.parquet"), "--oprf-key",
                                           str(run_dir / f"{source}.oprf"), "-o",
                                           str(run_dir / f"{source}.answer.parquet")])
        finish(entry, elements, "answer_blind_evaluate")
    command = ["open", "--state", str(run_dir / "state"), "-o", str(run_dir / "opened")]
    for source in EXTRACTS:
        command += ["--answer", f"{source}={run_dir / f'{source}.answer.parquet'}",
                    "--table", f"{source}={tables[source]}"]
    entry = stage("open", command)
    finish(entry, elements * len(EXTRACTS), "open_finalize")
    entry = stage("verify", ["verify", "--claims", str(run_dir / "opened" / "claims.parquet"),
                             *[str(run_dir / "opened" / f"{s}.parquet") for s in EXTRACTS], "-o",
                             str(run_dir / "flags.csv")])
    if "verify" not in finished:
        with done_log.open("a") as log:
            log.write(json.dumps(entry) + "\n")
    after = floor(workers, args.floor_ops)
    print(f"elements in the request: {elements:,} for {args.claims:,} claim lines "
          f"({elements / args.claims:.1f} per line)")
    print(f"{'stage':<26} {'seconds':>8} {'rows/s':>9} {'OPRF ops/s':>11} {'floor/s':>9} {'of floor':>8} {'RSS MB':>7}")
    for entry in results:
        print(f"{entry['stage']:<26} {entry['seconds']:>8} {entry.get('rows_per_s', ''):>9} "
              f"{entry.get('ops_per_s', ''):>11} {entry.get('floor_ops_per_s', ''):>9} {entry.get('of_floor', ''):>8} "
              f"{entry['peak_rss_mb']:>7}")
    print("floor after (ops/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in after.items()))
    for entry in results:
        entry["floor"] = {k: round(v) for k, v in entry["floor"].items()}
    print(json.dumps({"claims": args.claims, "workers": workers, "floor_before": before, "floor_after": after,
                      "stages": results}, indent=1))


if __name__ == "__main__":
    main()
