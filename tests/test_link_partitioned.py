"""`matchkit link --partitions N [--scheduler ...]` (issue 14, SPEC §8): the same files, byte for byte, as one run.

FEBRL-like data (the people of tests/test_link_job.py: the febrl schema, 1-3 typos per duplicate) with enough
records that every blocking pass's pairs fall in many partitions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.link.em import distinct_patterns, exact_float, exact_sum, merge_patterns
from matchkit.security.keys import new_key, write_key
from tests.test_link_job import FEBRL, duplicate, make_people, run_cli, write_csv

PEOPLE = 1600  # left records; the right has half of them (typoed) and as many others


def skewed_people(rng: np.random.Generator, count: int) -> list[dict[str, str]]:
    """People with FEBRL-like skew: names, postcodes and birth dates from small pools, the common ones far more
    often (Zipf-like), so blocks are large, frequent keys occur and term frequencies matter."""
    people = make_people(rng, count)
    pools = {"given_name": [p["given_name"] for p in people[:120]], "surname": [p["surname"] for p in people[:200]],
             "postcode": [str(2000 + 37 * i) for i in range(60)],
             "date_of_birth": [str(np.datetime64("1960-01-01") + int(d)) for d in rng.integers(0, 3650, 400)]}
    for field, pool in pools.items():
        weights = 1.0 / np.arange(1, len(pool) + 1)
        picks = rng.choice(len(pool), count, p=weights / weights.sum())
        for person, pick in zip(people, picks):
            person[field] = pool[pick]
    return people


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("partitioned")
    rng = np.random.default_rng(14)
    people = skewed_people(rng, 2 * PEOPLE)
    left = [{"rec_id": f"rec-{i}-org", **p} for i, p in enumerate(people[:PEOPLE])]
    right = [{"rec_id": f"rec-{i}-dup-0", **duplicate(rng, p)} for i, p in enumerate(people[:PEOPLE // 2])]
    right += [{"rec_id": f"rec-{i}-org", **p} for i, p in enumerate(people[PEOPLE:PEOPLE * 3 // 2], start=PEOPLE)]
    right = [right[i] for i in rng.permutation(len(right))]
    write_csv(folder / "left.csv", left)
    write_csv(folder / "right.csv", right)
    key = write_key(new_key(), folder / "shared.key")
    for side in ("left", "right"):
        code, _, err = run_cli(["hash", FEBRL, folder / f"{side}.csv", "--key", key, "-o", folder / f"{side}.parquet"])
        assert code == 0, err
    return folder


VARIANTS = {
    "tf": [],
    "no-tf, one-to-one, threshold 0.2": ["--no-tf", "--one-to-one", "--threshold", "0.2"],
    "frequent keys skipped": ["--max-block-size", "15"],
    "plain threshold": ["--method", "threshold"],
}


def link(folder: Path, name: str, options: list[str]) -> dict[str, bytes | dict]:
    out = folder / name
    out.mkdir(exist_ok=True)
    code, _, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o", out / "pairs.csv",
                            "--candidates", out / "candidates.csv", "--stats", out / "stats.json", *options])
    assert code == 0, err
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    return {"pairs": (out / "pairs.csv").read_bytes(), "candidates": (out / "candidates.csv").read_bytes(),
            "stats": without_timings(stats)}


def without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k and "per_second" not in k}
    return value


@pytest.fixture(scope="module")
def single(files: Path) -> dict[str, dict]:
    return {variant: link(files, f"single-{index}", options) for index, (variant, options) in enumerate(VARIANTS.items())}


RUNS = [("tf", 1), ("tf", 3), ("tf", 16), ("no-tf, one-to-one, threshold 0.2", 3),
        ("no-tf, one-to-one, threshold 0.2", 16), ("frequent keys skipped", 16), ("plain threshold", 3)]


@pytest.mark.parametrize(("variant", "partitions"), RUNS)
def test_partitioned_run_is_the_single_run_byte_for_byte(files, single, variant, partitions):
    expected = single[variant]
    assert expected["stats"]["candidates"] > 500 * partitions  # pairs in every partition, blocks across them
    got = link(files, f"n{partitions}-{list(VARIANTS).index(variant)}", [*VARIANTS[variant],
                                                                          "--partitions", str(partitions)])
    assert got["pairs"] == expected["pairs"]
    assert got["candidates"] == expected["candidates"]
    assert got["stats"] == expected["stats"]  # counts, model, links per pass: all but the timings


def test_the_frequent_key_variant_skips_keys(single):
    passes = single["frequent keys skipped"]["stats"]["passes"]
    assert sum(p["skipped_keys"] for p in passes.values()) > 0  # the dedupe rule meets frequent keys


@pytest.mark.parametrize(("scheduler", "variant"), [("processes", "tf"), ("local", "no-tf, one-to-one, threshold 0.2")])
def test_schedulers_give_the_single_run(files, single, scheduler, variant):
    pytest.importorskip("distributed" if scheduler == "local" else "dask")
    got = link(files, f"{scheduler}-{list(VARIANTS).index(variant)}",
               [*VARIANTS[variant], "--partitions", "3", "--scheduler", scheduler])
    assert got["pairs"] == single[variant]["pairs"]
    assert got["candidates"] == single[variant]["candidates"]


def test_spill_files_are_removed(files, single):
    link(files, "spill", ["--partitions", "4"])
    assert not list((files / "spill").glob(".matchkit-link-*"))
    assert not list(files.glob(".matchkit-link-*"))


def test_bad_partitions_is_refused(files):
    with pytest.raises(SystemExit) as refused:  # argparse: exit 2 with its usage message
        run_cli(["link", files / "left.parquet", files / "right.parquet", "-o", files / "x.csv", "--partitions", "0"])
    assert refused.value.code == 2


# ---- the exact pieces the partitioned model stands on ----------------------------------------------------------
finite = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=60), st.integers(min_value=0, max_value=60))
def test_exact_sum_is_the_correctly_rounded_sum_of_any_split(values, cut):
    array = np.asarray(values, dtype=np.float64)
    whole = exact_sum(array)
    assert whole == exact_sum(array[:cut]) + exact_sum(array[cut:])
    assert whole == exact_sum(array[::-1])
    assert exact_float(whole) == math.fsum(values)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(-1, 1), st.integers(-1, 4)), min_size=1, max_size=80),
       st.integers(min_value=1, max_value=5))
def test_merged_pattern_counts_are_those_of_all_pairs(rows, parts):
    levels = np.asarray(rows, dtype=np.int8)
    n_levels = [5, 2, 5]
    split = [distinct_patterns(part, n_levels) for part in np.array_split(levels, parts) if len(part)]
    patterns, counts = merge_patterns(split, n_levels)
    expected_patterns, expected_counts = distinct_patterns(levels, n_levels)
    assert np.array_equal(patterns, expected_patterns)
    assert np.array_equal(counts, expected_counts)
