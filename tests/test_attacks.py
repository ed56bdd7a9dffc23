"""The name-encoding attacks (benchmarks/attacks.py, issue 6) at a small size: they must keep breaking what is
weak and keep failing on what is shipped, so the benchmark's figures cannot silently turn into a broken attack.

20,000 people, a fixed key (so the test is deterministic; the benchmark uses a random one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from matchkit.security.keys import SharedKey

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import attacks
import bench_attack

PEOPLE = 20_000
KEY = SharedKey(key_id="mk-attacktest", secret=bytes(range(32)))


@pytest.fixture(scope="module")
def people() -> bench_attack.People:
    return bench_attack.make_people(PEOPLE, 7)


@pytest.fixture(scope="module")
def encoded(people: bench_attack.People) -> dict[str, bench_attack.Encoded]:
    return bench_attack.encode_all(people, KEY, bench_attack.CONFIGS, log=lambda message: None)


@pytest.fixture(scope="module")
def features(people: bench_attack.People) -> attacks.FeatureTable:
    return attacks.FeatureTable.build(people.table.names.tolist())


def _pattern_attack(people: bench_attack.People, encoded: bench_attack.Encoded, features: attacks.FeatureTable,
                    level: str, rows: np.ndarray | None = None) -> tuple[attacks.Outcome, dict[str, float]]:
    """Frequency anchors, then pattern mining, on all records or on ``rows`` only."""
    model = bench_attack.knowledge_model(people, level, encoded.group_kind)
    assert encoded.packed is not None
    chosen = np.arange(len(people)) if rows is None else rows
    packed, groups = encoded.packed[chosen], encoded.groups[chosen]
    frequency, anchored = attacks.frequency_attack(attacks.row_codes(packed), groups, model,
                                                   classes=features.encoding_classes())
    anchors = np.where(anchored, frequency, attacks.NO_GUESS)
    guesses, summary = attacks.bloom_pattern_attack(packed, groups, features, model, attacks.PatternParams(),
                                                    anchors=anchors)
    return attacks.score(guesses, people.name_ids[chosen]), summary


def test_unsalted_bloom_filters_are_reidentified(people, encoded, features) -> None:
    outcome, _ = _pattern_attack(people, encoded["bloom-plain"], features, "global")
    assert outcome.reidentified > 0.5  # ~95 % at this size: far above published 5-20 %
    assert outcome.precision > 0.9


def _busiest_years(people: bench_attack.People, count: int) -> np.ndarray:
    years, sizes = np.unique(people.year, return_counts=True)
    return np.flatnonzero(np.isin(people.year, years[np.argsort(-sizes)[:count]]))


def test_year_salt_falls_to_per_year_name_tables(people, encoded, features) -> None:
    busiest = _busiest_years(people, 3)  # ~1,200 people
    outcome, _ = _pattern_attack(people, encoded["bloom-salt-year"], features, "year", busiest)
    assert outcome.reidentified > 0.2


def test_date_salt_and_mk1_are_not_reidentified(people, encoded, features) -> None:
    # 20,000 people have under one per birth date: thin the dates to ~40 per date so that groups are attacked
    crowded = bench_attack.with_people_per_date(people, 40, 7)
    dob_file = bench_attack.encode_all(crowded, KEY, ("bloom-salt-dob",), log=lambda message: None)
    rows = _busiest_years(crowded, 8)
    dob, summary = _pattern_attack(crowded, dob_file["bloom-salt-dob"], features, "global", rows)
    assert summary["groups_attacked"] >= 50
    assert dob.reidentified < 0.01
    mk1 = encoded["mk1-name_fz"]
    assert mk1.tokens is not None and mk1.token_counts is not None
    # the overall table: per-year tables of 20,000 people (~200 a year) are nearly the data itself
    model = bench_attack.knowledge_model(people, "global", mk1.group_kind)
    variants = attacks.VariantTable.build(people.table.names.tolist())
    guesses = attacks.mk1_structural_attack(mk1.tokens, mk1.token_counts, mk1.groups, variants, model)
    outcome = attacks.score(guesses, people.name_ids)
    assert outcome.guessed == PEOPLE  # it always guesses ...
    assert outcome.reidentified < 0.01  # ... and is right about as rarely as guessing the commonest name


def test_frequency_anchors_are_certain(people, encoded, features) -> None:
    model = bench_attack.knowledge_model(people, "global", "none")
    packed = encoded["bloom-plain"].packed
    assert packed is not None
    classes = features.encoding_classes()
    guesses, anchored = attacks.frequency_attack(attacks.row_codes(packed), encoded["bloom-plain"].groups, model,
                                                 classes=classes)
    assert anchored.any()
    # certain up to names that encode identically (same q-grams)
    assert (classes[guesses[anchored]] == classes[people.name_ids[anchored]]).all()


def test_balancing_is_undone_by_pairing_complementary_columns(encoded) -> None:
    balanced = encoded["bloom-salt-dob+balanced"].packed
    original = encoded["bloom-salt-dob"].packed
    assert balanced is not None and original is not None
    assert (np.bitwise_count(balanced).sum(axis=1) == bench_attack.BLOOM_BITS).all()  # popcount hides length
    recovered, pairs = attacks.unbalance(balanced)
    assert pairs == bench_attack.BLOOM_BITS
    original_columns = {column.tobytes() for column in attacks.bit_columns(original)}
    assert all(column.tobytes() in original_columns for column in attacks.bit_columns(recovered))
