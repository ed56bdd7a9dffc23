"""Linking claim subjects to the people in the extracts: exact token first, then the fuzzy linker."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from matchkit.errors import InternalError
from matchkit.verify.evidence import ENTITIES

Linker = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]
QUERY_COLUMNS = ("id_near", "name_fz", "dob_tok")
PERSON_COLUMNS = ("id_tok", "id_near", "name_fz", "dob_tok")


def default_linker() -> Linker:
    try:
        from matchkit.link.fuzzy import best_links
    except ImportError as exc:  # pragma: no cover - depends on the installed package state
        raise InternalError("matchkit.link.fuzzy.best_links is not available") from exc
    return best_links


def persons_frame(
    sources: dict[str, pd.DataFrame],
    codes: dict[tuple[str, str], np.ndarray],
    universe: tuple[str, ...],
    cache: dict[tuple[str, str], tuple[pd.DataFrame, np.ndarray]] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Distinct persons (one row per id token) of the extracts in ``universe`` and their codes."""
    cache = {} if cache is None else cache
    frames, frame_codes = [], []
    for name in universe:
        table = sources[name]
        for entity in ENTITIES[name]:
            if (name, entity) not in cache:
                entity_codes = codes[(name, entity)]
                keep = (entity_codes >= 0) & ~pd.Series(entity_codes).duplicated().to_numpy()
                frame = pd.DataFrame(
                    {
                        column: (
                            table[f"{entity}_{column}"].to_numpy(dtype=object)[keep]
                            if f"{entity}_{column}" in table.columns
                            else np.full(int(keep.sum()), None, dtype=object)
                        )
                        for column in PERSON_COLUMNS
                    }
                )
                cache[(name, entity)] = (frame, entity_codes[keep])
            frames.append(cache[(name, entity)][0])
            frame_codes.append(cache[(name, entity)][1])
    if not frames:
        return pd.DataFrame(columns=list(PERSON_COLUMNS)), np.zeros(0, np.int64)
    all_codes = np.concatenate(frame_codes)
    first = ~pd.Series(all_codes).duplicated().to_numpy()
    persons = pd.concat(frames, ignore_index=True)
    return persons[first].reset_index(drop=True), all_codes[first]


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
    lookup = pd.Index(persons["id_tok"].to_numpy(dtype=object))
    where = lookup.get_indexer(found["person_id_tok"].to_numpy(dtype=object))
    if (where < 0).any():
        raise InternalError("fuzzy linker returned a person that is not among the candidates")
    rows = np.asarray(found.index, dtype=np.int64)
    scores = np.clip(found["score"].to_numpy(dtype=np.float64), 0.0, 1.0)
    ambiguous = found["ambiguous"].fillna(False).to_numpy(dtype=bool)
    return rows, person_codes[where], scores, ambiguous
