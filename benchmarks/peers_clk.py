"""The peer to beat (issue 5): clkhash + anonlink on two FEBRL-layout CSVs, timed the way `bench_link.py` times
matchkit.

1. Encode both files with clkhash (`generate_clk_from_csv`, `max_workers` processes) using the linkage schema of
   the clkhash FEBRL tutorial (`docs/_static/febrl_schema_v3_final.json` / `docs/tutorial_api.ipynb`: bigrams of
   names and address words, positional unigrams of numbers, 1024-bit CLKs, soc_sec_id ignored). `--with-ssid` adds
   soc_sec_id as a positional-unigram feature of 200 bits (our choice: the tutorial ignores the column).
2. anonlink candidate generation: every left CLK against every right CLK (no blocking) with the Dice coefficient,
   keeping pairs >= threshold (0.80, the tutorial's final threshold). `find_candidate_pairs` itself has no process
   option, so the comparison matrix is cut with `anonlink.concurrency.split_to_chunks` and the chunks go to
   `--workers` forked processes through `anonlink.concurrency.process_chunk` (how anonlink's entity service
   parallelises it), then merged in anonlink's order (similarity descending, then indices).
3. `anonlink.solving.greedy_solve` for a one-to-one mapping, written as CSV `left_id,right_id,score`.

Usage: python benchmarks/peers_clk.py A.csv B.csv -o PAIRS.csv [--threshold 0.8] [--workers 2] [--with-ssid]

Prints seconds per step, comparisons/s and peak RSS, then one line `RESULT {json}` for `bench_link.py`. Needs the
benchmark extra (clkhash, anonlink, bitarray); matchkit never imports this. The CLK secret is random per run: both
files are encoded in this one process, so nothing secret is ever on a command line or on disk.
"""

from __future__ import annotations

import argparse
import array
import csv
import functools
import json
import multiprocessing
import resource
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The clkhash FEBRL tutorial's KDF parameters and features (febrl_schema_v3_final.json).
_KDF = {"type": "HKDF", "hash": "SHA256", "info": "c2NoZW1hX2V4YW1wbGU=",
        "salt": "SCbL2zHNnmsckfzchsNkZY9XoHk96P/G5nUBrM7ybymlEFsMV6PAeDZCNp3rfNUPCtLDMOGQHG4pCQpfhiHCyA==",
        "keySize": 64}  # fmt: skip


def _bigrams(bits: int, *, positional: bool = False, max_length: int | None = None,
             missing: bool = False) -> dict[str, Any]:
    string_format: dict[str, Any] = {"type": "string", "encoding": "utf-8"}
    if max_length:
        string_format["maxLength"] = max_length
    hashing: dict[str, Any] = {"comparison": {"type": "ngram", "n": 2, **({"positional": True} if positional else {})},
                               "strategy": {"bitsPerFeature": bits}}
    if max_length:
        hashing["hash"] = {"type": "doubleHash"}
    if missing:
        hashing["missingValue"] = {"sentinel": ""}
    return {"format": string_format, "hashing": hashing}


def _digits(bits: int, *, minimum: int | None = None, maximum: int | None = None,
            missing: bool = True) -> dict[str, Any]:
    integer_format: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        integer_format.update(minimum=minimum, maximum=maximum)
    hashing: dict[str, Any] = {"comparison": {"type": "ngram", "n": 1, "positional": True},
                               "strategy": {"bitsPerFeature": bits}}
    if missing:
        hashing["missingValue"] = {"sentinel": ""}
    return {"format": integer_format, "hashing": hashing}


def tutorial_schema(*, with_ssid: bool = False) -> dict[str, Any]:
    """The clkhash FEBRL tutorial schema (v3) as a dict; soc_sec_id ignored unless `with_ssid`."""
    features: list[dict[str, Any]] = [
        {"identifier": "rec_id", "ignored": True},
        {"identifier": "given_name", **_bigrams(200, max_length=64)},
        {"identifier": "surname", **_bigrams(200, max_length=64)},
        {"identifier": "street_number", **_digits(100)},
        {"identifier": "address_1", **_bigrams(100)},
        {"identifier": "address_2", **_bigrams(100)},
        {"identifier": "suburb", **_bigrams(100)},
        {"identifier": "postcode", **_digits(100, minimum=50, maximum=9999, missing=False)},
        {"identifier": "state", **_bigrams(100, positional=True, missing=True)},
        {"identifier": "date_of_birth", **_digits(200)},
        ({"identifier": "soc_sec_id", **_digits(200)} if with_ssid else {"identifier": "soc_sec_id", "ignored": True}),
    ]
    return {"version": 3, "clkConfig": {"l": 1024, "kdf": _KDF}, "features": features}


def read_ids(path: Path) -> list[str]:
    """The rec_id column (the first) of a FEBRL-layout CSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [row[0] for row in reader]


def encode(path: Path, schema: Any, secret: str, workers: int) -> list[Any]:
    """CLKs (bitarrays) of every row of a CSV.

    Without clkhash's range validation: one noisy postcode below the tutorial's minimum of 50 (`0836` -> `0036`)
    would stop the whole file. Values are still parsed and formatted per feature (integers as integers).
    """
    from clkhash import clk

    with path.open(encoding="utf-8", newline="") as handle:
        return clk.generate_clk_from_csv(handle, secret, schema, validate=False, header=True, progress_bar=False,
                                         max_workers=workers)


# The CLKs live in module globals before the pool forks, so workers read them copy-on-write instead of unpickling
# 10^5 bitarrays per chunk.
_CLKS: list[list[Any]] = []


def _chunk_candidates(chunk: list[dict[str, Any]], threshold: float) -> tuple[bytes, bytes, bytes]:
    from anonlink.concurrency import process_chunk
    from anonlink.similarities import dice_coefficient

    (a0, a1), (b0, b1) = chunk[0]["range"], chunk[1]["range"]
    sims, _, (rec0, rec1) = process_chunk(chunk, [_CLKS[0][a0:a1], _CLKS[1][b0:b1]], dice_coefficient, threshold)
    return bytes(sims), bytes(rec0), bytes(rec1)


def find_candidates(left: list[Any], right: list[Any], threshold: float, workers: int) -> tuple[Any, ...]:
    """anonlink candidate pairs (sims, (dataset indices), (record indices)) over all left x right pairs."""
    from anonlink.concurrency import split_to_chunks

    _CLKS[:] = [left, right]
    comparisons = len(left) * len(right)
    aim = min(2.5e8, max(1e6, comparisons / (4 * workers)))
    chunks = list(split_to_chunks(aim, dataset_sizes=[len(left), len(right)]))
    work = functools.partial(_chunk_candidates, threshold=threshold)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(work, chunks, chunksize=1)
    else:
        parts = [work(chunk) for chunk in chunks]
    _CLKS.clear()
    return merge_candidates(parts)


def merge_candidates(parts: Sequence[tuple[bytes, bytes, bytes]]) -> tuple[Any, ...]:
    """Concatenate chunk results and sort as anonlink does: similarity descending, then left, then right index."""
    sims = np.concatenate([np.frombuffer(p[0], dtype=np.float64) for p in parts] or [np.empty(0)])
    rec0 = np.concatenate([np.frombuffer(p[1], dtype=np.uint32) for p in parts] or [np.empty(0, np.uint32)])
    rec1 = np.concatenate([np.frombuffer(p[2], dtype=np.uint32) for p in parts] or [np.empty(0, np.uint32)])
    order = np.lexsort((rec1, rec0, -sims))

    def as_array(typecode: str, values: np.ndarray) -> array.array:
        out = array.array(typecode)
        out.frombytes(np.ascontiguousarray(values).tobytes())
        return out

    n = len(order)
    return (as_array("d", sims[order]),
            (as_array("I", np.zeros(n, np.uint32)), as_array("I", np.ones(n, np.uint32))),
            (as_array("I", rec0[order]), as_array("I", rec1[order])))


def solve(candidates: tuple[Any, ...]) -> list[tuple[int, int, float]]:
    """Greedy one-to-one solution as (left index, right index, similarity)."""
    from anonlink.solving import greedy_solve, pairs_from_groups

    sims, _, (rec0, rec1) = candidates
    score = {(int(a), int(b)): float(s) for s, a, b in zip(sims, rec0, rec1)}
    return [(a, b, score[(a, b)]) for a, b in pairs_from_groups(greedy_solve(candidates))]


def write_pairs(path: Path, pairs: list[tuple[int, int, float]], left_ids: list[str], right_ids: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["left_id", "right_id", "score"])
        writer.writerows((left_ids[a], right_ids[b], f"{s:.6f}") for a, b, s in sorted(pairs))


def run(left_path: Path, right_path: Path, out: Path, *, threshold: float = 0.8, workers: int = 2,
        with_ssid: bool = False) -> dict[str, Any]:
    """Encode, find candidates, solve, write; return the figures."""
    from clkhash.schema import from_json_dict

    schema = from_json_dict(tutorial_schema(with_ssid=with_ssid))
    secret = secrets.token_hex(32)
    started = time.perf_counter()
    left, right = encode(left_path, schema, secret, workers), encode(right_path, schema, secret, workers)
    encoded = time.perf_counter()
    candidates = find_candidates(left, right, threshold, workers)
    generated = time.perf_counter()
    pairs = solve(candidates)
    solved = time.perf_counter()
    write_pairs(out, pairs, read_ids(left_path), read_ids(right_path))
    done = time.perf_counter()
    comparisons = len(left) * len(right)
    return {
        "tool": "clkhash+anonlink", "with_ssid": with_ssid, "threshold": threshold, "workers": workers,
        "left_rows": len(left), "right_rows": len(right), "comparisons": comparisons,
        "candidates": len(candidates[0]), "pairs": len(pairs),
        "encode_s": encoded - started, "candidates_s": generated - encoded, "solve_s": solved - generated,
        "write_s": done - solved, "total_s": done - started,
        "comparisons_per_s": comparisons / (generated - encoded),
        "peak_rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_largest_child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("left", type=Path, metavar="A.csv")
    parser.add_argument("right", type=Path, metavar="B.csv")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="PAIRS.csv")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--with-ssid", action="store_true", help="encode soc_sec_id too (the tutorial ignores it)")
    args = parser.parse_args(argv)
    figures = run(args.left, args.right, args.output, threshold=args.threshold, workers=args.workers,
                  with_ssid=args.with_ssid)
    print(f"clkhash encode {figures['left_rows']:,} + {figures['right_rows']:,} rows: {figures['encode_s']:.2f} s; "
          f"anonlink candidates: {figures['candidates_s']:.2f} s ({figures['comparisons']:,} comparisons, "
          f"{figures['comparisons_per_s']:,.0f}/s, {figures['candidates']:,} >= {args.threshold}); "
          f"greedy solve {figures['solve_s']:.2f} s -> {figures['pairs']:,} pairs; total {figures['total_s']:.2f} s; "
          f"peak RSS {figures['peak_rss_self_mb']:,.0f} MB (largest worker "
          f"{figures['peak_rss_largest_child_mb']:,.0f} MB)", file=sys.stderr)
    print("RESULT " + json.dumps(figures))


if __name__ == "__main__":
    main()
