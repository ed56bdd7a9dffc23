"""Blocking: which (left, right) record pairs are worth comparing at all.

A *pass* names a token column and which of its tokens are keys. Two records become a candidate pair in a pass when
they share a key; the result of several passes is the union of their pairs. Everything is a sort-merge join over
int64 keys in numpy: no per-record Python, and no pandas (``matchkit link`` runs without it).

Frequent keys are skipped. A key held by more than ``max_block_size`` right-hand records would contribute
``left_count x right_count`` pairs while carrying almost no evidence (in Fellegi–Sunter terms its u-probability is
large), and one such key can dominate the whole run. Its pairs are dropped *for that pass only* (another pass may
still pair the same records) and the pass reports how many keys it skipped, so a silent recall loss shows up in the
statistics. Callers that need a frequent key's pairs should add a pass on a more selective key instead of raising
the limit.

Positions, not index labels: candidate pairs are row *positions* (``iloc``) into the two frames, ready for the
vectorised comparators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from matchkit.link.token_columns import ListTokens, ScalarTokens, TokenFrame, mix_keys
from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class BlockingPass:
    """One blocking pass over ``column``.

    ``elements`` selects list positions (``None``: every token of the list, exploded). With ``combine=True`` the
    selected positions form one key (a record needs all of them), e.g. "near tokens 2 *and* 3 equal".
    Scalar columns ignore both.
    """

    name: str
    column: str
    elements: tuple[int, ...] | None = None
    combine: bool = False


@dataclass(frozen=True)
class PassStats:
    candidates: int  # distinct pairs this pass found (before the union)
    skipped_keys: int  # keys held by more than max_block_size right-hand records
    skipped_pairs: int  # pairs those keys would have produced


@dataclass(frozen=True)
class CandidatePairs:
    """The union of candidate pairs, sorted by (left, right), without duplicates."""

    left: np.ndarray  # int64 positions into the left frame
    right: np.ndarray  # int64 positions into the right frame
    passes: dict[str, PassStats]

    @property
    def total(self) -> int:
        return len(self.left)

    def __len__(self) -> int:
        return len(self.left)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an int64 array by sorting (numpy's SIMD sort is far faster than its hash-based unique)."""
    ordered = np.sort(np.asarray(values))
    if len(ordered) < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def pass_keys(frame: TokenFrame, blocking_pass: BlockingPass) -> tuple[np.ndarray, np.ndarray]:
    """``(row_positions, keys)`` one entry per (record, key) of a pass; a record may have several keys."""
    column = frame.column(blocking_pass.column)
    if isinstance(column, ScalarTokens):
        rows = np.flatnonzero(column.valid)
        return rows, column.keys[rows]
    assert isinstance(column, ListTokens)
    if blocking_pass.elements is None:
        rows, _, values = column.flat()
        return rows, values
    if blocking_pass.combine:
        parts = [column.element(position) for position in blocking_pass.elements]
        valid = np.logical_and.reduce([part.valid for part in parts])
        key = parts[0].keys
        for part in parts[1:]:
            key = mix_keys(key, part.keys)
        rows = np.flatnonzero(valid)
        return rows, key[rows]
    row_parts, key_parts = [], []
    for position in blocking_pass.elements:
        part = column.element(position)
        rows = np.flatnonzero(part.valid)
        row_parts.append(rows)
        key_parts.append(part.keys[rows])
    return np.concatenate(row_parts), np.concatenate(key_parts)


def _by_key(rows: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row, key) entries sorted by key, each entry once."""
    if len(rows) < 2 or (rows[1:] > rows[:-1]).all():
        order = np.argsort(keys)  # one key per row (a scalar column): no entry can repeat; SIMD sort, not stable
        return rows[order], keys[order]
    order = np.lexsort((rows, keys))
    rows, keys = rows[order], keys[order]
    if len(keys) > 1:
        first = np.r_[True, (keys[1:] != keys[:-1]) | (rows[1:] != rows[:-1])]
        rows, keys = rows[first], keys[first]
    return rows, keys


def _groups(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys, where each starts, how many entries each has) of a sorted key array."""
    if len(sorted_keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return sorted_keys, empty, empty
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], starts, np.diff(np.r_[starts, len(sorted_keys)])


def _member(values: np.ndarray, distinct_sorted: np.ndarray) -> np.ndarray:
    """Which ``values`` occur in ``distinct_sorted`` (sorted, without repeats)."""
    if len(distinct_sorted) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(distinct_sorted, values), len(distinct_sorted) - 1)
    return distinct_sorted[at] == values


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without a loop."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts), counts)


def block_pass(
    left: TokenFrame,
    right: TokenFrame,
    blocking_pass: BlockingPass,
    *,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray, PassStats]:
    """Candidate pairs of one pass, as (left positions, right positions, stats); may contain duplicates."""
    left_rows, left_keys = pass_keys(left, blocking_pass)
    right_rows, right_keys = pass_keys(right, blocking_pass)
    empty = np.zeros(0, dtype=np.int64)
    if len(left_keys) == 0 or len(right_keys) == 0:
        return empty, empty, PassStats(0, 0, 0)
    left_rows, left_keys = _by_key(left_rows, left_keys)
    left_distinct, left_starts, left_counts = _groups(left_keys)
    # The right side is usually far larger: keep only its keys that occur on the left before counting block sizes
    # and joining (sorted first: a binary search for keys in ascending order is far kinder to the cache).
    right_rows, right_keys = _by_key(right_rows, right_keys)
    wanted = _member(right_keys, left_distinct)
    right_rows, right_keys = right_rows[wanted], right_keys[wanted]
    right_distinct, right_starts, right_counts = _groups(right_keys)
    on_left = np.searchsorted(left_distinct, right_distinct)  # every right key kept is a left key
    frequent = right_counts > max_block_size
    skipped_pairs = int((right_counts[frequent] * left_counts[on_left[frequent]]).sum())
    joined = ~frequent
    on_left, right_starts, right_counts = on_left[joined], right_starts[joined], right_counts[joined]
    left_starts, left_counts = left_starts[on_left], left_counts[on_left]
    # every left entry of a joined key meets every right entry of that key
    left_entries = _ranges(left_starts, left_counts)
    partners = np.repeat(right_counts, left_counts)
    left_pos = np.repeat(left_rows[left_entries], partners)
    right_pos = right_rows[_ranges(np.repeat(right_starts, left_counts), partners)]
    distinct = len(sorted_unique(left_pos * max(len(right), 1) + right_pos))
    return left_pos, right_pos, PassStats(distinct, int(frequent.sum()), skipped_pairs)


class SharedKeys:
    """The keys ``left`` holds in each pass, to pick out the right-hand records :func:`block` could pair at all.

    A right record is *kept* when, in at least one pass, one of its keys is among the left record keys of that pass.
    Restricting the right frame to its kept records (in their order) changes nothing in what :func:`block` and
    everything after it find: every pair shares a key held on the left, and a key's block size (the frequent-key
    rule) only counts right records holding that key, which are all kept. It lets a caller stream a large
    right-hand side in batches and materialise only the records that matter.
    """

    def __init__(self, left: pd.DataFrame | TokenFrame, passes: Sequence[BlockingPass]) -> None:
        left_frame = TokenFrame.of(left)
        self.passes = tuple(passes)
        self._keys = {p.name: sorted_unique(pass_keys(left_frame, p)[1]) for p in self.passes}

    def kept(self, right: pd.DataFrame | TokenFrame) -> np.ndarray:
        """Boolean mask over ``right``: the records sharing a key with some left record in some pass."""
        right_frame = TokenFrame.of(right)
        hit = np.zeros(len(right_frame), dtype=bool)
        for blocking_pass in self.passes:
            keys = self._keys[blocking_pass.name]
            if len(keys) == 0:
                continue
            rows, right_keys = pass_keys(right_frame, blocking_pass)
            hit[rows[_member(right_keys, keys)]] = True
        return hit


def block(
    left: pd.DataFrame | TokenFrame,
    right: pd.DataFrame | TokenFrame,
    passes: Sequence[BlockingPass],
    *,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
) -> CandidatePairs:
    """The deduplicated union of the candidate pairs of every pass, with per-pass statistics."""
    left_frame, right_frame = TokenFrame.of(left), TokenFrame.of(right)
    width = max(len(right_frame), 1)
    codes: list[np.ndarray] = []
    stats: dict[str, PassStats] = {}
    for blocking_pass in passes:
        left_pos, right_pos, pass_stats = block_pass(
            left_frame, right_frame, blocking_pass, max_block_size=max_block_size
        )
        stats[blocking_pass.name] = pass_stats
        codes.append(left_pos * width + right_pos)  # < 2^63 for any realistic sizes (1e6 x 1e9)
    union = sorted_unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    return CandidatePairs(union // width, union % width, stats)
