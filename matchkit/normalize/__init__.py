"""Normalisers: pure scalar functions from a raw cell to a canonical value plus a reason code.

They sit between reading and encoding: every token matchkit computes is a keyed hash of what these functions
return, so two agencies' spellings of one fact must come out identical here. No I/O, no logging, and they
never raise on bad input — a bad cell is a reason code, which the hash step turns into a row reject or, for a
claim's subject ID, into ``INVALID_SUBJECT_ID``. The hash pipeline memoises them over the unique values of a
column.
"""

from __future__ import annotations

from matchkit.normalize.dates import month_add, months_between, parse_date, parse_month, ym_of
from matchkit.normalize.ids import (
    GB11643_TYPES,
    ID_TYPES,
    IdResult,
    birth_date_from_id,
    check_char,
    id_body17,
    normalize_id,
    normalize_id_type,
    upgrade_15,
)
from matchkit.normalize.names import name_pinyin, name_problem, normalize_name
from matchkit.normalize.values import (
    is_missing,
    parse_amount,
    parse_bool,
    parse_deduction,
    parse_event,
    parse_relation,
    parse_share,
    parse_stage,
    parse_year,
    to_text,
)

__all__ = [
    "GB11643_TYPES",
    "ID_TYPES",
    "IdResult",
    "birth_date_from_id",
    "check_char",
    "id_body17",
    "is_missing",
    "month_add",
    "months_between",
    "name_pinyin",
    "name_problem",
    "normalize_id",
    "normalize_id_type",
    "normalize_name",
    "parse_amount",
    "parse_bool",
    "parse_date",
    "parse_deduction",
    "parse_event",
    "parse_month",
    "parse_relation",
    "parse_share",
    "parse_stage",
    "parse_year",
    "to_text",
    "upgrade_15",
    "ym_of",
]
