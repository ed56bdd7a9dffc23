"""Fields that repeat other fields (``full_name`` beside first name and surname): found, reported, modelled.

The Fellegi–Sunter model multiplies the fields' evidence as if they were independent. A field *A* that repeats
field *B* breaks that twice:

- **Scoring counts the same agreement twice.** Two records agreeing on the full name agree on the surname as well,
  by construction, matches and non-matches alike; adding both weights double-counts one fact.
- **EM sessions are no longer blind to their blocking field.** A session over the pairs of a pass blocked on the
  surname leaves the surname out (every pair agrees on it), but the full name then agrees far more often than among
  random pairs, in matches and non-matches alike, and EM reads that as matches: the issue-17 run called 97 % of
  one session's pairs matches.

*A repeats B* is measured, not declared: among random pairs where both records hold B, ``P(B agrees | A agrees)
>= IMPLIED`` (0.9), computed exactly from the exact tokens' counts on both sides (``sum_(a,b) p_left(a,b) p_right(a,b) / sum_a p_left(a)
p_right(a)``, over at most :data:`SAMPLE_RECORDS` records a side). Then (:func:`mask_repeated`) B's level is set
to *missing* for every pair where A agrees exactly (B's agreement there is already in A's weight; where A does not
agree, B still counts), and A is left out of every EM session whose pass blocks on B. Both are reported as warnings
in the run's statistics.

Only **name fields** are examined (a full name beside its parts, a "first and surname" column beside both): in
data with many duplicates, agreement on any rare value (a postcode) comes mostly from matches, which agree on
everything, so the same test would call every rare field a repeat of every other one. Between names the test is
structural: a full name is shared by people who share its parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matchkit.link.tf import value_keys
from matchkit.link.token_columns import TokenFrame, mix_keys

IMPLIED = 0.9  # P(B agrees | A agrees) among random pairs from which A is said to repeat B
SAMPLE_RECORDS = 200_000  # records a side the agreement rates are counted on (seeded sample beyond that)
MIN_AGREEING = 1e-9  # A must agree on at least this share of random pairs (else its rate is noise)


def _sample(count: int, seed: int) -> np.ndarray:
    if count <= SAMPLE_RECORDS:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, SAMPLE_RECORDS, replace=False))


def _agreement(left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of random (left, right) pairs agreeing on the value: sum_v c_left(v) c_right(v) / (n_left n_right)."""
    (lk, lv), (rk, rv) = left, right
    a, b = lk[lv], rk[rv]
    if not len(a) or not len(b):
        return 0.0
    left_keys, left_counts = np.unique(a, return_counts=True)
    right_keys, right_counts = np.unique(b, return_counts=True)
    _, i, j = np.intersect1d(left_keys, right_keys, assume_unique=True, return_indices=True)
    shared = float((left_counts[i].astype(np.float64) * right_counts[j]).sum())
    return shared / (float(len(lk)) * float(len(rk)))


def repeated_fields(fields: Sequence[tuple[str, str]], left: TokenFrame, right: TokenFrame, *,
                    seed: int = 0) -> dict[str, list[str]]:
    """``{A: [B, ...]}`` for every field A (``(name, exact token column)`` pairs, the name fields of the files)
    that repeats other fields B."""
    if len(fields) < 2:
        return {}
    left_rows, right_rows = _sample(len(left), seed), _sample(len(right), seed + 1)
    keys = {}
    for name, column in fields:
        lk, lv = value_keys(left, [column])
        rk, rv = (lk, lv) if right is left else value_keys(right, [column])
        keys[name] = ((lk[left_rows], lv[left_rows]), (rk[right_rows], rv[right_rows]))
    alone = {name: _agreement(*keys[name]) for name, _ in fields}
    order = [name for name, _ in fields]
    implied: set[tuple[str, str]] = set()
    for a in order:
        if alone[a] < MIN_AGREEING:
            continue
        (alk, alv), (ark, arv) = keys[a]
        for b in order:
            if b == a:
                continue
            (blk, blv), (brk, brv) = keys[b]
            present = _agreement((alk, alv & blv), (ark, arv & brv))  # A agrees and B has values on both sides
            if present < MIN_AGREEING:
                continue
            both = _agreement((mix_keys(alk, blk), alv & blv), (mix_keys(ark, brk), arv & brv))
            if both / present >= IMPLIED:
                implied.add((a, b))
    distinct = {name: len(np.unique(np.concatenate([k[0][0][k[0][1]], k[1][0][k[1][1]]]))) for name, k in keys.items()}
    found: dict[str, list[str]] = {}
    for a, b in sorted(implied, key=lambda pair: (order.index(pair[0]), order.index(pair[1]))):
        if (b, a) in implied and (distinct[b], -order.index(b)) > (distinct[a], -order.index(a)):
            continue  # two fields that repeat each other: counted once, in the one with more values (or the first)
        found.setdefault(a, []).append(b)
    return found


def mask_repeated(levels: np.ndarray, columns: dict[str, int], top_levels: Sequence[int],
                  repeats: dict[str, list[str]]) -> int:
    """Set B's level to -1 (missing) in place wherever a field A that repeats B agrees exactly; the number of
    levels masked."""
    masked = 0
    for a, repeated in repeats.items():
        agree = levels[:, columns[a]] == top_levels[columns[a]]
        for b in repeated:
            column = columns[b]
            hit = agree & (levels[:, column] >= 0)
            masked += int(hit.sum())
            levels[hit, column] = -1
    return masked


def describe(repeats: dict[str, list[str]]) -> list[str]:
    return [f"field {a!r} repeats {', '.join(repr(b) for b in bs)} (when it agrees exactly they agree too, for "
            f"{IMPLIED:.0%} or more of random pairs): their agreement is counted once, in {a!r}, and {a!r} is left "
            "out of EM sessions blocked on them" for a, bs in repeats.items()]
