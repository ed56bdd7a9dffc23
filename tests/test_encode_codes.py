"""Columns as codes without pandas (matchkit.encode.codes): ``factorize`` gives what ``pandas.factorize`` gives,
on the Arrow path (all text) and the plain-dict path (anything else); ``factorize_ints`` codes in order of first
appearance; ``combine_codes`` gives equal codes exactly to equal combinations, past 62 bits too."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from matchkit.encode import codes as codes_module
from matchkit.encode.codes import _as_text, combine_codes, factorize, factorize_ints

NAN = float("nan")
PANDAS_MAJOR = int(pd.__version__.split(".")[0])

# Few distinct texts, so values repeat; plus any text at all.
TEXT = st.one_of(st.sampled_from(["", " ", "a", "b", "A", "ab", "张三", "é", "e\u0301", "a\x00b", "nan", "None"]),
                 st.text(max_size=6))
# numpy 'U' arrays: no NUL character (see test_numpy_unicode_array_with_nul_character)
UNICODE_TEXT = st.one_of(st.sampled_from(["", " ", "a", "b", "ab", "张三", "é", "e\u0301", "nan"]),
                         st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6))
MISSING = st.sampled_from([None, NAN])
TEXT_OR_MISSING = st.one_of(TEXT, MISSING)
OTHER = st.one_of(  # cells an XLSX or Parquet reader could hand over, next to text
    st.integers(-3, 3), st.integers(), st.floats(), st.binary(max_size=2),
    st.dates(datetime.date(2000, 1, 1), datetime.date(2000, 1, 3)),
)


def as_objects(values: Sequence[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def same_partition(left: np.ndarray, right: np.ndarray) -> bool:
    """Rows i, j share a code in ``left`` exactly when they share one in ``right``."""
    pairs = set(zip(left.tolist(), right.tolist()))
    return len(left) == len(right) and len(pairs) == len(set(left.tolist())) == len(set(right.tolist()))


def check_like_pandas(values: Sequence[Any] | np.ndarray) -> None:
    """Both modes of :func:`factorize` against ``pandas.factorize`` of the same values."""
    array = values if isinstance(values, np.ndarray) else as_objects(values)
    expected_codes, expected_uniques = pd.factorize(array, use_na_sentinel=True)

    got_codes, got_distinct = factorize(values)
    assert got_codes.dtype == np.int64 and got_distinct.dtype == object
    assert got_codes.tolist() == expected_codes.tolist()
    assert got_distinct.tolist() == expected_uniques.tolist()
    assert [type(v) for v in got_distinct.tolist()] == [type(v) for v in expected_uniques.tolist()]

    codes, distinct = factorize(values, missing_as_value=True)
    assert codes.dtype == np.int64 and distinct.dtype == object
    missing = np.array([is_missing(v) for v in array.tolist()], dtype=bool)
    pandas_codes, _ = pd.factorize(array, use_na_sentinel=False)
    assert same_partition(codes, pandas_codes)
    if missing.any():
        # every missing row: one code, the last one, whose value is None
        assert set(codes[missing].tolist()) == {len(distinct) - 1}
        assert distinct[-1] is None
        present_distinct = distinct[:-1]
    else:
        present_distinct = distinct
    assert present_distinct.tolist() == expected_uniques.tolist()  # first-appearance order
    assert codes[~missing].tolist() == expected_codes[~missing].tolist()
    assert (codes >= 0).all()


# --- factorize: text (the Arrow path) ---------------------------------------------------------------------------
@given(st.lists(TEXT_OR_MISSING, max_size=40))
@example([])
@example([None, NAN, None])
@example(["b", None, "a", NAN, "b", ""])
@example(["nan", NAN, "None", None])
def test_text_like_pandas(values: list[Any]) -> None:
    # pandas 2's object hashtable compares texts as C strings, so "a" and "a\x00b" are one value there (pandas 3
    # keeps them apart, as factorize does); pandas 2 is a supported version (pandas>=2.1; the recordlinkage extra
    # requires it), so under pandas 2 texts with a NUL are checked against a plain dict instead
    if PANDAS_MAJOR < 3 and any(isinstance(v, str) and "\x00" in v for v in values):
        codes, distinct = factorize(values)
        first: dict[str, int] = {}
        expected = [-1 if is_missing(v) else first.setdefault(v, len(first)) for v in values]
        assert codes.tolist() == expected and distinct.tolist() == list(first)
        return
    check_like_pandas(values)  # a plain Python list
    check_like_pandas(as_objects(values))


@given(st.lists(UNICODE_TEXT, max_size=40))
@example([])
def test_numpy_unicode_array_like_pandas(values: list[str]) -> None:
    array = np.array(values, dtype=str) if values else np.array([], dtype="U1")
    assert array.dtype.kind == "U"
    check_like_pandas(array)
    codes, distinct = factorize(array)
    assert codes.tolist() == factorize(as_objects(array.tolist()))[0].tolist()
    assert all(type(v) is str for v in distinct.tolist())
    assert distinct[codes].tolist() == array.tolist()


def test_numpy_unicode_array_with_nul_character() -> None:
    array = np.array(["a", "a\x00b"])
    codes, distinct = factorize(array)
    assert codes.tolist() == [0, 1] and distinct.tolist() == ["a", "a\x00b"]


@pytest.mark.parametrize("unicode_array", [False, True], ids=["objects", "unicode"])
def test_lone_surrogate_like_pandas(unicode_array: bool) -> None:
    values = ["\ud800", "a", "\ud800"]
    codes, distinct = factorize(np.array(values) if unicode_array else values)
    assert codes.tolist() == [0, 1, 0] and distinct.tolist() == ["\ud800", "a"]


def test_text_example() -> None:
    codes, distinct = factorize(["b", None, "a", NAN, "b", ""])
    assert codes.tolist() == [0, -1, 1, -1, 0, 2]
    assert distinct.tolist() == ["b", "a", ""]
    codes, distinct = factorize(["b", None, "a", NAN, "b", ""], missing_as_value=True)
    assert codes.tolist() == [0, 3, 1, 3, 0, 2]
    assert distinct.tolist() == ["b", "a", "", None]
    codes, distinct = factorize(["b", "a", "b"], missing_as_value=True)  # nothing missing: no None added
    assert codes.tolist() == [0, 1, 0] and distinct.tolist() == ["b", "a"]


@pytest.mark.parametrize("empty", [[], np.array([], dtype=object), np.array([], dtype="U1"), np.array([])],
                         ids=["list", "objects", "unicode", "float"])
@pytest.mark.parametrize("missing_as_value", [False, True])
def test_empty_input(empty: Sequence[Any], missing_as_value: bool) -> None:
    codes, distinct = factorize(empty, missing_as_value=missing_as_value)
    assert codes.dtype == np.int64 and codes.shape == (0,)
    assert distinct.dtype == object and distinct.shape == (0,)


@pytest.mark.parametrize("values", [[None], [NAN], [None, NAN, None], as_objects([NAN, NAN])],
                         ids=["none", "nan", "mixed", "array"])
def test_all_missing(values: Sequence[Any]) -> None:
    codes, distinct = factorize(values)
    assert codes.tolist() == [-1] * len(values) and distinct.tolist() == []
    codes, distinct = factorize(values, missing_as_value=True)
    assert codes.tolist() == [0] * len(values) and distinct.tolist() == [None]
    check_like_pandas(values)


# --- factorize: anything else (the dict path) -------------------------------------------------------------------
MIXED = [datetime.date(2024, 1, 2), "x", b"x", 3, None, "x", 3, NAN, b"x", 2.5, datetime.date(2024, 1, 2), "3"]


def test_mixed_objects_take_the_dict_path_and_keep_bytes_apart_from_text() -> None:
    assert _as_text(as_objects(MIXED)) is None  # not all text: the plain-dict path
    codes, distinct = factorize(MIXED)
    assert codes.tolist() == [0, 1, 2, 3, -1, 1, 3, -1, 2, 4, 0, 5]
    assert distinct.tolist() == [datetime.date(2024, 1, 2), "x", b"x", 3, 2.5, "3"]
    assert [type(v) for v in distinct.tolist()] == [datetime.date, str, bytes, int, float, str]
    codes, distinct = factorize(MIXED, missing_as_value=True)
    assert codes.tolist() == [0, 1, 2, 3, 6, 1, 3, 6, 2, 4, 0, 5]
    assert distinct[-1] is None and len(distinct) == 7
    check_like_pandas(MIXED)


@pytest.mark.parametrize("values", [
    [b"x", b"y", None, b"x"],                       # bytes only: an Arrow binary array, not text
    [1, 2, None, 1, NAN],                           # integers
    [1.5, NAN, 1.5, 0.0, -0.0],                     # floats: NaN missing, 0.0 == -0.0
    [datetime.date(2024, 1, 1), None, datetime.date(2024, 1, 1)],
    ["a", 1, "1", 1.0],                             # 1 == 1.0, but not "1"
], ids=["bytes", "ints", "floats", "dates", "text-and-numbers"])
def test_non_text_objects_like_pandas(values: list[Any]) -> None:
    assert _as_text(as_objects(values)) is None
    check_like_pandas(values)


def test_non_object_numpy_array_takes_the_dict_path() -> None:
    values = np.array([3, 1, 3, 2], dtype=np.int64)
    codes, distinct = factorize(values)
    assert codes.tolist() == [0, 1, 0, 2] and distinct.tolist() == [3, 1, 2]
    check_like_pandas(values)


@given(st.lists(st.one_of(TEXT_OR_MISSING, OTHER), max_size=30))
@example(MIXED)
def test_any_objects_like_pandas(values: list[Any]) -> None:
    check_like_pandas(values)


@given(st.lists(TEXT_OR_MISSING, max_size=20), st.lists(OTHER, min_size=1, max_size=5), st.randoms())
def test_text_and_dict_paths_agree(texts: list[Any], others: list[Any], random: Any) -> None:
    """The same text values give the same codes whether or not a non-text value pushes them onto the dict path."""
    mixed = texts + others
    random.shuffle(mixed)
    codes, distinct = factorize(mixed, missing_as_value=True)
    positions = [i for i, v in enumerate(mixed) if is_missing(v) or isinstance(v, str)]
    only_text = [mixed[i] for i in positions]
    text_codes, _ = factorize(only_text, missing_as_value=True)
    assert same_partition(codes[positions], text_codes)
    for value, code in zip(mixed, codes.tolist()):
        if is_missing(value):
            assert distinct[code] is None
        else:
            assert distinct[code] == value


# --- factorize_ints ---------------------------------------------------------------------------------------------
@given(st.lists(st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)), max_size=50))
@example([])
@example([-1, -1, 0, 2**63 - 1, -(2**63), 0])
def test_factorize_ints_in_order_of_first_appearance(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    codes = factorize_ints(array)
    assert codes.dtype == np.int64 and codes.shape == array.shape
    first: dict[int, int] = {}
    expected = [first.setdefault(v, len(first)) for v in values]
    assert codes.tolist() == expected
    assert codes.tolist() == pd.factorize(array)[0].tolist()


def test_factorize_ints_example() -> None:
    assert factorize_ints(np.array([7, -1, 7, 0, -1], dtype=np.int64)).tolist() == [0, 1, 0, 2, 1]
    assert factorize_ints(np.zeros(0, dtype=np.int64)).dtype == np.int64


# --- combine_codes ----------------------------------------------------------------------------------------------
def reference_codes(columns: list[np.ndarray]) -> np.ndarray:
    """Per row, the position of the first row with the same combination."""
    rows = list(zip(*(c.tolist() for c in columns)))
    return np.array([rows.index(r) for r in rows], dtype=np.int64)


@st.composite
def code_columns(draw: st.DrawFn) -> tuple[list[np.ndarray], list[int]]:
    """1-4 code columns over the same rows, sizes up to 2**40 (so products pass 2**62), few distinct codes."""
    sizes = draw(st.lists(st.one_of(st.integers(1, 4), st.sampled_from([2**20, 2**31, 2**40]),
                                    st.integers(1, 2**40)), min_size=1, max_size=4))
    rows = draw(st.integers(0, 30))
    columns = []
    for size in sizes:
        code = st.one_of(st.integers(0, min(size - 1, 2)), st.just(size - 1))
        columns.append(np.array(draw(st.lists(code, min_size=rows, max_size=rows)), dtype=np.int64))
    return columns, sizes


@given(code_columns())
@example(([np.array([0, 2**40 - 1, 0, 2**40 - 1, 0]), np.array([1, 0, 1, 0, 2**40 - 1]),
           np.array([2, 2, 2, 1, 0])], [2**40, 2**40, 3]))
def test_equal_combinations_iff_equal_codes(columns_and_sizes: tuple[list[np.ndarray], list[int]]) -> None:
    columns, sizes = columns_and_sizes
    combined = combine_codes(columns, sizes)
    assert combined.dtype == np.int64 and combined.shape == columns[0].shape
    assert same_partition(combined, reference_codes(columns))


def test_combine_codes_within_62_bits_is_mixed_radix(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(codes_module, "factorize_ints", lambda values: calls.append(1))  # must not be needed
    combined = combine_codes([np.array([0, 1, 2, 1]), np.array([3, 0, 3, 3])], [3, 4])
    assert combined.tolist() == [3, 4, 11, 7]
    assert calls == []


def test_combine_codes_overflow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = codes_module.factorize_ints

    def counting(values: np.ndarray) -> np.ndarray:
        calls.append(len(values))
        return real(values)

    monkeypatch.setattr(codes_module, "factorize_ints", counting)
    big = 2**40
    first = np.array([0, big - 1, 0, big - 1, 5, 0])
    second = np.array([big - 1, 0, big - 1, 0, 5, big - 1])
    third = np.array([0, 0, 2, 1, 1, 0])
    combined = combine_codes([first, second, third], [big, big, 3])
    assert len(calls) == 1  # 2**40 * 2**40 passes 2**62: the partial result was factorised before the second
    assert combined.dtype == np.int64 and (combined >= 0).all()
    # rows 0 and 5 are the same combination; every other row is its own
    assert combined[0] == combined[5] and len(set(combined.tolist())) == 5
    assert same_partition(combined, reference_codes([first, second, third]))
    # three columns of 2**40 each: factorised again before the third
    calls.clear()
    again = combine_codes([first, second, first], [big, big, big])
    assert len(calls) == 2
    assert again[0] == again[2] == again[5] and again[1] == again[3] and len(set(again.tolist())) == 3
    assert same_partition(again, reference_codes([first, second, first]))


def test_combine_codes_with_a_huge_single_size() -> None:
    first = np.arange(9, dtype=np.int64)
    combined = combine_codes([first, np.zeros(9, dtype=np.int64)], [9, 2**61])
    assert len(set(combined.tolist())) == 9  # 8 * 2**61 wraps to 0: rows 0 and 8 get the same code


def test_combine_codes_of_nothing() -> None:
    assert combine_codes([], []).shape == (0,)
    empty = np.zeros(0, dtype=np.int64)
    assert combine_codes([empty, empty], [2**40, 2**40]).shape == (0,)
    with pytest.raises(ValueError):
        combine_codes([np.zeros(2, dtype=np.int64)], [2, 3])  # one size per column
