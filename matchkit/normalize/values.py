"""Clear attribute values: deduction/stage/relation/event codes, yes/no, shares, amounts and years.

Agencies and tax clerks write the same value many ways (``子女教育`` or ``children_education``, ``是`` or
``Y``, ``50%`` or ``0.5``, ``¥1,234.50``). Each parser here maps those spellings to one canonical value so
that the verify rules compare like with like. Every parser returns ``(value, reason)``: ``reason`` is ``None``
when the value is usable and a short English reason code otherwise. Parsers never raise, whatever they are
given (str, None, NaN, numbers, pandas missing values, bytes): a bad cell must become a row reject with a
reason, never a crash halfway through a million-row file.

This module also holds the small text-coercion helpers (:func:`is_missing`, :func:`to_text`) that the other
normalisers share, because it is the one normalise module with no dependencies of its own.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

__all__ = [
    "DEDUCTION_CODES",
    "EVENT_CODES",
    "NULL_MARKERS",
    "RELATION_CODES",
    "STAGE_CODES",
    "is_missing",
    "is_null_marker",
    "parse_amount",
    "parse_bool",
    "parse_deduction",
    "parse_event",
    "parse_relation",
    "parse_share",
    "parse_stage",
    "parse_year",
    "to_text",
]

# Spellings of "no value" that database and spreadsheet exports write into cells (pandas
# ``nan``/``NaT``/``<NA>``, MySQL ``\N``, Excel ``#N/A``, a lone dash). Compared case-insensitively after
# trimming. Names do not use this list: ``Nan`` and ``Na`` are real romanised surnames.
NULL_MARKERS = frozenset(
    {"", "nan", "nat", "none", "null", "na", "n/a", "<na>", "#n/a", "\\n", "-", "--", "—", "/"}
)

_MISSING_TYPE_NAMES = frozenset({"NAType", "NaTType"})


def is_missing(raw: Any) -> bool:
    """True for ``None``, float NaN and pandas' ``NA``/``NaT``: how readers hand over an empty cell."""
    if raw is None:
        return True
    if isinstance(raw, float):
        return raw != raw  # noqa: PLR0124 - NaN is the only float unequal to itself
    return type(raw).__name__ in _MISSING_TYPE_NAMES


def to_text(raw: Any) -> str | None:
    """Coerce any cell value to ``str`` (``None`` when missing) without ever raising.

    Floats keep Python's shortest round-trip form (``110101900307457.0``, ``1.1010119900307458e+17``) so the
    ID normaliser can tell a lossless ``.0`` from spreadsheet damage; numpy scalars print like builtins.
    """
    if type(raw) is str:
        return raw
    if is_missing(raw):
        return None
    if isinstance(raw, str):
        return str.__str__(raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float):
        return float.__repr__(raw)
    if isinstance(raw, int):
        return int.__repr__(raw)
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", errors="replace")
    try:
        text = str(raw)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not crash a batch job
        return None
    return text


def is_null_marker(text: str) -> bool:
    """True when ``text`` (already a str) is one of :data:`NULL_MARKERS` after trimming."""
    return text.strip().lower() in NULL_MARKERS


def clean_text(raw: Any) -> str | None:
    """Text for code lookups: NFKC (full-width → ASCII), trimmed, null markers → ``None``."""
    text = to_text(raw)
    if text is None:
        return None
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.strip()
    if text.lower() in NULL_MARKERS:
        return None
    return text


def _code_key(text: str) -> str:
    """Lookup key for a code: lower-case, no whitespace, ``-``/space → ``_`` folded away."""
    return "".join(text.split()).lower().replace("-", "_")


def _code_table(aliases: dict[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for code, spellings in aliases.items():
        for spelling in (code, *spellings):
            table[_code_key(spelling)] = code
    return table


def _parse_code(raw: Any, table: dict[str, str]) -> tuple[str | None, str | None]:
    text = clean_text(raw)
    if text is None:
        return None, "empty"
    code = table.get(_code_key(text))
    if code is None:
        return None, "unknown_code"
    return code, None


# --- codes --------------------------------------------------------------------------------------------------

DEDUCTION_CODES: dict[str, tuple[str, ...]] = {
    "children_education": ("子女教育", "子女教育支出"),
    "elderly_support": ("赡养老人", "赡养老人支出"),
    "serious_illness": ("大病医疗", "大病医疗支出"),
    "infant_care": ("3岁以下婴幼儿照护", "三岁以下婴幼儿照护", "婴幼儿照护", "婴幼儿照护支出"),
    "continuing_education": ("继续教育", "继续教育支出"),
    "housing_loan_interest": ("住房贷款利息", "住房贷款利息支出"),
    "housing_rent": ("住房租金", "住房租金支出"),
}

STAGE_CODES: dict[str, tuple[str, ...]] = {
    # The SPEC names plus the everyday words a school register uses for the same stage.
    "preschool": ("学前教育", "学前", "学前教育阶段", "幼儿园"),
    "compulsory": ("义务教育", "义务教育阶段", "小学", "初中"),
    "high_school": (
        "高中阶段教育",
        "高中",
        "高中阶段",
        "普通高中",
        "中等职业教育",
        "中职",
        "中专",
        "技工教育",
    ),
    "higher": (
        "高等教育",
        "高等教育阶段",
        "大学专科",
        "大学本科",
        "专科",
        "本科",
        "硕士研究生",
        "博士研究生",
    ),
}

RELATION_CODES: dict[str, tuple[str, ...]] = {
    "self": ("本人", "自己"),
    "spouse": ("配偶", "丈夫", "妻子"),
    "child": ("子女", "儿子", "女儿", "子", "女"),
    "parent": ("父母", "父亲", "母亲", "父", "母"),
}

EVENT_CODES: dict[str, tuple[str, ...]] = {
    "marriage": ("结婚", "结婚登记"),
    "divorce": ("离婚", "离婚登记"),
    "death": ("死亡", "死亡登记"),
}

_DEDUCTIONS = _code_table(DEDUCTION_CODES)
_STAGES = _code_table(STAGE_CODES)
_RELATIONS = _code_table(RELATION_CODES)
_EVENTS = _code_table(EVENT_CODES)


def parse_deduction(raw: Any) -> tuple[str | None, str | None]:
    """Canonical deduction code (SPEC §2) from the code or its Chinese name; reasons ``empty``,
    ``unknown_code``."""
    return _parse_code(raw, _DEDUCTIONS)


def parse_stage(raw: Any) -> tuple[str | None, str | None]:
    """Education stage ``preschool``/``compulsory``/``high_school``/``higher``; reasons ``empty``,
    ``unknown_code``."""
    return _parse_code(raw, _STAGES)


def parse_relation(raw: Any) -> tuple[str | None, str | None]:
    """Relation to the taxpayer: ``self``, ``spouse``, ``child``, ``parent``; reasons as for deductions."""
    return _parse_code(raw, _RELATIONS)


def parse_event(raw: Any) -> tuple[str | None, str | None]:
    """Civil-affairs event ``marriage``/``divorce``/``death``; reasons ``empty``, ``unknown_code``."""
    return _parse_code(raw, _EVENTS)


# --- yes/no -------------------------------------------------------------------------------------------------

_BOOLS: dict[str, bool] = {
    "是": True,
    "否": False,
    "y": True,
    "n": False,
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "1": True,
    "0": False,
    "1.0": True,
    "0.0": False,
}


def parse_bool(raw: Any) -> tuple[bool | None, str | None]:
    """Yes/no flag from ``是/否``, ``Y/N``, ``yes/no``, ``true/false``, ``1/0``; reasons ``empty``,
    ``bad_bool``."""
    if isinstance(raw, bool):
        return raw, None
    text = clean_text(raw)
    if text is None:
        return None, "empty"
    value = _BOOLS.get(text.lower())
    if value is None:
        return None, "bad_bool"
    return value, None


# --- numbers ------------------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)


def _number(text: str) -> float | None:
    """A finite float from plain or thousands-grouped decimal text, else ``None`` (no nan/inf spellings)."""
    if _PLAIN_NUMBER.fullmatch(text):
        value = float(text)
    elif _GROUPED_NUMBER.fullmatch(text):
        value = float(text.replace(",", ""))
    else:
        return None
    return value if math.isfinite(value) else None


def _raw_number(raw: Any) -> float | None:
    """Finite float for a real numeric cell (not bool), else ``None``."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        value = float(raw)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None


_SHARE_WORDS = {"全额": 1.0, "全部": 1.0, "平均": 0.5, "均摊": 0.5, "平均分摊": 0.5, "各半": 0.5}


def parse_share(raw: Any) -> tuple[float | None, str | None]:
    """Share of a deduction a claimant takes, as a fraction in (0, 1].

    Accepts ``0.5``, ``1``, ``"50%"`` (full-width ``％`` too) and the form words 全额/平均. An absent share
    means the whole deduction (1.0, SPEC §3). A bare number above 1 is refused rather than read as a
    percentage: ``50`` could be 50 % or a slip, and guessing would change the amount. Reasons ``bad_number``,
    ``share_out_of_range``.
    """
    if isinstance(raw, bool):
        return None, "bad_number"
    if isinstance(raw, (int, float)) and not is_missing(raw):
        value = _raw_number(raw)
        if value is None:  # inf or an int too large for a float: certainly not a fraction of one
            return None, "share_out_of_range"
    else:
        text = clean_text(raw)
        if text is None:
            return 1.0, None
        if text in _SHARE_WORDS:
            return _SHARE_WORDS[text], None
        text = "".join(text.split())
        if text.endswith("%"):
            number = _number(text[:-1])
            if number is None:
                return None, "bad_number"
            value = number / 100.0
        else:
            number = _number(text)
            if number is None:
                return None, "bad_number"
            value = number
    if not 0.0 < value <= 1.0:
        return None, "share_out_of_range"
    return value, None


def parse_amount(raw: Any) -> tuple[float | None, str | None]:
    """Non-negative amount in yuan from ``1234.5``, ``"1,234.50"``, ``"¥1,234.50"``, ``"1234.50元"``.

    Reasons ``empty``, ``bad_number``, ``negative_amount`` (a refund or reversal is not evidence of an
    expense).
    """
    if isinstance(raw, bool):
        return None, "bad_number"
    if isinstance(raw, (int, float)) and not is_missing(raw):
        value = _raw_number(raw)
        if value is None:
            return None, "bad_number"
    else:
        text = clean_text(raw)
        if text is None:
            return None, "empty"
        text = "".join(text.split())
        sign = ""
        if text.startswith(("+", "-")):
            sign, text = text[0], text[1:]
        if text.startswith(("¥", "￥")):
            text = text[1:]
        elif text[:3].upper() in ("RMB", "CNY"):
            text = text[3:]
        text = text.removesuffix("元")
        if text.startswith(("+", "-")):  # a sign after the currency symbol, ``¥-12``
            sign, text = (sign or text[0]), text[1:]
        number = _number(text)
        if number is None:
            return None, "bad_number"
        value = -number if sign == "-" else number
    if value < 0:
        return None, "negative_amount"
    return value + 0.0, None  # + 0.0 turns -0.0 into 0.0


_YEAR_TEXT = re.compile(r"(\d{4})(?:\.0+)?(?:年度?)?", re.ASCII)


def parse_year(
    raw: Any, *, min_year: int = 2019, max_year: int | None = None
) -> tuple[int | None, str | None]:
    """A tax or data year as int.

    ``min_year`` defaults to 2019 because the special additional deductions did not exist before
    (国发〔2018〕41号); ``max_year`` is unbounded unless given. Reasons ``empty``, ``bad_number``,
    ``year_out_of_range``.
    """
    if isinstance(raw, bool):
        return None, "bad_number"
    if isinstance(raw, (int, float)) and not is_missing(raw):
        value = _raw_number(raw)
        if value is None or value != int(value):
            return None, "bad_number"
        year = int(value)
    else:
        text = clean_text(raw)
        if text is None:
            return None, "empty"
        match = _YEAR_TEXT.fullmatch("".join(text.split()))
        if match is None:
            return None, "bad_number"
        year = int(match.group(1))
    if year < min_year or (max_year is not None and year > max_year):
        return None, "year_out_of_range"
    return year, None
