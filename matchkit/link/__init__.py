"""Generic record linkage over keyed tokens: blocking -> comparison vectors -> scoring -> selection.

Knows nothing of taxes (never imports :mod:`matchkit.verify`); the tax domain builds on it. The names below load on
first use, so ``matchkit link``, which needs only the numpy core, never imports the pandas-based helpers that
``verify`` uses (``fuzzy``, ``best_per_left``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matchkit.lazy import lazy_names

if TYPE_CHECKING:
    from matchkit.link.blocking import BlockingPass, CandidatePairs, PassStats, SharedKeys, block
    from matchkit.link.compare import COMPARATORS, get_comparator
    from matchkit.link.fuzzy import PERSON_MODEL, PERSON_PASSES, best_links, person_comparison_vectors
    from matchkit.link.scoring import FieldModel, LinkageModel, comparison_levels, match_weights, probability
    from matchkit.link.select import best_per_left, one_to_one
    from matchkit.link.token_columns import TokenFrame, prepare_column

_MODULE_OF = {
    "BlockingPass": "blocking", "CandidatePairs": "blocking", "PassStats": "blocking", "SharedKeys": "blocking",
    "block": "blocking",
    "COMPARATORS": "compare", "get_comparator": "compare",
    "PERSON_MODEL": "fuzzy", "PERSON_PASSES": "fuzzy", "best_links": "fuzzy", "person_comparison_vectors": "fuzzy",
    "FieldModel": "scoring", "LinkageModel": "scoring", "comparison_levels": "scoring", "match_weights": "scoring",
    "probability": "scoring",
    "best_per_left": "select", "one_to_one": "select",
    "TokenFrame": "token_columns", "prepare_column": "token_columns",
}

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


__getattr__ = lazy_names(__name__, globals(), {name: f".{module}" for name, module in _MODULE_OF.items()})
