"""Identity-document numbers: canonical form and GB 11643 validation.

The exact ID token is an HMAC of the canonical number, so two spellings of one number must become the same
string (``11010519491231002x``, ``１１０１０５…``, ``110105 19491231 002X``, ``'110105…`` from Excel) and
numbers that are certainly wrong must be told apart by *why* they are wrong, because the caller treats them
differently: an extract row with an invalid ID is rejected, a claim's invalid subject ID goes on with near
tokens (SPEC §4).

Canonicalisation (every type): missing/NaN → ``empty``; NFKC (full-width digits and letters → ASCII); format
characters (zero-width spaces, BOM) removed; trimmed; a leading ``'`` or a ``="…"`` wrapper (spreadsheet
tricks for keeping a number as text) removed; all whitespace **and hyphens/dashes** removed — no document
number in scope uses a hyphen as a meaningful character, while people and export tools insert them as
separators; upper-cased (``x`` → ``X``); common export spellings of "no value" (``nan``, ``NULL``, ``\\N``…) →
``empty``.

Spreadsheet damage: scientific notation (``1.10105E+17``, ``1.1010119900307458e+17``) means digits were lost —
``excel_damage``, never guessed. A trailing ``.0`` (from a float column) is removed when it is lossless: when
the digits before it number at most 15 (every such integer is exact in a float64, so nothing was rounded) or
when the integer is *not* representable in a float64 (so the text cannot have been printed from one). An
18-digit number that a float64 represents exactly followed by ``.0`` may be a rounded float (float64 keeps ~16
digits, an ID has 18) and is ``excel_damage``.

GB 11643 types (``resident``, ``hmt_residence``, ``foreign_permanent``) share one check, whichever label the
clerk chose, because one number identifies one person (DESIGN: one ``RID`` token namespace). Checks in this
order, the first failure deciding the status: **format** (18 chars ``[0-9]{17}[0-9X]``, or a 15-digit legacy
number which is upgraded to 18 first) → **region** (a province code 11–65/71/81/82/83, or ``9`` + a mainland
province code for the 2023 foreigner permanent-residence ID) → **date** (positions 7–14 a real date,
1900-01-01 … today) → **checksum** (ISO 7064 MOD 11-2). The six-digit address code is not checked beyond its
province: county codes change and old ones stay valid on issued cards (SPEC §4). Other types are opaque:
canonical text, alphanumeric, 3–64 chars.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
import unicodedata
from operator import mul
from typing import Any, NamedTuple

from matchkit.normalize.values import NULL_MARKERS, to_text

__all__ = [
    "GB11643_TYPES",
    "ID_STATUSES",
    "ID_TYPES",
    "OPAQUE_TYPES",
    "IdResult",
    "birth_date_from_id",
    "check_char",
    "id_body17",
    "normalize_id",
    "normalize_id_type",
    "upgrade_15",
]

# --- document types -----------------------------------------------------------------------------------------

ID_TYPES: dict[str, tuple[str, ...]] = {
    # The names used by the natural-person tax system's import templates and by agency registers. Numeric type
    # codes differ between systems (tax, public security, social insurance), so none is guessed here.
    "resident": (
        "居民身份证",
        "身份证",
        "大陆居民身份证",
        "中华人民共和国居民身份证",
        "二代身份证",
        "第二代居民身份证",
        "临时居民身份证",
        "公民身份号码",
        "身份证号码",
        "户口簿",
        "居民户口簿",
        "resident_id",
        "id_card",
    ),
    "hmt_residence": ("港澳台居民居住证", "港澳居民居住证", "台湾居民居住证"),
    "foreign_permanent": (
        "外国人永久居留身份证",
        "外国人永久居留证",
        "外国人永久居留身份证(外国人永久居留证)",
    ),
    "passport": ("中国护照", "中华人民共和国护照", "护照"),
    "hmt_permit": (
        "港澳居民来往内地通行证",
        "台湾居民来往大陆通行证",
        "港澳台居民来往内地通行证",
        "回乡证",
        "台胞证",
    ),
    "foreign_passport": ("外籍护照", "外国护照"),
    "other": ("其他", "其他个人证件", "其他证件"),
}

GB11643_TYPES = frozenset({"resident", "hmt_residence", "foreign_permanent"})
OPAQUE_TYPES = frozenset(ID_TYPES) - GB11643_TYPES

ID_STATUSES = (
    "ok",
    "empty",
    "excel_damage",
    "bad_format",
    "bad_checksum",
    "bad_date",
    "bad_region",
    "unknown_type",
)


def _type_key(text: str) -> str:
    return "".join(text.split()).lower().replace("-", "_")


_TYPE_ALIASES: dict[str, str] = {}
for _canonical, _aliases in ID_TYPES.items():
    for _alias in (_canonical, *_aliases):
        _TYPE_ALIASES[_type_key(_alias)] = _canonical
_PARENTHESISED = re.compile(r"\([^()]*\)")


def normalize_id_type(raw: Any) -> str | None:
    """Canonical ID type from a code or Chinese name; empty → ``resident`` (SPEC §3), unknown → ``None``.

    ``None`` means the caller must reject the row: pairing a number with a guessed type would put it in the
    wrong token namespace and silently never match.
    """
    if type(raw) is str and raw in ID_TYPES:
        return raw
    text = to_text(raw)
    if text is None:
        return "resident"
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    key = _type_key(text)
    if key in NULL_MARKERS:
        return "resident"
    found = _TYPE_ALIASES.get(key)
    if found is None and "(" in key:  # 外国人永久居留身份证（新版） and similar annotations
        found = _TYPE_ALIASES.get(_PARENTHESISED.sub("", key))
    return found


# --- GB 11643 arithmetic ------------------------------------------------------------------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2**(17-i) mod 11
_ASCII_ZERO_OFFSET = ord("0") * sum(_WEIGHTS)
_CHECK_CHARS = "10X98765432"


def check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character for a 17-digit body.

    Raises ``ValueError`` for anything but 17 ASCII digits: this is arithmetic on an already-shaped body, not
    a normaliser (use :func:`normalize_id` for untrusted input).
    """
    if not (type(body17) is str and len(body17) == 17 and body17.isascii() and body17.isdigit()):
        raise ValueError("check_char needs 17 ASCII digits")
    # bytes iterate as code points; subtracting the weighted '0's once is cheaper than int() per digit.
    return _CHECK_CHARS[(sum(map(mul, body17.encode(), _WEIGHTS)) - _ASCII_ZERO_OFFSET) % 11]


def upgrade_15(id15: str) -> str:
    """The 18-digit form of a 15-digit legacy ID: century ``19`` inserted before the YYMMDD birth date, check
    added.

    First-generation cards (1984–2004) were issued only to people born in the 1900s, hence ``19``.
    Raises ``ValueError`` for anything but 15 ASCII digits.
    """
    if not (type(id15) is str and len(id15) == 15 and id15.isascii() and id15.isdigit()):
        raise ValueError("upgrade_15 needs 15 ASCII digits")
    body = id15[:6] + "19" + id15[6:]
    return body + check_char(body)


# Province-level codes (GB/T 2260), 71 Taiwan, 81/82/83 HK/Macao/Taiwan residence permits.
_MAINLAND_PROVINCES = frozenset(
    f"{code}"
    for code in (
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
    )
)
_PROVINCES = _MAINLAND_PROVINCES | {"71", "81", "82", "83"}

# Every MMDD of a leap year; 0229 additionally needs a leap year.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MMDD = frozenset(f"{m:02d}{d:02d}" for m in range(1, 13) for d in range(1, _MONTH_DAYS[m - 1] + 1))


def _real_date8(yyyymmdd: str) -> bool:
    """True when eight ASCII digits are a real calendar date (year ≥ 1)."""
    mmdd = yyyymmdd[4:]
    if mmdd not in _MMDD:
        return False
    year = int(yyyymmdd[:4])
    if year == 0:
        return False
    if mmdd == "0229":
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return True


_today_cache: list[Any] = [0.0, 0]  # [monotonic deadline, today as YYYYMMDD int]


def _today_int(today: _dt.date | None) -> int:
    """Today as int YYYYMMDD; ``date.today()`` is re-read at most once a minute to keep the hot path cheap."""
    if today is not None:
        return today.year * 10000 + today.month * 100 + today.day
    now = time.monotonic()
    if now >= _today_cache[0]:
        day = _dt.date.today()
        _today_cache[0] = now + 60.0
        _today_cache[1] = day.year * 10000 + day.month * 100 + day.day
    return int(_today_cache[1])


class IdResult(NamedTuple):
    """A normalised ID. ``value`` is set whenever a canonical form exists, even if invalid (near tokens need
    it)."""

    value: str | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_EMPTY = IdResult(None, "empty")
_EXCEL = IdResult(None, "excel_damage")
_BAD_FORMAT = IdResult(None, "bad_format")
_UNKNOWN_TYPE = IdResult(None, "unknown_type")


def _validate18(value: str, today: int) -> IdResult:
    """Region → date → checksum for a string already shaped ``[0-9]{17}[0-9X]``."""
    if value[:2] not in _PROVINCES and not (value[0] == "9" and value[1:3] in _MAINLAND_PROVINCES):
        return IdResult(value, "bad_region")
    birth = value[6:14]
    if not _real_date8(birth) or not 19000101 <= int(birth) <= today:
        return IdResult(value, "bad_date")
    if _CHECK_CHARS[(sum(map(mul, value[:17].encode(), _WEIGHTS)) - _ASCII_ZERO_OFFSET) % 11] != value[17]:
        return IdResult(value, "bad_checksum")
    return IdResult(value, "ok")


def _is_id18_shape(text: str) -> bool:
    return (
        len(text) == 18 and text.isascii() and text[:17].isdigit() and (text[17].isdigit() or text[17] == "X")
    )


# Format characters people never type on purpose: zero-width space/joiners, direction marks, word joiner, BOM.
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), 0xFEFF]
)
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc]+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+", re.ASCII)
_DOT_ZERO = re.compile(r"(\d+)\.0+", re.ASCII)
_FLOAT64_EXACT_DIGITS = 15


def _canonical_text(raw: Any) -> str | IdResult:
    """Shared canonicalisation for every type; returns the text or a terminal ``IdResult``."""
    text = to_text(raw)
    if text is None:
        return _EMPTY
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = text.strip()
    if text.startswith("=") and len(text) >= 3 and text[1] == '"' and text[-1] == '"':
        text = text[2:-1]  # ="110105…" keeps Excel from reformatting the number
    elif len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    text = text.lstrip("'`")  # a leading apostrophe forces text in Excel
    text = _SEPARATORS.sub("", text)
    if text.lower() in NULL_MARKERS:
        return _EMPTY
    if _SCIENTIFIC.fullmatch(text):
        return _EXCEL
    if text.endswith("0") and "." in text:
        match = _DOT_ZERO.fullmatch(text)
        if match is not None:
            digits = match.group(1)
            if len(digits) > _FLOAT64_EXACT_DIGITS and float(int(digits)) == int(digits):
                return _EXCEL
            text = digits
    text = text.upper()
    if (
        not text.isascii()
    ):  # upper() can leave a string that is no longer NFKC-normal (e.g. Greek with accents)
        text = unicodedata.normalize("NFKC", text)
    return text


def normalize_id(raw: Any, id_type: Any = "resident", *, today: _dt.date | None = None) -> IdResult:
    """Canonical form and validity of an identity-document number (see the module docstring for every rule).

    ``id_type`` is a canonical type or any alias :func:`normalize_id_type` knows (missing → ``resident``); an
    unknown type gives status ``unknown_type``. ``today`` bounds birth dates (tests pass a fixed day).
    Never raises.
    """
    if id_type is None or (type(id_type) is str and id_type in GB11643_TYPES):
        gb11643 = True
    else:
        canonical_type = normalize_id_type(id_type)
        if canonical_type is None:
            return _UNKNOWN_TYPE
        gb11643 = canonical_type in GB11643_TYPES

    # Fast path: the overwhelmingly common clean 18-character string.
    if gb11643 and type(raw) is str:
        if _is_id18_shape(raw):
            return _validate18(raw, _today_int(today))
        if raw.isascii():  # next most common: a lower-case x or padding from a fixed-width export
            trimmed = raw.strip().upper()
            if _is_id18_shape(trimmed):
                return _validate18(trimmed, _today_int(today))
            if len(trimmed) == 15 and trimmed.isdigit():  # a legacy number: what the general path below does
                return _validate18(upgrade_15(trimmed), _today_int(today))

    canonical = _canonical_text(raw)
    if isinstance(canonical, IdResult):
        return canonical
    if not canonical:
        return _EMPTY
    if not gb11643:
        if 3 <= len(canonical) <= 64 and canonical.isalnum():
            return IdResult(canonical, "ok")
        return _BAD_FORMAT
    if len(canonical) == 15 and canonical.isascii() and canonical.isdigit():
        canonical = upgrade_15(canonical)
    if not _is_id18_shape(canonical):
        return _BAD_FORMAT
    return _validate18(canonical, _today_int(today))


def id_body17(value: Any) -> str | None:
    """The 17-digit body of a canonical value shaped ``[0-9]{17}[0-9X]`` (valid or not), else ``None``.

    Near tokens are built from the body alone, so an ID whose check character is stale or recomputed after a
    typo still shares tokens with the true number.
    """
    if type(value) is str and _is_id18_shape(value):
        return value[:17]
    return None


def birth_date_from_id(value: Any) -> _dt.date | None:
    """Birth date embedded in a canonical 18-character ID (positions 7–14), when it is a real calendar date.

    Region and checksum are not re-checked here; the caller decides whether it trusts the ID.
    """
    if type(value) is not str or not _is_id18_shape(value):
        return None
    birth = value[6:14]
    if not _real_date8(birth):
        return None
    return _dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
