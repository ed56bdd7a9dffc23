"""Field encodings for linkage schemas: normalisers, exact tokens, hardened Bloom filters, blocking tokens.

A linkage schema (``kind = "link"``, :mod:`matchkit.schema`) declares fields of five types. Each field value goes
through the normaliser of its type and is written only as keyed encodings, never in clear:

- ``exact``: ``HMAC-SHA256(k_field, canonical)[:16]``, equal only for equal canonical values.
- ``bloom``: a field-level Bloom filter of the value's q-grams, compared by Dice similarity (popcounts). Each
  q-gram sets ``k`` bit positions drawn from ``HMAC-SHA256(k_bloom, salt | q-gram)``, so positions are keyed and
  independent per q-gram (no double-hashing structure to mine). A field may be *salted* with another field of the
  same record (``salt = "date_of_birth"``, or only its year): the same name then gives unrelated filters under
  different salts, which is what defeats frequency alignment (see ``benchmarks/bench_attack.py``).
- blocking tokens: ``HMAC-SHA256(k_block, pass | part | part ...)[:8]`` as int64 per ``[[blocking]]`` pass.

Sub-keys are derived per field name (``field:<name>:exact``, ``field:<name>:bloom``), so equal values in two
different fields never share a token and both sides of a linkage must use the same field names.

Normalisers return ``(canonical, reason)``; ``canonical`` is None for a missing value, ``reason`` a reject code.
They are total (never raise) and idempotent (property-tested).

Encoding stability: these encodings belong to encoding ``mk1`` since matchkit 0.2 (adding them changed no earlier
``mk1`` output); ``tests/test_encode_fields_kat.py`` freezes them.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from matchkit.normalize import dates, names
from matchkit.normalize.values import clean_text

TOKEN_BYTES = 16
MAX_FIELD_CHARS = 500  # longer is not a field value of any register; its q-grams would only cost memory
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_ID_SEPARATORS = re.compile(r"[\s\-/.]+")
_ID_CHARS = re.compile(r"[0-9A-Z]+", re.ASCII)
_SPACES = re.compile(r"\s+")

Normaliser = Callable[[Any], tuple[str | None, str | None]]


# --- normalisers --------------------------------------------------------------------------------------------------
def _has_cjk(text: str) -> bool:
    return any("\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" for char in text)


def _letters_and_spaces(text: str, *, keep_digits: bool) -> str:
    """Case-folded text with every character that is not a letter (or digit) turned into a space, collapsed."""
    out = []
    for char in text.casefold():
        category = unicodedata.category(char)
        if category.startswith("L") or (keep_digits and category == "Nd"):
            out.append(char)
        elif category.startswith("M"):
            continue  # combining marks: part of the letter before
        elif char in "'’`":
            continue  # o'brien -> obrien
        else:
            out.append(" ")
    return _SPACES.sub(" ", "".join(out)).strip()


def normalize_name(raw: Any) -> tuple[str | None, str | None]:
    """Person name: Chinese names as :func:`matchkit.normalize.names.normalize_name` (simplified, no spaces);
    other scripts case-folded letters, punctuation and hyphens become one space (``Mary-Jane`` = ``mary jane``)."""
    text = clean_text(raw)
    if text is None:
        return None, None
    if len(text) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    if _has_cjk(text):
        problem = names.name_problem(text)
        if problem == "empty":
            return None, None
        if problem is not None:
            return None, "invalid_name"
        return names.normalize_name(text), None
    folded = _letters_and_spaces(unicodedata.normalize("NFKD", text), keep_digits=False)
    folded = unicodedata.normalize("NFC", folded)
    return (folded or None), None


def normalize_text(raw: Any) -> tuple[str | None, str | None]:
    """Free text (address, place): NFKC, case-folded, punctuation to single spaces, letters and digits kept."""
    text = clean_text(raw)
    if text is None:
        return None, None
    if len(text) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    folded = _letters_and_spaces(text, keep_digits=True)
    return (folded or None), None


def normalize_number(raw: Any) -> tuple[str | None, str | None]:
    """A number as written: digits kept as a string (leading zeros matter in postcodes), an Excel ``.0`` dropped,
    a decimal without trailing zeros. Anything else is ``invalid_number``."""
    text = clean_text(raw)
    if text is None:
        return None, None
    text = text.replace(" ", "").replace(",", "")
    if not _DECIMAL.fullmatch(text):
        return None, "invalid_number"
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0")
        text = f"{whole}.{fraction}" if fraction else whole
    return text.lstrip("+"), None


def normalize_date(raw: Any) -> tuple[str | None, str | None]:
    """A date in any spelling :func:`matchkit.normalize.dates.parse_date` accepts, as ``YYYYMMDD``."""
    if clean_text(raw) is None:
        return None, None
    parsed, reason = dates.parse_date(raw)
    if parsed is None:
        return None, reason or "bad_format"
    return f"{parsed.year:04d}{parsed.month:02d}{parsed.day:02d}", None


def normalize_id(raw: Any) -> tuple[str | None, str | None]:
    """A generic identifier: NFKC, upper case, spaces, hyphens, slashes and dots removed; letters and digits only."""
    text = clean_text(raw)
    if text is None:
        return None, None
    if len(text) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    text = _ID_SEPARATORS.sub("", text.removesuffix(".0")).upper()  # an Excel float's ".0" first, then separators
    if not text:
        return None, None
    if not _ID_CHARS.fullmatch(text):
        return None, "invalid_id"
    return text, None


NORMALISERS: dict[str, Normaliser] = {
    "name": normalize_name,
    "text": normalize_text,
    "number": normalize_number,
    "date": normalize_date,
    "id": normalize_id,
}


def kept_invalid(raw: Any) -> str | None:
    """What ``on_invalid = "keep"`` keeps of a value its normaliser refused: its letters and digits, upper case
    (a mistyped date ``1945-04-93`` stays ``19450493``, still close to the true ``19450403``)."""
    text = clean_text(raw)
    if text is None:
        return None
    kept = "".join(char for char in text.upper() if char.isalnum())[:MAX_FIELD_CHARS]
    return kept or None


# --- q-grams ------------------------------------------------------------------------------------------------------
def qgrams(field_type: str, canonical: str) -> list[str]:
    """The distinct q-grams a canonical value is encoded as, in first-seen order.

    Names and text: padded bigrams (``_jo``-style padding with spaces) of the value; a Chinese name is encoded as
    its toneless pinyin (so homophones and traditional forms come close) plus its characters. Dates, numbers and
    IDs: positional unigrams (``3@0``) and bigrams, so ``1956`` and ``1965`` share their first half exactly.
    """
    grams: list[str]
    if field_type in ("name", "text"):
        if field_type == "name" and _has_cjk(canonical):
            grams = _bigrams(" ".join(names.name_pinyin(canonical))) + [f"#{char}" for char in canonical]
        elif _has_cjk(canonical):
            grams = [f"#{char}" for char in canonical] + [canonical[i : i + 2] for i in range(len(canonical) - 1)]
        else:
            grams = _bigrams(canonical)
    else:
        grams = [f"{char}@{index}" for index, char in enumerate(canonical)] + _bigrams(canonical)
    return list(dict.fromkeys(grams))


def _bigrams(text: str) -> list[str]:
    padded = f" {text} "
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


# --- blocking transforms ------------------------------------------------------------------------------------------
def blocking_part(field_type: str, transform: str, canonical: str) -> str | None:
    """The value one blocking key part takes (None: the record has no key in this pass)."""
    import jellyfish

    base, _, argument = transform.partition(":")
    if base == "exact":
        return canonical
    if base == "first":
        return canonical[: int(argument)]
    if base == "last":
        return canonical[-int(argument) :]
    if base in ("year", "year_month"):
        width = 4 if base == "year" else 6
        return canonical[:width] if len(canonical) >= width and canonical[:width].isdigit() else None
    phonetic_source = canonical
    if field_type == "name" and _has_cjk(canonical):
        phonetic_source = "".join(names.name_pinyin(canonical))
    letters = "".join(char for char in unicodedata.normalize("NFKD", phonetic_source) if char.isascii()
                      and char.isalpha())
    if not letters:
        return None
    if base == "soundex":
        return str(jellyfish.soundex(letters))
    if base == "nysiis":
        return str(jellyfish.nysiis(letters))
    if base == "metaphone":
        return str(jellyfish.metaphone(letters)) or None
    raise ValueError(f"unknown blocking transform {transform!r}")


# --- keyed primitives ---------------------------------------------------------------------------------------------
def exact_tokens(key: bytes, canonicals: Sequence[str | None]) -> list[bytes | None]:
    """``HMAC-SHA256(key, value)[:16]`` per value, one HMAC per distinct value."""
    codes, uniques = pd.factorize(np.asarray(canonicals, dtype=object), use_na_sentinel=True)
    tokens = np.empty(len(uniques) + 1, dtype=object)
    tokens[:-1] = [hmac.digest(key, value.encode("utf-8"), "sha256")[:TOKEN_BYTES] for value in uniques]
    tokens[-1] = None
    return list(tokens[codes])


def blocking_tokens(key: bytes, pass_name: str, parts: Sequence[Sequence[str | None]]) -> np.ndarray:
    """Keyed 64-bit blocking key per record (``parts[j][i]``: part *j* of record *i*); 0 where a part is missing.

    ``HMAC-SHA256(key, pass | 0x1f | part0 | 0x1f | part1 ...)``, first 8 bytes as a signed big-endian int64.
    """
    count = len(parts[0]) if parts else 0
    messages = np.empty(count, dtype=object)
    for index in range(count):
        values = [column[index] for column in parts]
        messages[index] = None if any(v is None for v in values) else "\x1f".join([pass_name, *values])  # type: ignore[list-item]
    codes, uniques = pd.factorize(messages, use_na_sentinel=True)
    lookup = np.zeros(len(uniques) + 1, dtype=np.int64)
    for position, message in enumerate(uniques):
        digest = hmac.digest(key, message.encode("utf-8"), "sha256")[:8]
        lookup[position] = int.from_bytes(digest, "big", signed=True) or 1  # 0 is reserved for "no key"
    return lookup[codes]


class BloomEncoder:
    """Keyed field-level Bloom filters of one field: ``bits`` bits, ``k`` positions per (salt, q-gram).

    Position *j* of q-gram *g* under salt *s* is the *j*-th little-endian uint16 of
    ``HMAC-SHA256(key, s | 0x1f | g | 0x1f | block)`` (16 per block, blocks 0, 1, ... as needed) modulo ``bits``
    (a power of two, so unbiased). Positions are memoised per (salt, q-gram): q-grams repeat across records.
    """

    CACHE_LIMIT = 1_000_000

    def __init__(self, key: bytes, field_type: str, bits: int, k: int) -> None:
        if bits & (bits - 1) or not 64 <= bits <= 4096:
            raise ValueError("Bloom filter size must be a power of two from 64 to 4096 bits")
        self._key = key
        self.field_type = field_type
        self.bits = bits
        self.k = k
        self._gram_ids: dict[str, int] = {}
        self._positions: list[np.ndarray] = []
        self._table: np.ndarray = np.zeros((0, k), dtype=np.int64)

    def _gram_id(self, salted_gram: str) -> int:
        gram_id = self._gram_ids.get(salted_gram)
        if gram_id is None:
            blocks = -(-self.k // 16)
            digest = b"".join(
                hmac.digest(self._key, f"{salted_gram}\x1f{block}".encode(), "sha256") for block in range(blocks)
            )
            positions = np.frombuffer(digest, dtype="<u2")[: self.k].astype(np.int64) % self.bits
            gram_id = len(self._positions)
            self._gram_ids[salted_gram] = gram_id
            self._positions.append(positions)
        return gram_id

    def encode(self, canonicals: Sequence[str | None], salts: Sequence[str | None] | None = None) -> np.ndarray:
        """Packed filters, ``(n, bits // 8)`` uint8 (all zero where the value is None); one row per value.

        The salt of a record is prefixed to each of its q-grams (``"" `` when the field is unsalted, or when the
        record's salt value is missing: such records simply compare unsalted among themselves).
        """
        if len(self._gram_ids) > self.CACHE_LIMIT:
            self._gram_ids.clear()
            self._positions.clear()
        count = len(canonicals)
        keys = np.empty(count, dtype=object)
        if salts is None:
            keys[:] = [None if v is None else "\x1e" + v for v in canonicals]
        else:
            keys[:] = [None if v is None else f"{s or ''}\x1e{v}" for v, s in zip(canonicals, salts)]
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        gram_ids: list[int] = []
        lengths = np.zeros(len(uniques), dtype=np.int64)
        field_type = self.field_type
        for position, unique in enumerate(uniques):
            salt, _, value = unique.partition("\x1e")
            ids = [self._gram_id(f"{salt}\x1f{gram}") for gram in qgrams(field_type, value)]
            gram_ids.extend(ids)
            lengths[position] = len(ids)
        if len(self._table) != len(self._positions):
            self._table = np.stack(self._positions) if self._positions else np.zeros((0, self.k), dtype=np.int64)
        dense = np.zeros((len(uniques) + 1, self.bits), dtype=bool)  # last row: the empty filter of code -1
        if gram_ids:
            rows = np.repeat(np.arange(len(uniques), dtype=np.int64), lengths * self.k)
            dense[rows, self._table[np.asarray(gram_ids, dtype=np.int64)].ravel()] = True
        packed = np.packbits(dense, axis=1, bitorder="little")
        return packed[codes]


def popcounts(filters: np.ndarray) -> np.ndarray:
    """Set bits per packed filter row."""
    return np.bitwise_count(filters.view(np.uint8)).sum(axis=1, dtype=np.int64)
