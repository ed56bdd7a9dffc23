"""Linking claim subjects to the people in the extracts: exact token first, then the fuzzy linker.

The fuzzy linker compares the unlinked claim subjects with the distinct people of the extracts a deduction may
name its subject in. Their encodings (``E_id_near``, ``E_name_fz``, ``E_dob_tok``) are most of an extract's bytes
and only a handful of people are ever candidates, so they are read through :class:`PersonEncodings`: in batches,
keeping only the people who share a blocking key with some query (:class:`matchkit.link.blocking.SharedKeys`)
when the linker is the default one, whose blocking passes are known. A custom linker gets every person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from matchkit.errors import InternalError
from matchkit.io.hashed.format import DOB_TOKEN, ID_NEAR, ID_TOKEN, NAME_FUZZY
from matchkit.verify.evidence import ENTITIES
from matchkit.verify.interning import intern_words, token_words

Linker = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]
QUERY_COLUMNS = (ID_NEAR, NAME_FUZZY, DOB_TOKEN)
PERSON_COLUMNS = (ID_TOKEN, *QUERY_COLUMNS)
ENCODING_COLUMNS = QUERY_COLUMNS  # a person's encodings besides the id token


def default_linker() -> Linker:
    try:
        from matchkit.link.fuzzy import best_links
    except ImportError as exc:  # pragma: no cover - depends on the installed package state
        raise InternalError("matchkit.link.fuzzy.best_links is not available") from exc
    return best_links


def take(series: pd.Series, rows: np.ndarray) -> pd.Series:
    """Rows of a column by position, keeping its storage (an Arrow take for Arrow-backed columns: no Python object
    per cell)."""
    return pd.Series(series.array.take(np.asarray(rows, dtype=np.int64)), copy=False)


class PersonEncodings(Protocol):
    """Where the person encodings of one extract come from, read in consecutive row batches."""

    def batches(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """DataFrames with exactly ``columns`` (all-null where the extract lacks one), covering every row of the
        extract once, in row order."""
        ...


class FrameEncodings:
    """Encodings held in the extract's own DataFrame (the pandas API): one batch, the columns as they are."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def batches(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        yield pd.DataFrame(
            {
                column: (
                    self.frame[column].reset_index(drop=True)
                    if column in self.frame.columns
                    else pd.Series(np.full(len(self.frame), None, dtype=object))
                )
                for column in columns
            }
        )


@dataclass(frozen=True)
class HashedExtract:
    """An extract whose person encodings are read on demand: ``frame`` holds the rule columns and the id tokens
    (what the rules read), ``encodings`` the rest (what only the fuzzy linker reads, for a few people)."""

    frame: pd.DataFrame
    encodings: PersonEncodings


def split_sources(
    sources: dict[str, pd.DataFrame | HashedExtract],
) -> tuple[dict[str, pd.DataFrame], dict[str, PersonEncodings]]:
    frames, encodings = {}, {}
    for name, source in sources.items():
        if isinstance(source, HashedExtract):
            frames[name], encodings[name] = source.frame, source.encodings
        else:
            frames[name], encodings[name] = source, FrameEncodings(source)
    return frames, encodings


class PersonUniverse:
    """Distinct persons of a set of extracts, one row per id token: its first row in the order of the extracts (and
    of their entities), with its encodings. ``keys``: only persons sharing one of these blocking keys are
    materialised (None: every person)."""

    def __init__(
        self,
        frames: dict[str, pd.DataFrame],
        encodings: dict[str, PersonEncodings],
        codes: dict[tuple[str, str], np.ndarray],
        keys: object | None = None,  # matchkit.link.blocking.SharedKeys
    ) -> None:
        self.frames, self.encodings, self.codes, self.keys = frames, encodings, codes, keys
        self._first_rows: dict[tuple[str, str], np.ndarray] = {}
        self._candidates: dict[tuple[str, str], tuple[np.ndarray, pd.DataFrame]] = {}

    def first_rows(self, name: str, entity: str) -> np.ndarray:
        """Sorted rows of the extract holding each of the entity's id tokens for the first time."""
        if (name, entity) not in self._first_rows:
            entity_codes = self.codes[(name, entity)]
            keep = (entity_codes >= 0) & ~pd.Series(entity_codes).duplicated().to_numpy()
            self._first_rows[(name, entity)] = np.flatnonzero(keep)
        return self._first_rows[(name, entity)]

    def candidates(self, name: str, entity: str) -> tuple[np.ndarray, pd.DataFrame]:
        """(rows, encodings) of the entity's first rows that share a key (all of them without ``keys``)."""
        if (name, entity) in self._candidates:
            return self._candidates[(name, entity)]
        rows = self.first_rows(name, entity)
        columns = [f"{entity}_{c}" for c in ENCODING_COLUMNS]
        kept_rows, parts, start = [], [], 0
        for batch in self.encodings[name].batches(columns):
            count = len(batch)
            lo, hi = np.searchsorted(rows, [start, start + count])
            local = rows[lo:hi] - start
            start += count
            if not len(local):
                continue
            part = pd.DataFrame({c: take(batch[f"{entity}_{c}"], local) for c in ENCODING_COLUMNS})
            if self.keys is not None:
                hit = self.keys.kept(part)  # type: ignore[attr-defined]
                local, part = local[hit], part[hit].reset_index(drop=True)
            kept_rows.append(local + (start - count))
            parts.append(part)
        if start != len(self.frames[name]):
            raise InternalError(f"{name}: the person encodings do not cover the extract's rows")
        if parts:
            found_rows = np.concatenate(kept_rows)
            found = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        else:
            found_rows = np.zeros(0, dtype=np.int64)
            found = pd.DataFrame({c: pd.Series([], dtype=object) for c in ENCODING_COLUMNS})
        self._candidates[(name, entity)] = (found_rows, found)
        return found_rows, found

    def persons(self, universe: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
        """(persons with ``PERSON_COLUMNS``, their codes) of the extracts in ``universe``."""
        blocks = [(name, entity, self.first_rows(name, entity)) for name in universe for entity in ENTITIES[name]]
        if not blocks:
            return pd.DataFrame(columns=list(PERSON_COLUMNS)), np.zeros(0, np.int64)
        all_codes = np.concatenate([self.codes[(name, entity)][rows] for name, entity, rows in blocks])
        first = ~pd.Series(all_codes).duplicated().to_numpy()
        bounds = np.cumsum([0] + [len(rows) for _, _, rows in blocks])
        parts, part_codes = [], []
        for (name, entity, rows), lo, hi in zip(blocks, bounds[:-1], bounds[1:]):
            chosen = rows[first[lo:hi]]  # this universe's first row of each person, ascending
            found_rows, found = self.candidates(name, entity)
            selected = np.isin(found_rows, chosen, assume_unique=True)
            person_rows = found_rows[selected]
            part = found[selected].reset_index(drop=True)
            part.insert(0, "id_tok", take(self.frames[name][f"{entity}_id_tok"], person_rows))
            parts.append(part)
            part_codes.append(self.codes[(name, entity)][person_rows])
        persons = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        return persons[list(PERSON_COLUMNS)], np.concatenate(part_codes)


def fuzzy_links(
    queries: pd.DataFrame, persons: pd.DataFrame, person_codes: np.ndarray, linker: Linker
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the linker; returns (query positions, person codes, scores, ambiguous) for queries with a candidate."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    if queries.empty or persons.empty:
        return empty
    found = linker(queries, persons)
    if found is None or len(found) == 0:
        return empty
    where = _positions(persons["id_tok"], found["person_id_tok"])
    if (where < 0).any():
        raise InternalError("fuzzy linker returned a person that is not among the candidates")
    rows = np.asarray(found.index, dtype=np.int64)
    scores = np.clip(found["score"].to_numpy(dtype=np.float64), 0.0, 1.0)
    ambiguous = found["ambiguous"].fillna(False).to_numpy(dtype=bool)
    return rows, person_codes[where], scores, ambiguous


def _positions(person_tokens: pd.Series, found_tokens: pd.Series) -> np.ndarray:
    """Row position in ``person_tokens`` (unique) of each found token, -1 when absent."""
    if not isinstance(person_tokens.dtype, pd.ArrowDtype):
        return pd.Index(person_tokens.to_numpy(dtype=object)).get_indexer(found_tokens.to_numpy(dtype=object))
    # Arrow-backed: intern the persons' tokens (straight from the buffer) with the few found ones; persons are
    # distinct, so the person at position i gets code i and a found token's code is its position.
    person_words, person_present = token_words(person_tokens, name="persons.id_tok")
    found = pd.Series(found_tokens.to_numpy(dtype=object), dtype=object)
    found_words, found_present = token_words(found, name="person_id_tok")
    present_rows = np.flatnonzero(person_present)
    codes, _ = intern_words(np.concatenate([person_words[present_rows], found_words[found_present]]))
    person_codes, found_codes = codes[: len(present_rows)], codes[len(present_rows) :]
    by_code = np.full(len(codes) + 1, -1, dtype=np.int64)
    by_code[person_codes] = present_rows
    where = np.full(len(found), -1, dtype=np.int64)
    where[found_present] = by_code[found_codes]
    return where
