"""Fellegi–Sunter scoring of a comparison-vector table.

A comparison-vector table has one row per candidate pair and one column of comparator output per compared column
(:mod:`matchkit.link.compare`). A :class:`FieldModel` turns one or more of those columns into an agreement *level*
(0 = least agreement, -1 = nothing to compare) and holds, per level, ``m`` = P(level | same entity) and
``u`` = P(level | different entities). A pair's match weight is ``logit(prior) + sum ln(m/u)`` over the fields with
a level (a missing field adds 0), and its score is ``logistic(weight)``, the posterior match probability under the
usual conditional-independence assumption.

The pieces are separate so expectation–maximisation can replace the fixed priors: :func:`comparison_levels` gives
the integer level table EM iterates over, and :meth:`LinkageModel.with_probabilities` returns a model with new
m/u/prior values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Table = Mapping[str, Any]  # columns by name: a pandas DataFrame, or a dict of numpy arrays (``matchkit link``)
LevelFunction = Callable[[Table], np.ndarray]


@dataclass(frozen=True)
class FieldModel:
    """One field of the model: how to read its level from a comparison-vector table, and its m/u per level."""

    name: str
    levels: tuple[str, ...]  # level labels, index = level number, least agreement first
    m: tuple[float, ...]
    u: tuple[float, ...]
    level_of: LevelFunction

    def __post_init__(self) -> None:
        if not (len(self.levels) == len(self.m) == len(self.u)):
            raise ValueError(f"field {self.name}: levels, m and u differ in length")
        if not all(0 < p <= 1 for p in (*self.m, *self.u)):
            raise ValueError(f"field {self.name}: m and u must be probabilities in (0, 1]")

    @property
    def weights(self) -> np.ndarray:
        """ln(m/u) per level (natural-log Bayes factors)."""
        return np.log(np.asarray(self.m)) - np.log(np.asarray(self.u))


@dataclass(frozen=True)
class LinkageModel:
    fields: tuple[FieldModel, ...]
    prior: float  # P(same entity) for a pair before any comparison

    @property
    def prior_weight(self) -> float:
        return math.log(self.prior) - math.log1p(-self.prior)

    def with_probabilities(
        self, m: Mapping[str, Sequence[float]], u: Mapping[str, Sequence[float]], prior: float | None = None
    ) -> LinkageModel:
        """A copy with new m/u per field name (e.g. from EM); fields not named keep theirs."""
        fields = tuple(
            replace(f, m=tuple(m.get(f.name, f.m)), u=tuple(u.get(f.name, f.u))) for f in self.fields
        )
        return LinkageModel(fields, self.prior if prior is None else prior)


def level_from_thresholds(column: str, thresholds: Sequence[float]) -> LevelFunction:
    """Level = number of ``thresholds`` (ascending) the similarity reaches; NaN -> -1."""
    cuts = np.asarray(thresholds, dtype=np.float64)

    def level_of(vectors: Table) -> np.ndarray:
        similarity = np.asarray(vectors[column], dtype=np.float64)
        levels = np.searchsorted(cuts, similarity, side="right").astype(np.int64)
        levels[np.isnan(similarity)] = -1
        return levels

    return level_of


def comparison_levels(vectors: pd.DataFrame, model: LinkageModel) -> pd.DataFrame:
    """Integer level per field and pair (-1: not comparable)."""
    import pandas as pd  # only verify's DataFrame path comes here; ``matchkit link`` runs without pandas

    return pd.DataFrame({f.name: f.level_of(vectors) for f in model.fields}, index=vectors.index)


def match_weights(levels: Table, model: LinkageModel) -> np.ndarray:
    """logit(prior) + sum over fields of ln(m/u) at each pair's level (0 for a missing field)."""
    count = len(levels[model.fields[0].name]) if model.fields else len(levels)
    total = np.full(count, model.prior_weight, dtype=np.float64)
    for field_model in model.fields:  # one field's levels at a time: tens of millions of pairs at scale
        level = np.asarray(levels[field_model.name])
        weights = np.append(field_model.weights, 0.0)  # index -1 -> the appended 0
        total += weights[np.where(level < 0, len(weights) - 1, level)]
    return total


def probability(weights: np.ndarray) -> np.ndarray:
    """Logistic of the match weight, in [0, 1]."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(weights, dtype=np.float64)))
