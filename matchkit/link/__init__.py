"""Generic record linkage over keyed tokens: blocking -> comparison vectors -> scoring -> selection.

Knows nothing of taxes (never imports :mod:`matchkit.verify`); the tax domain builds on it.
"""

from __future__ import annotations

from matchkit.link.blocking import BlockingPass, CandidatePairs, PassStats, SharedKeys, block
from matchkit.link.compare import COMPARATORS, get_comparator
from matchkit.link.fuzzy import PERSON_MODEL, PERSON_PASSES, best_links, person_comparison_vectors
from matchkit.link.scoring import FieldModel, LinkageModel, comparison_levels, match_weights, probability
from matchkit.link.select import best_per_left, one_to_one
from matchkit.link.tokens import TokenFrame, prepare_column

__all__ = [
    "COMPARATORS",
    "PERSON_MODEL",
    "PERSON_PASSES",
    "BlockingPass",
    "CandidatePairs",
    "FieldModel",
    "LinkageModel",
    "PassStats",
    "SharedKeys",
    "TokenFrame",
    "best_links",
    "best_per_left",
    "block",
    "comparison_levels",
    "get_comparator",
    "match_weights",
    "one_to_one",
    "person_comparison_vectors",
    "prepare_column",
    "probability",
]
