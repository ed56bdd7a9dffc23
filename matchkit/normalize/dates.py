"""Dates and year-months as agencies write them.

SPEC §3 fixes the accepted spellings: dates ``YYYY-MM-DD``, ``YYYYMMDD``, ``YYYY/MM/DD``, ``YYYY年M月D日``;
months ``YYYY-MM``, ``YYYYMM``. Around those, real exports add noise that carries no ambiguity and is
tolerated here: full-width digits and separators (NFKC), single-digit month/day in the separated and Chinese
forms, ``.`` as a separator, a time of day after the date (``2023-01-15 00:00:00`` from pandas or Excel, any
time is dropped), an optional ``日``/``号``, datetime/date/``pd.Timestamp``/``numpy.datetime64`` objects, and
integer cells (``20230115``, ``202301``, or the same as a float with ``.0``). Anything else is ``bad_format``
— in particular two-digit years and day-first orders are never guessed.

Months are carried as int ``YYYYMM`` (sortable, compact in Parquet, trivial arithmetic with the helpers
below). Parsers return ``(value, reason)`` and never raise.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from matchkit.normalize.values import clean_text, is_missing

__all__ = ["month_add", "months_between", "parse_date", "parse_month", "ym_of"]

_MIN_DATE = _dt.date(1900, 1, 1)

_TIME_SUFFIX = re.compile(
    r"(?:[T ]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?$", re.ASCII
)
_DOT_ZERO = re.compile(r"(\d+)\.0+", re.ASCII)
_DATE_SEPARATED = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})", re.ASCII)
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII)
_DATE_CHINESE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]?", re.ASCII)
_MONTH_SEPARATED = re.compile(r"(\d{4})[-/.](\d{1,2})", re.ASCII)
_MONTH_COMPACT = re.compile(r"(\d{4})(\d{2})", re.ASCII)
_MONTH_CHINESE = re.compile(r"(\d{4})年(\d{1,2})月?(?:份)?", re.ASCII)


def _prepare(raw: Any) -> str | None:
    """Text of a date-ish cell with full-width forms folded, time of day and a float ``.0`` removed.

    ``None`` for missing cells and export spellings of "no value".
    """
    text = clean_text(raw)
    if text is None:
        return None
    match = _DOT_ZERO.fullmatch(text)
    if match is not None:
        return match.group(1)
    if ":" in text or "T" in text or "Z" in text or "+" in text:
        text = _TIME_SUFFIX.sub("", text, count=1)
    return "".join(text.split())


def _date_parts(text: str) -> tuple[int, int, int] | None:
    for pattern in (_DATE_SEPARATED, _DATE_COMPACT, _DATE_CHINESE):
        match = pattern.fullmatch(text)
        if match is not None:
            groups = match.groups()
            if pattern is _DATE_SEPARATED:
                return int(groups[0]), int(groups[2]), int(groups[3])
            return int(groups[0]), int(groups[1]), int(groups[2])
    return None


def _as_date(raw: Any) -> _dt.date | None:
    """The calendar date of a datetime-like object (datetime, date, pandas Timestamp), else ``None``."""
    if isinstance(raw, _dt.datetime):
        try:
            return raw.date()
        except Exception:  # noqa: BLE001 - pandas NaT and exotic subclasses
            return None
    if isinstance(raw, _dt.date):
        return raw
    return None


def parse_date(raw: Any, *, today: _dt.date | None = None) -> tuple[_dt.date | None, str | None]:
    """A calendar date; reasons ``empty``, ``bad_format``, ``bad_date`` (no such day: Feb 30, month 13),
    ``too_old`` (before 1900-01-01), ``future_date`` (after ``today``, default the local date).

    The range limits catch typos in birth dates (``1899``, ``2093``); event dates share them because no agency
    record in scope predates 1900 or lies in the future.
    """
    if is_missing(raw):
        return None, "empty"
    value = _as_date(raw)
    if value is None:
        if isinstance(raw, str) and len(raw) == 8 and raw.isascii() and raw.isdigit():
            parts: tuple[int, int, int] | None = (int(raw[:4]), int(raw[4:6]), int(raw[6:]))  # YYYYMMDD, common
        else:
            text = _prepare(raw)
            if text is None:
                return None, "empty"
            parts = _date_parts(text)
        if parts is None:
            return None, "bad_format"
        try:
            value = _dt.date(*parts)
        except ValueError:
            return None, "bad_date"
    if value < _MIN_DATE:
        return None, "too_old"
    if value > (today if today is not None else _dt.date.today()):
        return None, "future_date"
    return value, None


def parse_month(raw: Any) -> tuple[int | None, str | None]:
    """A year-month as int ``YYYYMM``; reasons ``empty``, ``bad_format``, ``bad_month``.

    A full date (any :func:`parse_date` spelling or a datetime object) gives its month; a full date naming a
    day that does not exist (``2023-02-30``) is ``bad_month`` rather than silently trusted. No range check:
    periods and enrolment spells are checked against the tax year by the caller.
    """
    if is_missing(raw):
        return None, "empty"
    value = _as_date(raw)
    if value is not None:
        return value.year * 100 + value.month, None
    if isinstance(raw, _dt.datetime):  # NaT-like objects that have no date
        return None, "empty"
    text = _prepare(raw)
    if text is None:
        return None, "empty"
    year = month = None
    for pattern in (_MONTH_SEPARATED, _MONTH_COMPACT, _MONTH_CHINESE):
        match = pattern.fullmatch(text)
        if match is not None:
            year, month = int(match.group(1)), int(match.group(2))
            break
    else:
        parts = _date_parts(text)
        if parts is None:
            return None, "bad_format"
        try:
            _dt.date(*parts)
        except ValueError:
            return None, "bad_month"
        year, month = parts[0], parts[1]
    if year < 1:
        return None, "bad_format"
    if not 1 <= month <= 12:
        return None, "bad_month"
    return year * 100 + month, None


def ym_of(value: Any) -> int | None:
    """``YYYYMM`` of a date or datetime; ``None`` for anything else (missing dates propagate)."""
    as_date = _as_date(value) if not is_missing(value) else None
    if as_date is None:
        return None
    return as_date.year * 100 + as_date.month


def month_add(ym: int, months: int) -> int:
    """``YYYYMM`` shifted by ``months`` (negative goes back): ``month_add(202312, 1) == 202401``."""
    index = (ym // 100) * 12 + (ym % 100 - 1) + months
    return (index // 12) * 100 + index % 12 + 1


def months_between(start: int, end: int) -> int:
    """Months from ``start`` to ``end`` inclusive (``202301``..``202312`` → 12); 0 when end < start."""
    count = ((end // 100) * 12 + end % 100) - ((start // 100) * 12 + start % 100) + 1
    return max(count, 0)
