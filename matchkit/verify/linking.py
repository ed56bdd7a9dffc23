"""Linking claim subjects to the people in the extracts: exact token first, then the fuzzy linker.

An exact token is trusted only when the claim's subject name, where given, agrees with a name the extracts hold for
that person (:func:`exact_name_disagrees`; SPEC §5): a valid ID mistyped into another real person's ID. Lines whose
names disagree go to the fuzzy linker too, with that person excluded (``exclude`` of :func:`fuzzy_links`).

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
from matchkit.link.blocking import sorted_unique
from matchkit.link.compare import NAME_PHONETIC, as_lists, name_fuzzy
from matchkit.link.token_columns import ListTokens, TokenFrame, mix_keys, prepare_column
from matchkit.verify.evidence import ENTITIES, sorted_in
from matchkit.verify.interning import intern_words, token_words

Linker = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]
QUERY_COLUMNS = (ID_NEAR, NAME_FUZZY, DOB_TOKEN)
PERSON_COLUMNS = (ID_TOKEN, *QUERY_COLUMNS)
ENCODING_COLUMNS = QUERY_COLUMNS  # a person's encodings besides the id token
# Name agreement (docs/RULES.md "Linking the subject"): the ``name_fz`` levels that count as "the same name" when an
# exact ID link is checked, and when another person is looked for. Element 0 is the normalised name, element 1 its
# toneless pinyin (homophones, traditional/simplified variants); both are salted by the birth date, so agreeing
# also means the same birth date. One syllable dropped, added or replaced (the deletion tokens) is a different name.
AGREEING_NAME_ELEMENTS = (0, 1)
AGREEING_NAME_LEVEL = NAME_PHONETIC


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
    queries: pd.DataFrame,
    persons: pd.DataFrame,
    person_codes: np.ndarray,
    linker: Linker,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the linker; returns (query positions, person codes, scores, ambiguous) for queries with a candidate.

    ``exclude``: per query, the code of a person it must not be linked to (-1: none). The default linker never
    pairs them (``best_links(exclude=...)``, so that person cannot be a runner-up either); any other linker's
    result for that person is dropped.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    if queries.empty or persons.empty:
        return empty
    excluded = None
    if exclude is not None and (np.asarray(exclude) >= 0).any():
        excluded = np.asarray(exclude, dtype=np.int64)
    if excluded is not None and _is_default(linker):
        from matchkit.link.fuzzy import best_links

        positions = pd.Index(person_codes).get_indexer(excluded)  # persons are unique by code; -1 when absent
        found = best_links(queries, persons, exclude=np.where(excluded >= 0, positions, -1))
    else:
        found = linker(queries, persons)
    if found is None or len(found) == 0:
        return empty
    where = _positions(persons["id_tok"], found["person_id_tok"])
    if (where < 0).any():
        raise InternalError("fuzzy linker returned a person that is not among the candidates")
    rows = np.asarray(found.index, dtype=np.int64)
    scores = np.clip(found["score"].to_numpy(dtype=np.float64), 0.0, 1.0)
    ambiguous = found["ambiguous"].fillna(False).to_numpy(dtype=bool)
    codes = person_codes[where]
    if excluded is not None:
        keep = codes != excluded[queries.index.get_indexer(rows)]
        rows, codes, scores, ambiguous = rows[keep], codes[keep], scores[keep], ambiguous[keep]
    return rows, codes, scores, ambiguous


def _is_default(linker: Linker) -> bool:
    from matchkit.link.fuzzy import best_links

    return linker is best_links


def name_agrees(
    queries: pd.DataFrame, persons: pd.DataFrame, person_codes: np.ndarray, rows: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Per found link (query label ``rows[i]``, person ``codes[i]``): the names agree at least phonetically (the
    person's name as the linker saw it). No name on either side: False."""
    if not len(rows):
        return np.zeros(0, dtype=bool)
    query_side = TokenFrame(pd.DataFrame({NAME_FUZZY: queries[NAME_FUZZY]}).reset_index(drop=True))
    person_side = TokenFrame(pd.DataFrame({NAME_FUZZY: persons[NAME_FUZZY]}).reset_index(drop=True))
    lpos = queries.index.get_indexer(rows).astype(np.int64)
    rpos = pd.Index(person_codes).get_indexer(codes).astype(np.int64)
    level = name_fuzzy(query_side.column(NAME_FUZZY), person_side.column(NAME_FUZZY), lpos, rpos)
    return np.nan_to_num(level, nan=0.0) >= AGREEING_NAME_LEVEL


def _name_elements(column: pd.Series) -> tuple[np.ndarray, ...]:
    """(valid list, element 0 key, its validity, element 1 key, its validity) of a ``name_fz`` column."""
    lists = as_lists(prepare_column(column.reset_index(drop=True)))
    assert isinstance(lists, ListTokens)
    out: list[np.ndarray] = [lists.valid]
    for position in AGREEING_NAME_ELEMENTS:
        element = lists.element(position)
        out += [element.keys, element.valid]
    return tuple(out)


def exact_name_disagrees(
    claim_names: pd.Series,
    subject_codes: np.ndarray,
    universe: Sequence[str],
    encodings: dict[str, PersonEncodings],
    codes: dict[tuple[str, str], np.ndarray],
    size: int,
) -> np.ndarray:
    """Per claim line (``claim_names`` its ``subject_name_fz``, ``subject_codes`` its exactly linked person): the
    claim names the subject and the extracts of ``universe`` hold a name for that person, but none of those names
    agrees with the claim's (neither the same normalised name nor the same pinyin, under the same birth-date salt).
    ``size``: person codes are below it.

    Vectorised: the extracts' ``*_name_fz`` columns are read in batches, keeping the rows of the wanted people only,
    as (person code, name element) keys; each line is then two sorted look-ups.
    """
    claim_valid, *claim_elements = _name_elements(claim_names)
    wanted = np.zeros(size + 1, dtype=bool)  # by code; code -1 (no token) reads the last cell, always False
    wanted[subject_codes[claim_valid]] = True
    named = np.zeros(size + 1, dtype=bool)
    key_parts: list[list[np.ndarray]] = [[] for _ in AGREEING_NAME_ELEMENTS]
    for name in universe:
        start = 0  # one pass over the extract for all its entities' names
        for batch in encodings[name].batches([f"{entity}_{NAME_FUZZY}" for entity in ENTITIES[name]]):
            count = len(batch)
            for entity in ENTITIES[name]:
                batch_codes = codes[(name, entity)][start : start + count]
                local = np.flatnonzero(wanted[batch_codes])
                if not len(local):
                    continue
                row_codes = batch_codes[local]
                valid, *elements = _name_elements(batch[f"{entity}_{NAME_FUZZY}"])
                named[row_codes[valid[local]]] = True
                for i in range(len(AGREEING_NAME_ELEMENTS)):
                    keys, present = elements[2 * i][local], elements[2 * i + 1][local]
                    key_parts[i].append(sorted_unique(mix_keys(row_codes[present], keys[present])))
            start += count
    agrees = np.zeros(len(subject_codes), dtype=bool)
    for i, parts in enumerate(key_parts):
        known = sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        keys, present = claim_elements[2 * i], claim_elements[2 * i + 1]
        agrees |= present & sorted_in(mix_keys(subject_codes, keys), known)
    return claim_valid & named[subject_codes] & ~agrees


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
