"""Columns as codes into their distinct values, without pandas.

The encoders work once per *distinct* value and gather results by code. ``factorize`` gives those codes the way
``pandas.factorize`` does (codes in order of first appearance, ``-1`` for a missing value) but runs on pyarrow's
hash kernel, so the hashing workers and the ``link`` command never import pandas: it costs ~0.18 s per process to
import, a tenth of a 100,000-row hash. Values that are not all text (an XLSX or Parquet cell can hold a number or
a date) take a plain-dict path with the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Factorised = tuple[np.ndarray, np.ndarray]  # (int64 code per value, -1 = missing; object array of distinct values)


def factorize(values: np.ndarray | Sequence[Any], *, missing_as_value: bool = False) -> Factorised:
    """``(codes, distinct values)``: ``distinct[codes[i]] == values[i]``, distinct values in order of first
    appearance. ``None`` and float NaN are missing: code -1, or with ``missing_as_value`` one more distinct value,
    ``None``, placed last, for a caller that must see them (a normaliser turns them into a fault)."""
    array = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    text = _as_text(array)
    if text is None:
        return _factorize_objects(array.tolist(), missing_as_value)
    encoded = pc.dictionary_encode(text)
    codes = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    if missing_as_value and text.null_count:
        codes[codes < 0] = len(distinct)
        distinct = np.append(distinct, np.array([None], dtype=object))
    return codes, distinct


def factorize_ints(values: np.ndarray) -> np.ndarray:
    """Codes (order of first appearance) of an integer array; every value is a value, none is missing."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.dictionary_encode(pa.array(values)).indices.to_numpy().astype(np.int64)


def combine_codes(code_columns: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """One int64 code per row for the combination of several code columns (``codes[j]`` in ``0 .. sizes[j]``):
    equal combinations get equal codes, different ones different codes. Mixed radix while the product of the sizes
    fits in 62 bits; past that, the partial result is factorised first so the radix stays small."""
    combined = np.zeros(len(code_columns[0]) if code_columns else 0, dtype=np.int64)
    span = 1
    for codes, size in zip(code_columns, sizes, strict=True):
        if span * size >= 2**62:
            combined = factorize_ints(combined)
            span = int(combined.max(initial=-1)) + 1
        if span * size >= 2**62:  # a huge radix on its own: its codes present are at most one per row
            codes = factorize_ints(codes)
            size = int(codes.max(initial=-1)) + 1
        combined = combined * size + codes
        span *= size
    return combined


def _as_text(array: np.ndarray) -> pa.Array | None:
    """The values as an Arrow string array (None/NaN as nulls), or None when they are not all text."""
    if array.dtype.kind == "U":
        array = array.astype(object)  # pyarrow would cut a fixed-width numpy string at its first NUL
    if array.dtype != object:
        return None
    try:
        converted = pa.array(array, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeError):  # e.g. a lone surrogate
        return None
    if not isinstance(converted, pa.Array):
        return None  # a chunked result (over 2 GiB of text): the plain path
    if pa.types.is_null(converted.type):
        return converted.cast(pa.string())
    return converted if pa.types.is_string(converted.type) else None


def _factorize_objects(values: list[Any], missing_as_value: bool) -> Factorised:
    index: dict[Any, int] = {}
    codes = np.empty(len(values), dtype=np.int64)
    for position, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            codes[position] = -1
        else:
            codes[position] = index.setdefault(value, len(index))
    distinct = np.empty(len(index), dtype=object)
    distinct[:] = list(index)
    if missing_as_value and (codes < 0).any():
        codes[codes < 0] = len(distinct)
        distinct = np.append(distinct, np.array([None], dtype=object))
    return codes, distinct
