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


def take(series: pd.Series, rows: np.ndarray) -> pd.Series:
    """Rows of a column by position, keeping its storage (an Arrow take for Arrow-backed columns: no Python object
    per cell)."""
    return pd.Series(series.array.take(np.asarray(rows, dtype=np.int64)), copy=False)


def persons_frame(
    sources: dict[str, pd.DataFrame],
    codes: dict[tuple[str, str], np.ndarray],
    universe: tuple[str, ...],
    cache: dict[tuple[str, str], np.ndarray] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Distinct persons (one row per id token: its first row in ``universe`` order) of the extracts in ``universe``
    and their codes. Columns keep the extracts' storage (Arrow-backed stays Arrow-backed)."""
    cache = {} if cache is None else cache
    blocks: list[tuple[str, str, np.ndarray]] = []  # (source, entity, rows: first row of each code in the block)
    for name in universe:
        for entity in ENTITIES[name]:
            if (name, entity) not in cache:
                entity_codes = codes[(name, entity)]
                keep = (entity_codes >= 0) & ~pd.Series(entity_codes).duplicated().to_numpy()
                cache[(name, entity)] = np.flatnonzero(keep)
            blocks.append((name, entity, cache[(name, entity)]))
    if not blocks:
        return pd.DataFrame(columns=list(PERSON_COLUMNS)), np.zeros(0, np.int64)
    all_codes = np.concatenate([codes[(name, entity)][rows] for name, entity, rows in blocks])
    first = ~pd.Series(all_codes).duplicated().to_numpy()
    bounds = np.cumsum([0] + [len(rows) for _, _, rows in blocks])
    columns: dict[str, list[pd.Series]] = {column: [] for column in PERSON_COLUMNS}
    for (name, entity, rows), lo, hi in zip(blocks, bounds[:-1], bounds[1:]):
        chosen = rows[first[lo:hi]]
        table = sources[name]
        for column in PERSON_COLUMNS:
            source_column = f"{entity}_{column}"
            columns[column].append(
                take(table[source_column], chosen)
                if source_column in table.columns
                else pd.Series(np.full(len(chosen), None, dtype=object))
            )
    persons = pd.DataFrame(
        {column: parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
         for column, parts in columns.items()}
    )
    return persons, all_codes[first]


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
    if "person_position" in found.columns:  # the default linker says which row it chose
        where = found["person_position"].to_numpy(dtype=np.int64)
        if ((where < 0) | (where >= len(persons))).any():
            raise InternalError("fuzzy linker returned a person that is not among the candidates")
    else:
        lookup = pd.Index(persons["id_tok"].to_numpy(dtype=object))
        where = lookup.get_indexer(found["person_id_tok"].to_numpy(dtype=object))
        if (where < 0).any():
            raise InternalError("fuzzy linker returned a person that is not among the candidates")
    rows = np.asarray(found.index, dtype=np.int64)
    scores = np.clip(found["score"].to_numpy(dtype=np.float64), 0.0, 1.0)
    ambiguous = found["ambiguous"].fillna(False).to_numpy(dtype=bool)
    return rows, person_codes[where], scores, ambiguous
