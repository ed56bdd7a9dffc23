"""Token columns in the flat numpy form that blocking and comparison work on.

Token columns come from Arrow (a hashed file read by pyarrow, :func:`arrow_tokens`) or from pandas (object columns of
``bytes`` or int64 lists per cell, or ``pd.ArrowDtype`` columns, :func:`prepare_column`). Both go through pyarrow
once and come out as:

- :class:`ScalarTokens`: one token per row, as an ``(n, words)`` int64 matrix (16-byte tokens are two words) plus a
  validity mask. ``keys`` is the first word: a 64-bit view of the first 8 bytes, used as the blocking key (tokens
  are keyed PRF/HMAC output, so 64 bits are as good as uniform; a collision only adds a candidate pair, which the
  comparators, working on the whole token, then reject).
- :class:`ListTokens`: a list of int64 tokens per row, Arrow style: ``offsets`` (n + 1) into ``values``.

:class:`TokenFrame` holds prepared columns, or wraps a DataFrame and prepares each column once, on first use, so
blocking and every comparator share the conversion (it is the only O(rows) Python-object work in the pipeline).
This module never imports pandas itself: ``matchkit link`` runs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: the usual multiplicative hash constant


@dataclass(frozen=True)
class ScalarTokens:
    """One token per row: ``words[i]`` is the whole token, ``valid[i]`` False where the cell is null."""

    words: np.ndarray  # (n, k) int64
    valid: np.ndarray  # (n,) bool

    @property
    def keys(self) -> np.ndarray:
        """64-bit blocking key of each row (the first 8 bytes of the token)."""
        return self.words[:, 0]

    def __len__(self) -> int:
        return len(self.valid)


@dataclass(frozen=True)
class ListTokens:
    """A list of int64 tokens per row. Null and empty cells both have length 0 and ``valid`` False."""

    offsets: np.ndarray  # (n + 1,) int64, positions into ``values``
    values: np.ndarray  # int64
    valid: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def element(self, position: int) -> ScalarTokens:
        """The token at ``position`` of every list (invalid where the list is shorter)."""
        lengths = self.lengths
        valid = lengths > position
        words = np.zeros((len(lengths), 1), dtype=np.int64)
        words[valid, 0] = self.values[self.offsets[:-1][valid] + position]
        return ScalarTokens(words, valid)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row, position_in_list, token)`` for every token of every list."""
        lengths = self.lengths
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        starts = self.offsets[:-1]
        first = int(self.offsets[0]) if len(self.offsets) else 0
        token_index = np.arange(
            first, first + len(rows), dtype=np.int64
        )  # lists are contiguous in ``values``
        positions = token_index - np.repeat(starts, lengths)
        return rows, positions, self.values[token_index]

    def gather(self, rows: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``(len(rows), width)`` tokens from list position ``start`` on, with a validity mask."""
        lengths = np.maximum(self.lengths[rows] - start, 0)
        width = int(lengths.max(initial=0))
        columns = np.arange(width, dtype=np.int64)
        valid = columns[None, :] < lengths[:, None]
        index = self.offsets[:-1][rows][:, None] + start + columns[None, :]
        if len(self.values) == 0:
            return np.zeros(valid.shape, dtype=np.int64), valid
        tokens = self.values[np.minimum(index, len(self.values) - 1)]
        return np.where(valid, tokens, 0), valid


TokenColumn = ScalarTokens | ListTokens


@dataclass(frozen=True)
class WordPieces:
    """A column of fixed-width values as rows of uint64 words, held in consecutive pieces of rows (the chunks of
    an Arrow column, viewed without a copy), with a validity mask over all rows. A null row's words are whatever
    the file holds: whoever compares them masks nulls."""

    pieces: tuple[np.ndarray, ...]  # each (rows, width) uint64
    valid: np.ndarray
    width: int

    def __len__(self) -> int:
        return len(self.valid)


def word_pieces(column: TokenColumn | pa.Array | pa.ChunkedArray) -> WordPieces | None:
    """The column as :class:`WordPieces`: a token column's words as they are, an Arrow fixed-size binary column
    (width a multiple of 8 bytes) chunk by chunk without a copy; None for anything else."""
    if isinstance(column, ScalarTokens):
        return WordPieces((column.words.view(np.uint64),), column.valid, int(column.words.shape[1]))
    if isinstance(column, ListTokens):
        return None
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not pa.types.is_fixed_size_binary(column.type) or column.type.byte_width % 8 or not column.type.byte_width:
        return None
    width = column.type.byte_width // 8
    pieces, valid = [], []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        words = np.frombuffer(chunk.buffers()[1], dtype=np.uint64, count=(chunk.offset + len(chunk)) * width)
        pieces.append(words[chunk.offset * width :].reshape(len(chunk), width))
        valid.append(np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
    if not pieces:
        return WordPieces((np.zeros((0, width), dtype=np.uint64),), np.zeros(0, dtype=bool), width)
    return WordPieces(tuple(pieces), np.concatenate(valid), width)


def mix_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Combine two int64 key arrays into one 64-bit key (a blocking key on the pair; collisions only add pairs)."""
    with np.errstate(over="ignore"):
        mixed = (first.view(np.uint64) * _MIX) ^ (
            second.view(np.uint64) + (first.view(np.uint64) >> np.uint64(29))
        )
    return mixed.view(np.int64)


def _to_arrow(series: pd.Series) -> pa.Array:
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array([None if _is_null(v) else list(v) for v in series], type=pa.list_(pa.int64()))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _binary_words(array: pa.Array) -> ScalarTokens:
    count = len(array)
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_fixed_size_binary(array.type):
        width = array.type.byte_width
        data = np.frombuffer(array.buffers()[1], dtype=np.uint8)[
            array.offset * width : (array.offset + count) * width
        ]
        data = data.reshape(count, width)
    else:
        array = array.cast(pa.large_binary()) if not pa.types.is_large_binary(array.type) else array
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + count + 1]
        lengths = np.diff(offsets)
        width = int(lengths.max(initial=0))
        raw = (
            np.frombuffer(array.buffers()[2], dtype=np.uint8)
            if array.buffers()[2] is not None
            else np.zeros(1, dtype=np.uint8)
        )
        columns = np.arange(width, dtype=np.int64)
        inside = columns[None, :] < lengths[:, None]
        index = np.minimum(offsets[:-1, None] + columns[None, :], max(len(raw) - 1, 0))
        data = np.where(inside, raw[index] if len(raw) else 0, 0).astype(np.uint8)
        if count and lengths[valid].size and (lengths[valid] != width).any():
            # variable-length tokens: the length becomes part of the token so zero padding cannot make two equal
            data = np.concatenate([data, lengths.astype("<u8").view(np.uint8).reshape(count, 8)], axis=1)
    padded_width = max(8, -(-data.shape[1] // 8) * 8)
    if padded_width != data.shape[1]:
        data = np.concatenate([data, np.zeros((count, padded_width - data.shape[1]), dtype=np.uint8)], axis=1)
    words = np.ascontiguousarray(data).view("<i8").reshape(count, padded_width // 8).copy()
    words[~valid] = 0
    return ScalarTokens(words, valid)


def prepare_column(series: pd.Series) -> TokenColumn:
    """Convert one token column (bytes, int64, or list of int64 per cell; nulls allowed) to its flat form."""
    if series.dtype.kind in "iu":
        values = series.to_numpy(dtype=np.int64)
        return ScalarTokens(values.reshape(-1, 1), np.ones(len(values), dtype=bool))
    try:
        return arrow_tokens(_to_arrow(series))
    except TypeError as exc:
        raise TypeError(f"column {series.name!r}: {exc}") from None


def arrow_tokens(array: pa.Array | pa.ChunkedArray) -> TokenColumn:
    """Convert one Arrow token column (binary, int64 or list of int64; nulls allowed) to its flat form."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    kind = array.type
    if pa.types.is_null(kind):
        return ScalarTokens(np.zeros((len(array), 1), dtype=np.int64), np.zeros(len(array), dtype=bool))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        flat = pc.list_flatten(array)
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = flat.cast(pa.int64()).to_numpy(zero_copy_only=False)
        if flat.null_count:
            raise ValueError("token lists must not contain nulls")
        return ListTokens(offsets, np.asarray(values, dtype=np.int64), lengths > 0)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return _binary_words(array)
    if pa.types.is_integer(kind):
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        values = pc.fill_null(array, 0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return ScalarTokens(np.asarray(values, dtype=np.int64).reshape(-1, 1), np.asarray(valid, dtype=bool))
    raise TypeError(f"unsupported token type {kind}")


@dataclass
class TokenFrame:
    """Token columns by name: already prepared, or those of a DataFrame, prepared lazily and cached."""

    frame: pd.DataFrame | None
    _columns: dict[str, TokenColumn] = field(default_factory=dict, repr=False)
    _length: int = 0

    @classmethod
    def from_columns(cls, length: int, columns: dict[str, TokenColumn]) -> TokenFrame:
        """A frame of already prepared token columns (no pandas columns behind them)."""
        return cls(None, dict(columns), length)

    @classmethod
    def of(cls, data: pd.DataFrame | TokenFrame) -> TokenFrame:
        return data if isinstance(data, TokenFrame) else cls(data)

    def __len__(self) -> int:
        return self._length if self.frame is None else len(self.frame)

    def add(self, name: str, column: TokenColumn) -> None:
        """Add (or replace) a prepared column."""
        self._columns[name] = column

    def column(self, name: str) -> TokenColumn:
        prepared = self._columns.get(name)
        if prepared is None:
            if self.frame is None or name not in self.frame.columns:
                raise KeyError(f"missing token column {name!r}")
            prepared = prepare_column(self.frame[name])
            self._columns[name] = prepared
        return prepared
