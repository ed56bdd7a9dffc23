"""Opaque 16-byte tokens -> dense int64 codes, so joins and group-bys run on integers.

Object columns of ``bytes`` hash and compare slowly. Every token column a run needs is read into two 64-bit words:
straight from the Arrow buffer when the column is Arrow-backed (what ``load_hashed_inputs`` gives: no Python object
per cell), else from the joined ``bytes`` (the DataFrame API). The pair is interned into one dense code, exactly:
the first word is factorised, and the codes stand only if every first word comes with a single second word (true
unless two distinct tokens share their first 64 bits); otherwise the pair of word codes is factorised too. No hash
truncation, so no collision risk whatever the token bytes are. ``None`` -> -1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchkit.errors import InputFileError

TOKEN_BYTES = 16
_ZERO = bytes(TOKEN_BYTES)


def arrow_array(column: pd.Series) -> pa.Array | None:
    """The column's Arrow array (chunks combined) when it is Arrow-backed, else None."""
    if not isinstance(column.dtype, pd.ArrowDtype):
        return None
    array = column.array.__arrow_array__()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


def _arrow_words(array: pa.Array, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    count = len(array)
    if pa.types.is_null(array.type):
        return np.zeros((count, 2), dtype=np.int64), np.zeros(count, dtype=bool)
    present = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if not (pa.types.is_fixed_size_binary(array.type) and array.type.byte_width == TOKEN_BYTES):
        if not (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)
                or pa.types.is_fixed_size_binary(array.type)):
            raise InputFileError(f"column {name}: tokens must be {TOKEN_BYTES}-byte binary, not {array.type}")
        wrong = pc.any(pc.not_equal(pc.binary_length(array), TOKEN_BYTES)).as_py()
        if wrong:
            raise InputFileError(
                f"column {name}: tokens must be {TOKEN_BYTES} bytes each (not a matchkit hashed file?)"
            )
        array = pc.fill_null(array, pa.scalar(_ZERO, array.type)).cast(pa.binary(TOKEN_BYTES))
    data = array.buffers()[1]
    if data is None:  # every cell null
        return np.zeros((count, 2), dtype=np.int64), present
    words = np.frombuffer(data, dtype="<i8")[2 * array.offset : 2 * (array.offset + count)].reshape(-1, 2)
    return words, present


def token_words(column: pd.Series, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(words (n, 2) int64, present mask) for a column of 16-byte tokens or None (words of absent cells: any)."""
    array = arrow_array(column)
    if array is not None:
        return _arrow_words(array, name=name)
    values = column.to_numpy(dtype=object, na_value=None)
    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if not present.all():
        values = values.copy()
        values[~present] = _ZERO
    buffer = b"".join(values.tolist())
    if len(buffer) != TOKEN_BYTES * len(values):
        raise InputFileError(
            f"column {name}: tokens must be {TOKEN_BYTES} bytes each (not a matchkit hashed file?)"
        )
    words = np.frombuffer(buffer, dtype="<i8").reshape(-1, 2)
    return words, present


def intern_words(words: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes (0..size-1, in order of first appearance) of the rows of an (n, 2) int64 word matrix."""
    if len(words) == 0:
        return np.zeros(0, dtype=np.int64), 0
    hi_codes, hi_uniques = pd.factorize(words[:, 0])
    # Exact check: every row's second word equals the second word recorded for its first word (any row of it).
    second = np.empty(len(hi_uniques), dtype=np.int64)
    second[hi_codes] = words[:, 1]
    if np.array_equal(second[hi_codes], words[:, 1]):
        return hi_codes.astype(np.int64, copy=False), len(hi_uniques)
    lo_codes, lo_uniques = pd.factorize(words[:, 1])
    pair = hi_codes.astype(np.int64) * np.int64(max(len(lo_uniques), 1)) + lo_codes
    dense, uniques = pd.factorize(pair)
    return dense.astype(np.int64, copy=False), len(uniques)


class TokenInterner:
    """Collects token columns, then assigns every distinct token one dense code shared by all columns."""

    def __init__(self) -> None:
        self._words: list[np.ndarray] = []
        self._present: list[np.ndarray] = []
        self._codes: list[np.ndarray] | None = None
        self.size = 0

    def add(self, column: pd.Series, *, name: str) -> int:
        words, present = token_words(column, name=name)
        self._words.append(words)
        self._present.append(present)
        return len(self._words) - 1

    def build(self) -> None:
        if not self._words:
            self._codes = []
            return
        present = np.concatenate(self._present)
        words = np.concatenate([w[p] for w, p in zip(self._words, self._present)])
        self._words = []  # the word views may hold whole Arrow buffers alive; the codes are all that is needed
        dense, self.size = intern_words(words)
        del words
        codes = np.full(len(present), -1, dtype=np.int64)
        codes[present] = dense
        bounds = np.cumsum([0] + [len(p) for p in self._present])
        self._codes = [codes[bounds[i] : bounds[i + 1]] for i in range(len(self._present))]
        self._present = []

    def codes(self, handle: int) -> np.ndarray:
        assert self._codes is not None, "build() first"
        return self._codes[handle]
