"""Field comparison of candidate pairs, one record row at a time.

A linkage file's compared columns (exact tokens and Bloom filters) are separate arrays; comparing a pair field by
field reads one cell of each, and at a million records a side each of those reads, on the right-hand side in
random order, is a cache miss: the compare step was bound by memory latency, not by arithmetic. :class:`RecordRows`
puts every compared column of one side into one row of 64-bit words per record (the tokens, the filters, each
filter's set-bit count and a word of validity bits), so a pair costs two row reads. Pairs go through in steps of
:data:`PAIRS_PER_STEP`, small enough that both sides' gathered rows stay in cache while every field is compared,
and the steps run in threads (numpy releases the GIL in its gathers and bit operations).

The agreement levels are those of :func:`agreement_levels`, the same function the column-by-column reference in
``matchkit.link.engine.field_levels`` uses; ``tests/test_link_rows.py`` checks the two paths agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from matchkit.link.compare import set_bits_per_row
from matchkit.link.token_columns import WordPieces

# Dice cut-points of the agreement levels of a Bloom-filter field (levels 0..3), and exact agreement on top.
DICE_CUTS = (0.6, 0.75, 0.9)
PAIRS_PER_STEP = 8192  # rows of ~80 words: both sides' gathered rows (~5 MB each) stay in cache
_ONE = np.uint64(1)


def agreement_levels(exact: np.ndarray | None, similarity: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(level, similarity) of one field from its exact-token agreement (1, 0, NaN: no value) and its Dice
    similarity (NaN: no value); at least one of them is given. Exact agreement is the top level; without an exact
    token, Dice >= 0.999 is; a pair with no comparable value is level -1, similarity NaN."""
    if similarity is None:
        assert exact is not None
        return np.where(np.isnan(exact), -1, exact).astype(np.int64), exact
    level = np.searchsorted(np.asarray(DICE_CUTS), similarity, side="right").astype(np.int64)
    if exact is not None:
        agree = exact == 1
        level[agree] = len(DICE_CUTS) + 1
        similarity = np.where(agree, 1.0, similarity)
    else:
        level[similarity >= 0.999] = len(DICE_CUTS) + 1
    level[np.isnan(similarity)] = -1
    return level, similarity


@dataclass(frozen=True)
class FieldSlots:
    """Where one field sits in a row of :class:`RecordRows`: word columns ``[start, stop)`` of its exact token
    and of its Bloom filter, the column of the filter's set-bit count, and its bits in the validity word."""

    exact: tuple[int, int] | None
    bloom: tuple[int, int] | None
    popcount: int
    exact_bit: int
    bloom_bit: int


@dataclass(frozen=True)
class RecordRows:
    """The compared columns of one side, ``words[record]`` one row of uint64 words (layout in ``slots``, the
    validity bits in column ``validity``)."""

    words: np.ndarray
    slots: tuple[FieldSlots, ...]
    validity: int


def record_rows(fields: Sequence[tuple[str | None, str | None]], left: Mapping[str, WordPieces],
                right: Mapping[str, WordPieces]) -> tuple[RecordRows, RecordRows] | None:
    """Both sides' rows for ``fields`` (``(exact column, Bloom column)`` per field, the columns by name on each
    side), or None when a column differs in width between the sides or the validity bits do not fit one word:
    then the caller compares column by column."""
    slots: list[FieldSlots] = []
    position, bit = 0, 0
    for exact_name, bloom_name in fields:
        spans: list[tuple[int, int] | None] = []
        for name in (exact_name, bloom_name):
            if name is None:
                spans.append(None)
                continue
            width = left[name].width
            if right[name].width != width:
                return None
            spans.append((position, position + width))
            position += width
        popcount = position if bloom_name is not None else -1
        position += bloom_name is not None
        slots.append(FieldSlots(spans[0], spans[1], popcount, bit, bit + 1))
        bit += 2
    if bit > 64:
        return None  # more than 32 fields: one validity word is not enough (the reference path has no limit)
    layout = tuple(slots)
    with ThreadPoolExecutor(max_workers=2) as pool:  # numpy copies release the GIL: both sides at once
        left_rows, right_rows = pool.map(lambda frame: _fill(fields, frame, layout, position), (left, right))
    return left_rows, right_rows


def _fill(fields: Sequence[tuple[str | None, str | None]], columns: Mapping[str, WordPieces],
          slots: tuple[FieldSlots, ...], validity: int) -> RecordRows:
    count = len(next(iter(columns.values()))) if columns else 0
    words = np.empty((count, validity + 1), dtype=np.uint64)
    placed: list[tuple[WordPieces, int, np.ndarray]] = []  # column, first word column, where its pieces start
    valid_bits = np.zeros(count, dtype=np.uint64)
    for (exact_name, bloom_name), slot in zip(fields, slots):
        for name, span, bit in ((exact_name, slot.exact, slot.exact_bit), (bloom_name, slot.bloom, slot.bloom_bit)):
            if name is None or span is None:
                continue
            column = columns[name]
            if len(column) != count:
                raise ValueError(f"column {name!r} has {len(column)} rows, not {count}")
            starts = np.cumsum([0] + [len(piece) for piece in column.pieces])
            placed.append((column, span[0], starts))
            valid_bits |= column.valid.astype(np.uint64) << np.uint64(bit)
    # a block of rows at a time, every column into it while it is in cache (column by column over the whole
    # matrix would stream it from memory once per column)
    for begin in range(0, count, PAIRS_PER_STEP):
        end = min(begin + PAIRS_PER_STEP, count)
        for column, first, starts in placed:
            target = words[:, first : first + column.width]
            _copy_rows(column, starts, begin, end, target)
            null = ~column.valid[begin:end]
            if null.any():  # a null row's words are whatever its file holds: zero, so every null is alike
                target[begin:end][null] = 0
        for slot in slots:
            if slot.bloom is not None:
                words[begin:end, slot.popcount] = set_bits_per_row(words[begin:end, slot.bloom[0] : slot.bloom[1]])
        words[begin:end, validity] = valid_bits[begin:end]
    return RecordRows(words, slots, validity)


def _copy_rows(column: WordPieces, starts: np.ndarray, begin: int, end: int, target: np.ndarray) -> None:
    """``target[begin:end] = rows begin..end of the column``, taken from whichever pieces hold them."""
    piece = int(np.searchsorted(starts, begin, side="right")) - 1
    while begin < end:
        stop = min(end, int(starts[piece + 1]))
        target[begin:stop] = column.pieces[piece][begin - starts[piece] : stop - starts[piece]]
        begin = stop
        piece += 1


def compare_rows(left: RecordRows, right: RecordRows, lpos: np.ndarray, rpos: np.ndarray, *,
                 threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(levels, similarities) of every pair, pairs x fields (int8 and float32), the same values as comparing the
    columns one by one."""
    count = len(lpos)
    levels = np.empty((count, len(left.slots)), dtype=np.int8)
    similarities = np.empty((count, len(left.slots)), dtype=np.float32)

    def step(begin: int) -> None:
        part = slice(begin, min(begin + PAIRS_PER_STEP, count))
        a, b = left.words[lpos[part]], right.words[rpos[part]]
        both_valid = a[:, left.validity] & b[:, right.validity]
        for index, slot in enumerate(left.slots):
            exact = similarity = None
            if slot.exact is not None:
                equal = np.ones(len(a), dtype=bool)
                for column in range(*slot.exact):
                    equal &= a[:, column] == b[:, column]
                present = ((both_valid >> np.uint64(slot.exact_bit)) & _ONE).astype(bool)
                exact = np.where(present, equal.astype(np.float64), np.nan)
            if slot.bloom is not None:
                common = np.zeros(len(a), dtype=np.int64)
                for column in range(*slot.bloom):
                    common += np.bitwise_count(a[:, column] & b[:, column])
                total = (a[:, slot.popcount] + b[:, slot.popcount]).astype(np.int64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    similarity = np.where(total > 0, 2.0 * common / np.maximum(total, 1), 1.0)  # two empty: equal
                present = ((both_valid >> np.uint64(slot.bloom_bit)) & _ONE).astype(bool)
                similarity[~present] = np.nan
            levels[part, index], similarities[part, index] = agreement_levels(exact, similarity)

    starts = range(0, count, PAIRS_PER_STEP)
    if threads > 1 and count > PAIRS_PER_STEP:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(step, starts))
    else:
        for begin in starts:
            step(begin)
    return levels, similarities
