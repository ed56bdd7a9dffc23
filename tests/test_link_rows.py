"""Record-row comparison (matchkit.link.rows) against the column-by-column reference (matchkit.link.engine.field_levels):
the same levels and similarities, bit for bit, for any mix of exact tokens, Bloom filters, nulls and empty filters;
and the layouts it refuses (so the reference path takes over)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.link import rows as rows_module
from matchkit.link.engine import FieldPlan, comparison_rows, comparison_table, field_levels
from matchkit.link.rows import DICE_CUTS, agreement_levels, compare_rows, record_rows
from matchkit.link.token_columns import (
    ListTokens,
    ScalarTokens,
    TokenFrame,
    WordPieces,
    arrow_tokens,
    word_pieces,
)


def pieces_of(frame: TokenFrame, names: list[str]) -> dict[str, WordPieces]:
    columns: dict[str, WordPieces] = {}
    for name in names:
        pieces = word_pieces(frame.column(name))
        assert pieces is not None
        columns[name] = pieces
    return columns


def names_of(plans: list[FieldPlan]) -> list[str]:
    return [name for plan in plans for name in (plan.exact, plan.bloom) if name]


def scalar_column(rng: np.random.Generator, count: int, width: int, pool: int, null_share: float,
                  empty_share: float = 0.0) -> ScalarTokens:
    """``count`` tokens of ``width`` words drawn from ``pool`` distinct ones (so pairs agree often), some null
    (zero words, like a hashed file's null cell) and some present but all-zero (an empty Bloom filter)."""
    distinct = rng.integers(-(2**63), 2**63 - 1, size=(pool, width), dtype=np.int64)
    words = distinct[rng.integers(0, pool, count)]
    valid = rng.random(count) >= null_share
    words[rng.random(count) < empty_share] = 0
    words[~valid] = 0
    return ScalarTokens(words, valid)


@st.composite
def linkage_frames(draw: st.DrawFn) -> tuple[list[FieldPlan], TokenFrame, TokenFrame, np.ndarray, np.ndarray]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    left_count, right_count = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kinds = draw(st.lists(st.sampled_from(["exact", "bloom", "both"]), min_size=1, max_size=6))
    plans: list[FieldPlan] = []
    left_columns: dict[str, ScalarTokens] = {}
    right_columns: dict[str, ScalarTokens] = {}
    for index, kind in enumerate(kinds):
        name = f"f{index}"
        exact = f"{name}_tok" if kind in ("exact", "both") else None
        bloom = f"{name}_bf" if kind in ("bloom", "both") else None
        plans.append(FieldPlan(name, exact, bloom))
        null_share = draw(st.sampled_from([0.0, 0.3, 1.0]))  # 1.0: a column with no value at all on a side
        if exact:
            pool = draw(st.integers(1, 6))
            left_columns[exact] = scalar_column(rng, left_count, 2, pool, null_share)
            right_columns[exact] = scalar_column(rng, right_count, 2, pool, draw(st.sampled_from([0.0, 0.3])))
        if bloom:
            width = draw(st.sampled_from([1, 4, 8]))
            pool = draw(st.integers(1, 6))
            left_columns[bloom] = scalar_column(rng, left_count, width, pool, 0.2, empty_share=0.2)
            right_columns[bloom] = scalar_column(rng, right_count, width, pool, null_share, empty_share=0.2)
    pair_count = draw(st.integers(0, 300))
    lpos = np.sort(rng.integers(0, left_count, pair_count))
    rpos = rng.integers(0, right_count, pair_count)
    return (plans, TokenFrame.from_columns(left_count, left_columns),
            TokenFrame.from_columns(right_count, right_columns), lpos, rpos)


@settings(max_examples=150, deadline=None)
@given(linkage_frames(), st.sampled_from([1, 2]), st.sampled_from([4, 64, 8192]))
def test_record_rows_compare_like_the_columns(case, threads: int, step: int) -> None:
    plans, left, right, lpos, rpos = case
    rows = record_rows([(plan.exact, plan.bloom) for plan in plans], pieces_of(left, names_of(plans)),
                       pieces_of(right, names_of(plans)))
    assert rows is not None
    original = rows_module.PAIRS_PER_STEP
    rows_module.PAIRS_PER_STEP = step  # several steps (and threads) even for a few hundred pairs
    try:
        levels, similarities = compare_rows(rows[0], rows[1], lpos, rpos, threads=threads)
    finally:
        rows_module.PAIRS_PER_STEP = original
    for index, plan in enumerate(plans):
        level, similarity = field_levels(plan, left, right, lpos, rpos)
        assert np.array_equal(levels[:, index], level.astype(np.int8))
        assert np.array_equal(similarities[:, index], similarity.astype(np.float32), equal_nan=True)


def test_levels_by_hand() -> None:
    """Two records each side, one field with a token and a 64-bit filter: exact agreement is the top level,
    Dice bands below it, no value is -1."""
    token = np.array([[1, 2], [3, 4]], dtype=np.int64)
    left = TokenFrame.from_columns(2, {
        "x_tok": ScalarTokens(token, np.array([True, True])),
        "x_bf": ScalarTokens(np.array([[0b1111], [0b1111]], dtype=np.int64), np.array([True, True])),
    })
    right = TokenFrame.from_columns(2, {
        "x_tok": ScalarTokens(np.array([[1, 2], [0, 0]], dtype=np.int64), np.array([True, False])),
        "x_bf": ScalarTokens(np.array([[0b0111], [0b0011]], dtype=np.int64), np.array([True, True])),
    })
    rows = record_rows([("x_tok", "x_bf")], pieces_of(left, ["x_tok", "x_bf"]), pieces_of(right, ["x_tok", "x_bf"]))
    assert rows is not None
    levels, similarities = compare_rows(rows[0], rows[1], np.array([0, 1, 1]), np.array([0, 1, 0]))
    # (0,0): tokens equal -> top level, similarity 1; (1,1): no right token, Dice 2*2/(4+2) = 0.667 -> level 1;
    # (1,0): tokens differ, Dice 2*3/(4+3) = 0.857 -> level 2
    assert levels[:, 0].tolist() == [len(DICE_CUTS) + 1, 1, 2]
    assert similarities[:, 0].tolist() == pytest.approx([1.0, 4 / 6, 6 / 7])


def test_agreement_levels_without_a_filter_or_a_token() -> None:
    level, similarity = agreement_levels(np.array([1.0, 0.0, np.nan]), None)
    assert level.tolist() == [1, 0, -1]
    assert np.array_equal(similarity, [1.0, 0.0, np.nan], equal_nan=True)
    level, similarity = agreement_levels(None, np.array([0.9995, 0.5, np.nan]))
    assert level.tolist() == [len(DICE_CUTS) + 1, 0, -1]
    assert np.array_equal(similarity, [0.9995, 0.5, np.nan], equal_nan=True)


def test_layouts_the_rows_refuse() -> None:
    """A column whose width differs between the sides, more fields than one validity word holds, and columns
    that are not fixed-width words (a list column, a variable-width or odd-width Arrow column) are left to the
    column path."""
    one = word_pieces(ScalarTokens(np.zeros((3, 1), dtype=np.int64), np.ones(3, dtype=bool)))
    two = word_pieces(ScalarTokens(np.zeros((3, 2), dtype=np.int64), np.ones(3, dtype=bool)))
    assert one is not None and two is not None
    assert record_rows([(None, "b")], {"b": one}, {"b": two}) is None
    many = {f"t{i}": one for i in range(33)}
    assert record_rows([(f"t{i}", None) for i in range(33)], many, many) is None  # 66 validity bits
    assert word_pieces(ListTokens(np.array([0, 1, 2, 3]), np.array([5, 6, 7]), np.ones(3, dtype=bool))) is None
    assert word_pieces(pa.array([b"ab", b"c"], type=pa.binary())) is None
    assert word_pieces(pa.array([b"abcdefghi"], type=pa.binary(9))) is None


def test_arrow_chunks_become_pieces_without_a_copy() -> None:
    """A chunked, sliced fixed-size binary column: its chunks are viewed in place; the rows built from the pieces
    hold the same words as from a copied token column, nulls zeroed."""
    values = [bytes(range(i, i + 16)) for i in range(10)]
    chunked = pa.chunked_array([pa.array(values[:4], type=pa.binary(16)),
                                pa.array([None, *values[4:7]], type=pa.binary(16)).slice(1),
                                pa.array(values[7:] + [None], type=pa.binary(16))])
    pieces = word_pieces(chunked)
    assert pieces is not None and pieces.width == 2 and len(pieces.pieces) == 3 and len(pieces) == 11
    assert np.shares_memory(pieces.pieces[0], np.frombuffer(chunked.chunk(0).buffers()[1], dtype=np.uint8))
    copied = word_pieces(arrow_tokens(chunked))
    assert copied is not None
    names = [("t", None)]
    from_pieces = record_rows(names, {"t": pieces}, {"t": pieces})
    from_copy = record_rows(names, {"t": copied}, {"t": copied})
    assert from_pieces is not None and from_copy is not None
    assert np.array_equal(from_pieces[0].words, from_copy[0].words)
    assert pieces.valid.tolist() == [True] * 10 + [False]


def filter_array(column: ScalarTokens) -> pa.Array:
    """A token column as the Arrow fixed-size binary column a hashed file holds (nulls as nulls)."""
    width = column.words.shape[1] * 8
    return pa.array([row.tobytes() if ok else None for row, ok in zip(column.words, column.valid)],
                    type=pa.binary(width))


def test_comparison_table_from_arrow_filters_like_the_columns() -> None:
    rng = np.random.default_rng(7)
    plans = [FieldPlan("a", "a_tok", "a_bf"), FieldPlan("b", None, "b_bf")]

    def side(count: int) -> tuple[TokenFrame, dict[str, pa.ChunkedArray], TokenFrame]:
        columns = {"a_tok": scalar_column(rng, count, 2, 3, 0.1), "a_bf": scalar_column(rng, count, 8, 3, 0.1),
                   "b_bf": scalar_column(rng, count, 4, 3, 0.1)}
        reference = TokenFrame.from_columns(count, dict(columns))
        filters = {name: pa.chunked_array([filter_array(columns[name])]) for name in ("a_bf", "b_bf")}
        return TokenFrame.from_columns(count, {"a_tok": columns["a_tok"]}), filters, reference

    (left, left_filters, left_reference), (right, right_filters, right_reference) = side(50), side(60)
    lpos, rpos = np.repeat(np.arange(50), 60), np.tile(np.arange(60), 50)
    expected = comparison_table(plans, left_reference, right_reference, lpos, rpos)  # column by column
    rows = comparison_rows(plans, left, right, left_filters, right_filters)
    assert rows is not None
    with pytest.raises(KeyError):
        left.column("a_bf")  # the filters went into the rows only
    levels, similarities = comparison_table(plans, left, right, lpos, rpos, rows)
    assert np.array_equal(levels, expected[0])
    assert np.array_equal(similarities, expected[1], equal_nan=True)


def test_filters_that_do_not_fit_the_rows_become_token_columns() -> None:
    """A variable-width filter column cannot be a record row: it is added to the frame, and the column path
    compares it."""
    plans = [FieldPlan("a", None, "a_bf")]
    filters = {"a_bf": pa.chunked_array([pa.array([b"\x0f", b"\x03\x00"], type=pa.binary())])}
    left, right = TokenFrame.from_columns(2, {}), TokenFrame.from_columns(2, {})
    assert comparison_rows(plans, left, right, filters, dict(filters)) is None
    assert isinstance(left.column("a_bf"), ScalarTokens) and isinstance(right.column("a_bf"), ScalarTokens)
    levels, _ = comparison_table(plans, left, right, np.array([0, 1]), np.array([0, 0]))
    assert levels[0, 0] == len(DICE_CUTS) + 1
