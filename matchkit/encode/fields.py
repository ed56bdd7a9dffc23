"""Field encodings for linkage schemas: normalisers, exact tokens, hardened Bloom filters, blocking tokens.

A linkage schema (``kind = "link"``, :mod:`matchkit.schema`) declares fields of five types. Each field value goes
through the normaliser of its type and is written only as keyed encodings, never in clear:

- ``exact``: ``HMAC-SHA256(k_field, canonical)[:16]``, equal only for equal canonical values.
- ``bloom``: a field-level Bloom filter of the value's q-grams, compared by Dice similarity (popcounts). Each
  q-gram sets ``k`` bit positions drawn from a keyed AES PRF of (q-gram code, salt tag) (:class:`BloomEncoder`),
  so positions are keyed and independent per q-gram (no double-hashing structure to mine). A field may be *salted* with another field of the
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
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from matchkit.encode.codes import Factorised, combine_codes, factorize, factorize_ints
from matchkit.encode.keyed import KeyedHmac, encrypt_blocks
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
    """Whether a value holds a Chinese character (every CJK block the name normaliser knows, Ext B-H too)."""
    return not text.isascii() and names.has_cjk(text)


_ASCII_LETTERS = {ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
_ASCII_DIGITS = {ord(c): c for c in "0123456789"}
_ASCII_APOSTROPHES = {ord("'"): None, ord("`"): None}
_ASCII_TABLES = {
    keep_digits: str.maketrans({**{code: " " for code in range(128)}, **_ASCII_LETTERS,
                                **(_ASCII_DIGITS if keep_digits else {}), **_ASCII_APOSTROPHES})
    for keep_digits in (False, True)
}


def _letters_and_spaces(text: str, *, keep_digits: bool) -> str:
    """Case-folded text with every character that is not a letter (or digit) turned into a space, collapsed."""
    if text.isascii():  # the common case, one C-level translate (same result as the loop below)
        return " ".join(text.translate(_ASCII_TABLES[keep_digits]).split())
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
    text, reason = _cleaned(raw)
    if text is None:
        return None, reason
    if _has_cjk(text):
        problem = names.name_problem(text)
        if problem == "empty":
            return None, None
        if problem is not None:
            return None, "invalid_name"
        return _within_limit(names.normalize_name(text))
    folded = _letters_and_spaces(unicodedata.normalize("NFKD", text), keep_digits=False)
    return _within_limit(unicodedata.normalize("NFC", folded))


def _cleaned(raw: Any) -> tuple[str | None, str | None]:
    """The cell's text (:func:`clean_text`), or (None, None) for an empty cell, or (None, ``value_too_long``)."""
    text = clean_text(raw)
    if text is not None and len(text) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    return text, None


def _within_limit(canonical: str | None) -> tuple[str | None, str | None]:
    """Checked after folding too: case folding can lengthen a value (``ß`` -> ``ss``)."""
    if canonical and len(canonical) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    return (canonical or None), None


def normalize_text(raw: Any) -> tuple[str | None, str | None]:
    """Free text (address, place): NFKC, case-folded, punctuation to single spaces, letters and digits kept."""
    text, reason = _cleaned(raw)
    if text is None:
        return None, reason
    return _within_limit(_letters_and_spaces(text, keep_digits=True))


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
    text = text.lstrip("+")
    if text.startswith("-") and not text.strip("-0."):
        text = text.lstrip("-")  # -0 is 0
    return text, None


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
    text, reason = _cleaned(raw)
    if text is None:
        return None, reason
    if text.isascii() and text.isalnum() and text.upper() == text:
        return text, None  # already canonical (digits and capitals): the common case, same result as below
    text = _ID_SEPARATORS.sub("", text.removesuffix(".0")).upper()  # an Excel float's ".0" first, then separators
    if not text:
        return None, None
    if not _ID_CHARS.fullmatch(text):
        return None, "invalid_id"
    return _within_limit(text)


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
    """The q-grams a canonical value is encoded as (the reference; :func:`gram_codes` is its vectorised form).

    Every value: the bigrams of the value padded with a space at each end. A name or text with Chinese characters
    also gets each character as a unigram ``#c``, and a Chinese *name* takes its bigrams from its toneless pinyin
    (so homophones and traditional forms come close). Dates, numbers and IDs also get positional unigrams ``c@i``,
    so ``1956`` and ``1965`` share their first half exactly.
    """
    cjk = _has_cjk(canonical)
    spelled = " ".join(names.name_pinyin(canonical)) if field_type == "name" and cjk else canonical
    grams = _bigrams(spelled)
    if field_type in ("name", "text") and cjk:
        grams += [f"#{char}" for char in canonical]
    if field_type not in ("name", "text"):
        grams += [f"{char}@{index}" for index, char in enumerate(canonical)]
    return grams


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
def exact_tokens(key: bytes | KeyedHmac, canonicals: Sequence[str | None]) -> list[bytes | None]:
    """``HMAC-SHA256(key, value)[:16]`` per value, one HMAC per distinct value."""
    codes, uniques = factorize(canonicals)
    table = exact_token_table(key, uniques.tolist())
    tokens = np.empty(len(uniques) + 1, dtype=object)
    tokens[:-1] = [row.tobytes() for row in table[:-1]]
    tokens[-1] = None
    return list(tokens[codes])


def exact_token_table(key: bytes | KeyedHmac, distinct: list[str], cache: dict[str, bytes] | None = None) -> np.ndarray:
    """``(len(distinct) + 1, 16)`` uint8: the exact token of each distinct value, then a zero row (for code -1).
    With a ``cache`` (kept by the caller across chunks) a value seen before costs no HMAC."""
    mac = key if isinstance(key, KeyedHmac) else KeyedHmac(key)
    known: dict[str, bytes] = {} if cache is None else cache
    new = [value for value in distinct if value not in known]
    known.update(zip(new, mac.digests((value.encode("utf-8") for value in new), TOKEN_BYTES)))
    return np.frombuffer(b"".join([*(known[value] for value in distinct), bytes(TOKEN_BYTES)]),
                         dtype=np.uint8).reshape(len(distinct) + 1, TOKEN_BYTES)


def factorise_part(part: Sequence[str | None]) -> Factorised:
    """One blocking key part of every record as codes into its distinct values (None: missing)."""
    return factorize(part)


def blocking_tokens(key: bytes, pass_name: str, parts: Sequence[Sequence[str | None]]) -> np.ndarray:
    """Keyed 64-bit blocking key per record (``parts[j][i]``: part *j* of record *i*); 0 where a part is missing.

    ``HMAC-SHA256(key, pass | 0x1f | part0 | 0x1f | part1 ...)``, first 8 bytes as a signed big-endian int64,
    computed once per distinct combination of parts.
    """
    return blocking_tokens_of_parts(key, pass_name, [factorise_part(part) for part in parts])


def blocking_tokens_of_parts(key: bytes, pass_name: str, parts: Sequence[Factorised]) -> np.ndarray:
    """:func:`blocking_tokens` of parts already factorised (a part shared by several passes is factorised once)."""
    count = len(parts[0][0]) if parts else 0
    missing = np.zeros(count, dtype=bool)
    for codes, _ in parts:
        missing |= codes < 0
    combined = combine_codes([codes + 1 for codes, _ in parts], [len(uniques) + 1 for _, uniques in parts])
    combination = factorize_ints(np.where(missing, -1, combined))  # hash-based: no sort
    uniques_per_part = list(parts)
    first = np.empty(combination.max(initial=-1) + 1, dtype=np.int64)
    first[combination[::-1]] = np.arange(count - 1, -1, -1)  # the first record of each combination
    present = ~missing[first]
    rows = first[present]
    columns = [uniques[codes[rows]].tolist() for codes, uniques in uniques_per_part]
    tokens = KeyedHmac(key).int64s("\x1f".join((pass_name, *values)).encode("utf-8") for values in zip(*columns))
    lookup = np.zeros(len(first), dtype=np.int64)
    lookup[present] = np.where(tokens == 0, 1, tokens)  # 0 is reserved for "no key"
    return lookup[combination]


GRAM_BIGRAM, GRAM_CHAR, GRAM_POSITION = 0, 1, 2  # kinds of q-gram, in bits 60.. of a q-gram code


def gram_code(gram: str) -> int:
    """The int64 code of one q-gram of :func:`qgrams`: a bigram ``ab`` is ``a << 21 | b`` (code points), a
    character ``#c`` is ``1 << 60 | c``, a positional character ``c@i`` is ``2 << 60 | i << 21 | c``.
    (Canonical values never contain ``#`` or ``@``: the normalisers keep letters, digits and spaces only.)"""
    if gram.startswith("#") and len(gram) == 2:
        return GRAM_CHAR << 60 | ord(gram[1])
    if len(gram) == 2:
        return ord(gram[0]) << 21 | ord(gram[1])
    char, _, index = gram.partition("@")
    return GRAM_POSITION << 60 | int(index) << 21 | ord(char)


def gram_codes(field_type: str, canonicals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`qgrams` as codes: ``(row, code)`` per q-gram occurrence of each value (a q-gram may
    repeat within a value; it sets the same bits twice, which changes nothing)."""
    count = len(canonicals)
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if "".join(canonicals).isascii():  # the common case, one C-level check for the whole batch
        cjk = np.zeros(count, dtype=bool)
    else:
        cjk = np.fromiter((_has_cjk(v) for v in canonicals), dtype=bool, count=count)
    spelled = list(canonicals)
    if field_type == "name" and cjk.any():
        for index in np.flatnonzero(cjk).tolist():
            spelled[index] = " ".join(names.name_pinyin(canonicals[index]))
    rows_out, codes_out = [], []
    points, lengths = _code_points(spelled)  # padded bigrams of the (spelled) value
    width = points.shape[1]
    padded = np.zeros((count, width + 2), dtype=np.int64)
    padded[:, 0] = 32
    padded[:, 1 : width + 1] = points
    padded[np.arange(count), lengths + 1] = 32
    positions = np.arange(width + 1)
    valid = positions[None, :] <= lengths[:, None]
    rows, columns = np.nonzero(valid)
    rows_out.append(rows)
    codes_out.append(padded[rows, columns] << 21 | padded[rows, columns + 1])
    if field_type in ("name", "text") and cjk.any():  # characters of values with Chinese characters
        chosen = np.flatnonzero(cjk)
        points, lengths = _code_points([canonicals[i] for i in chosen.tolist()])
        rows, columns = np.nonzero(np.arange(points.shape[1])[None, :] < lengths[:, None])
        rows_out.append(chosen[rows])
        codes_out.append(GRAM_CHAR << 60 | points[rows, columns])
    if field_type not in ("name", "text"):  # positional characters of dates, numbers and IDs
        points, lengths = _code_points(list(canonicals))
        rows, columns = np.nonzero(np.arange(points.shape[1])[None, :] < lengths[:, None])
        rows_out.append(rows)
        codes_out.append(GRAM_POSITION << 60 | columns.astype(np.int64) << 21 | points[rows, columns])
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(codes_out).astype(np.int64)


def _code_points(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(count, width)`` int64 code points (0-padded) and the length of each value."""
    text = np.asarray(values, dtype=np.str_) if len(values) else np.zeros(0, dtype="<U1")
    if text.dtype.itemsize == 0:  # every value empty
        text = text.astype("<U1")
    width = text.dtype.itemsize // 4
    lengths = np.strings.str_len(text).astype(np.int64)
    points = text.view(np.uint32).reshape(len(values), width)
    return points.astype(np.int64), lengths


class BloomEncoder:
    """Keyed field-level Bloom filters of one field: ``bits`` bits, ``k`` positions per (salt, q-gram).

    Positions of q-gram *g* (its :func:`gram_code`) under salt *s*: AES-256 under the field's Bloom key of the
    16-byte blocks ``code(g) as big-endian int64 | salt tag (6 bytes) | block number j (big-endian uint16)``
    for j = 0, 1, ...; each encrypted block gives 8 little-endian uint16, taken modulo ``bits`` (a power of two,
    so unbiased), the first ``k`` of them. The salt tag is the first 6 bytes of ``HMAC-SHA256(salt key, s)``, or
    six zero bytes without a salt. Both keys come from the field key: ``HMAC-SHA256(key, "aes" | "salt")``.
    One AES call per batch encrypts every block: no per-q-gram Python.
    """

    def __init__(self, key: bytes, field_type: str, bits: int, k: int) -> None:
        if bits & (bits - 1) or not 64 <= bits <= 4096:
            raise ValueError("Bloom filter size must be a power of two from 64 to 4096 bits")
        self.field_type = field_type
        self.bits = bits
        self.k = k
        self._blocks = -(-k // 8)
        self._cipher = Cipher(algorithms.AES(hmac.digest(key, b"aes", "sha256")), modes.ECB())
        self._salt_hmac = KeyedHmac(hmac.digest(key, b"salt", "sha256"))
        self._salt_tags: dict[str, bytes] = {}
        self._salt_numbers: dict[str, int] = {}

    def _salt_tag(self, salt: str) -> bytes:
        tag = self._salt_tags.get(salt)
        if tag is None:
            tag = self._salt_hmac.digest(salt.encode("utf-8"))[:6]
            if len(self._salt_tags) < 1_000_000:
                self._salt_tags[salt] = tag
        return tag

    def _salt_number(self, salt: str) -> int:
        """The salt tag read as a big-endian number (memoised with the tag: salts such as birth dates repeat)."""
        number = self._salt_numbers.get(salt)
        if number is None:
            number = int.from_bytes(self._salt_tag(salt), "big")
            if len(self._salt_numbers) < 1_000_000:
                self._salt_numbers[salt] = number
        return number

    def positions(self, codes: np.ndarray, salt_tags: np.ndarray) -> np.ndarray:
        """``(n, k)`` bit positions of q-gram codes under salt tags (``(n,)`` integers: the 6 tag bytes read as a
        big-endian number). Each 16-byte block is two big-endian 64-bit words: the code, then tag << 16 | j."""
        count = len(codes)
        blocks = np.empty((count, self._blocks, 2), dtype=">u8")
        blocks[:, :, 0] = codes.astype(np.int64).view(np.uint64)[:, None]
        blocks[:, :, 1] = (salt_tags.astype(np.uint64) << np.uint64(16))[:, None] | np.arange(self._blocks,
                                                                                               dtype=np.uint64)
        encrypted = encrypt_blocks(self._cipher, blocks.view(np.uint8).reshape(-1, 16))
        words = encrypted.view("<u2").reshape(count, self._blocks * 8)[:, : self.k]
        return words & np.uint16(self.bits - 1)

    def encode(self, canonicals: Sequence[str | None], salts: Sequence[str | None] | None = None) -> np.ndarray:
        """Packed filters, ``(n, bits // 8)`` uint8, bit *i* of a filter is bit ``i % 8`` of byte ``i // 8``; all
        zero where the value is None. Records whose salt value is missing are encoded unsalted."""
        value_codes, values = factorize(canonicals)
        if salts is None:
            return self.encode_coded(value_codes, values)
        return self.encode_coded(value_codes, values, *factorize(salts))

    def encode_coded(self, value_codes: np.ndarray, values: np.ndarray, salt_codes: np.ndarray | None = None,
                     salt_values: np.ndarray | None = None) -> np.ndarray:
        """:meth:`encode` of values given as codes into their distinct values (code -1: none), and salts likewise
        (code -1 or an empty salt: unsalted)."""
        count = len(value_codes)
        if salt_codes is None or salt_values is None or count == 0:
            salt_codes, salt_values = np.zeros(count, dtype=np.int64), np.array([""], dtype=object)
        else:  # a missing or empty salt encodes unsalted, like no salt at all
            salt_values = np.append(salt_values, "")
            salt_codes = np.where(salt_codes < 0, len(salt_values) - 1, salt_codes)
        # each distinct (value, salt) combination is encoded once; q-grams once per distinct value
        combined = np.where(value_codes < 0, -1, value_codes.astype(np.int64) * len(salt_values) + salt_codes)
        combinations, codes = np.unique(combined, return_inverse=True)
        present = combinations >= 0
        unique_values, unique_salts = combinations[present] // len(salt_values), combinations[present] % len(salt_values)
        tags = np.array([self._salt_number(salt) if salt else 0 for salt in salt_values.tolist()], dtype=np.uint64)
        value_rows, value_grams = gram_codes(self.field_type, values.tolist())
        # q-grams of each combination: those of its value, repeated per combination holding the value
        order = np.argsort(value_rows, kind="stable")
        value_rows, value_grams = value_rows[order], value_grams[order]
        starts = np.searchsorted(value_rows, np.arange(len(values) + 1))
        per_value = np.diff(starts)
        per_combination = per_value[unique_values]
        rows = np.repeat(np.arange(len(unique_values)), per_combination)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(per_combination) - per_combination, per_combination)
        gram = value_grams[np.repeat(starts[unique_values], per_combination) + offsets]
        filled = np.zeros((len(unique_values) + 1) * self.bits, dtype=bool)  # last row: the empty filter
        if len(gram):
            index_type = np.int32 if len(filled) < 2**31 else np.int64  # half the memory traffic when it fits
            flat = self.positions(gram, tags[unique_salts[rows]]).astype(index_type)
            np.add(flat, (rows.astype(index_type) * self.bits)[:, None], out=flat)
            filled[flat.ravel()] = True
        packed = np.packbits(filled.reshape(len(unique_values) + 1, self.bits), axis=1, bitorder="little")
        # a missing value (combination -1, first when present) maps to the last, empty row
        row_of_combination = np.where(present, np.cumsum(present) - 1, len(unique_values))
        return packed[row_of_combination[codes]]


def popcounts(filters: np.ndarray) -> np.ndarray:
    """Set bits per packed filter row."""
    return np.bitwise_count(filters.view(np.uint8)).sum(axis=1, dtype=np.int64)
