"""Selection: from scored candidate pairs to links.

- :func:`best_per_left`: each left record's best eligible right record, its runner-up and whether the two are too
  close to choose between (ambiguous).
- :func:`one_to_one`: a greedy one-to-one assignment by score (each record used at most once); its numpy core
  :func:`one_to_one_rows` is what ``matchkit link`` uses, without pandas.
Both are vectorised over pairs; ``one_to_one`` loops over rounds (few), never over pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def best_per_left(left: np.ndarray, right: np.ndarray, weight: np.ndarray, *, margin: float) -> pd.DataFrame:
    """Per distinct ``left``: the best ``right`` by weight (ties broken by the lower right position, so the result
    is deterministic), the runner-up weight, the number of candidates, and ``ambiguous`` when the runner-up's weight
    is within ``margin`` of the best. Indexed by left position."""
    import pandas as pd  # verify's path; ``matchkit link`` runs without pandas

    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    columns = ["right", "weight", "runner_up_weight", "n_candidates", "ambiguous"]
    if len(left) == 0:
        empty = pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(columns, ["int64", "float64", "float64", "int64", "bool"])}
        )
        empty.index = pd.Index([], dtype="int64", name="left")
        return empty
    order = np.lexsort((right, -weight, left))
    left, right, weight = left[order], right[order], weight[order]
    starts = np.flatnonzero(np.r_[True, left[1:] != left[:-1]])
    counts = np.diff(np.r_[starts, len(left)])
    has_second = counts >= 2
    runner_up = np.full(len(starts), -np.inf)
    runner_up[has_second] = weight[starts[has_second] + 1]
    ambiguous = has_second & (weight[starts] - runner_up <= margin)
    return pd.DataFrame(
        {
            "right": right[starts],
            "weight": weight[starts],
            "runner_up_weight": runner_up,
            "n_candidates": counts.astype(np.int64),
            "ambiguous": ambiguous,
        },
        index=pd.Index(left[starts], name="left"),
    )


def one_to_one(
    pairs: pd.DataFrame, *, left: str = "left", right: str = "right", score: str = "score"
) -> pd.DataFrame:
    """Greedy one-to-one assignment: repeatedly keep the highest-scoring pair whose records are both unused.

    Implemented as rounds of *mutual best* pairs (a pair that is the best of its left record and of its right
    record), which gives the same assignment as the sequential greedy under a strict total order on pairs; ties
    are broken by (left, right) so the result is deterministic. Returns the kept rows of ``pairs``.
    """
    chosen = one_to_one_rows(pairs[left].to_numpy(), pairs[right].to_numpy(), pairs[score].to_numpy())
    return pairs.iloc[chosen]


def one_to_one_rows(left: np.ndarray, right: np.ndarray, score: np.ndarray) -> np.ndarray:
    """:func:`one_to_one` on arrays (one entry per pair): the positions of the kept pairs, ascending."""
    left, right = np.asarray(left), np.asarray(right)
    # best first: score descending, then left, then right (a stable sort, so equal pairs keep their order)
    by_rank = np.lexsort((right, left, -np.asarray(score, dtype=np.float64)))
    active = np.ones(len(left), dtype=bool)
    kept: list[np.ndarray] = []
    while active.any():
        ranked = by_rank[active[by_rank]]  # the active pairs, best first
        best_of_left = ranked[np.unique(left[ranked], return_index=True)[1]]  # first = best of its record
        best_of_right = ranked[np.unique(right[ranked], return_index=True)[1]]
        mutual = np.intersect1d(best_of_left, best_of_right)
        kept.append(mutual)
        used_left = np.isin(left, left[mutual])
        used_right = np.isin(right, right[mutual])
        active &= ~(used_left | used_right)
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
