"""Opaque 16-byte tokens -> dense int64 codes, so joins and group-bys run on integers.

Object columns of ``bytes`` hash and compare slowly. Every token column a run needs is read into two 64-bit words
(a zero-copy view of the joined bytes); the pair is interned into one dense code by factorising each word and then
the pair, which is exact (no hash truncation, so no collision risk whatever the token bytes are). ``None`` -> -1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matchkit.errors import InputFileError

TOKEN_BYTES = 16
_ZERO = bytes(TOKEN_BYTES)


def token_words(column: pd.Series, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(words (n, 2) int64, present mask) for a column of 16-byte tokens or None."""
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
        words = np.concatenate(self._words)
        present = np.concatenate(self._present)
        hi_codes = pd.factorize(words[present, 0])[0].astype(np.int64)
        lo_codes, lo_uniques = pd.factorize(words[present, 1])
        pair = hi_codes * np.int64(max(len(lo_uniques), 1)) + lo_codes
        dense, uniques = pd.factorize(pair)
        self.size = len(uniques)
        codes = np.full(len(words), -1, dtype=np.int64)
        codes[present] = dense
        bounds = np.cumsum([0] + [len(w) for w in self._words])
        self._codes = [codes[bounds[i] : bounds[i + 1]] for i in range(len(self._words))]

    def codes(self, handle: int) -> np.ndarray:
        assert self._codes is not None, "build() first"
        return self._codes[handle]
