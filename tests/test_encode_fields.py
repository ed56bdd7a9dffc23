"""Field encodings of linkage schemas: normalisers per field type, q-grams, blocking transforms, keyed exact and
blocking tokens, and hardened Bloom filters (matchkit.encode.fields), plus the per-field sub-keys of
LinkTableEncoder."""

from __future__ import annotations

import datetime as dt
import hmac

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from matchkit.encode import fields
from matchkit.encode.fields import (
    MAX_FIELD_CHARS,
    NORMALISERS,
    BloomEncoder,
    blocking_part,
    blocking_tokens,
    exact_tokens,
    kept_invalid,
    normalize_date,
    normalize_id,
    normalize_name,
    normalize_number,
    normalize_text,
    popcounts,
    qgrams,
)
from matchkit.encode.fields_table import LinkTableEncoder
from matchkit.encode.person import Encoder
from matchkit.io.readers import Chunk
from matchkit.link.compare import dice
from matchkit.link.token_columns import arrow_tokens
from matchkit.normalize.values import clean_text
from matchkit.schema import parse_schema
from matchkit.security.keys import SharedKey

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

# Any cell value a reader or a caller could hand over.
any_cell = st.one_of(
    st.none(), st.text(max_size=40), st.integers(), st.floats(), st.booleans(), st.binary(max_size=20),
    st.dates(), st.just(float("nan")),
)
# Text whose upper/lower case mapping is a round trip (Latin-1 letters, spaces, punctuation, a few CJK names):
# outside such alphabets Unicode case mapping is not reversible (dotless i), so "case-insensitive" means nothing.
case_text = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCXYZéÉüÜñÑçÇøØß -'.,")
                                             + ["张", "伟", "張", "偉", "李"]), max_size=25)


# --- normalisers: expectations ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    ("Mary-Jane O'Brien", "mary jane obrien"),
    ("  MARY   jane  ", "mary jane"),
    ("O’Brien", "obrien"),
    ("José", "jose"),
    ("JOSÉ", "jose"),
    ("Jose\u0301", "jose"),  # decomposed accent
    ("Ｊｏｓé", "jose"),  # full-width letters
    ("Straße", "strasse"),
    ("張偉", "张伟"),
    ("张 伟", "张伟"),
    ("Smith, John", "smith john"),
])
def test_normalize_name_expectations(raw, expected):
    assert normalize_name(raw) == (expected, None)


def test_accented_and_plain_names_are_one_name():
    """What the code does with accents: they are dropped, so every spelling of José is one canonical value."""
    spellings = ["José", "Jose", "JOSE", "josé", "JOSÉ", "Jose\u0301", "Ｊｏｓé"]
    assert {normalize_name(s) for s in spellings} == {("jose", None)}


@pytest.mark.parametrize(("raw", "expected"), [
    ("12 Main St., Apt #3", "12 main st apt 3"),
    ("  Wattle   STREET ", "wattle street"),
    ("O'Connor Rd", "oconnor rd"),
    ("Ｍａｉｎ", "main"),
])
def test_normalize_text_expectations(raw, expected):
    assert normalize_text(raw) == (expected, None)


@pytest.mark.parametrize(("raw", "expected"), [
    ("02000", ("02000", None)),
    ("12.0", ("12", None)),
    ("12.50", ("12.5", None)),
    ("1,234", ("1234", None)),
    ("1 234", ("1234", None)),
    ("+5", ("5", None)),
    ("-3", ("-3", None)),
    (" 7 ", ("7", None)),
    ("abc", (None, "invalid_number")),
    ("1e5", (None, "invalid_number")),
    ("12a", (None, "invalid_number")),
    ("1.2.3", (None, "invalid_number")),
])
def test_normalize_number_expectations(raw, expected):
    assert normalize_number(raw) == expected


@pytest.mark.parametrize("raw", ["1956-04-16", "19560416", "1956年4月16日", "1956/04/16", "1956-4-16", "1956.4.16",
                                 19560416, dt.date(1956, 4, 16)])
def test_normalize_date_spellings(raw):
    assert normalize_date(raw) == ("19560416", None)


@pytest.mark.parametrize(("raw", "reason"), [
    ("19561332", "bad_date"),
    ("1956-02-30", "bad_date"),
    ("1899-12-31", "too_old"),
    ("2999-01-01", "future_date"),
    ("sometime", "bad_format"),
])
def test_normalize_date_rejects_with_a_reason(raw, reason):
    assert normalize_date(raw) == (None, reason)


@pytest.mark.parametrize(("raw", "expected"), [
    ("AB-123 456", ("AB123456", None)),
    ("ab/123.456", ("AB123456", None)),
    ("12345.0", ("12345", None)),
    ("  x9 ", ("X9", None)),
    ("AB_12", (None, "invalid_id")),
    ("12#34", (None, "invalid_id")),
    ("é1", (None, "invalid_id")),
])
def test_normalize_id_expectations(raw, expected):
    assert normalize_id(raw) == expected


def _normalize_id_without_fast_path(raw):
    text = clean_text(raw)
    if text is None:
        return None, None
    if len(text) > MAX_FIELD_CHARS:
        return None, "value_too_long"
    text = fields._ID_SEPARATORS.sub("", text.removesuffix(".0")).upper()
    if not text:
        return None, None
    if not fields._ID_CHARS.fullmatch(text):
        return None, "invalid_id"
    return fields._within_limit(text)


@given(st.text(alphabet="0123456789ABCxyzß. -/_é１", max_size=12))
@example("1234567")
@example("12.0")
@example("ABC")
@example("abc")
def test_normalize_id_fast_path_changes_nothing(raw):
    assert normalize_id(raw) == _normalize_id_without_fast_path(raw)


@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@pytest.mark.parametrize("blank", [None, "", "   ", "\t", float("nan"), "NULL", "n/a"])
def test_blank_is_missing_not_invalid(field_type, blank):
    assert NORMALISERS[field_type](blank) == (None, None)


@pytest.mark.parametrize("field_type", ["name", "text", "id"])
def test_overlong_values_are_refused(field_type):
    assert NORMALISERS[field_type]("a" * (MAX_FIELD_CHARS + 1)) == (None, "value_too_long")
    assert NORMALISERS[field_type]("a" * MAX_FIELD_CHARS)[1] is None


def test_kept_invalid_keeps_letters_and_digits():
    assert kept_invalid("1945-04-93") == "19450493"
    assert kept_invalid("19561332") == "19561332"
    assert kept_invalid("ab-c!") == "ABC"
    assert kept_invalid("!!") is None
    assert kept_invalid(None) is None


# --- normalisers: properties ------------------------------------------------------------------------------------
@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@given(raw=any_cell)
def test_normalisers_are_total(field_type, raw):
    canonical, reason = NORMALISERS[field_type](raw)
    assert canonical is None or (isinstance(canonical, str) and canonical)
    assert reason is None or (isinstance(reason, str) and canonical is None)


@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@given(raw=any_cell)
@example(raw="A畼")  # simplified to a CJK Extension B character (𪽈)
@example(raw="ß" * 300)  # case folding doubles its length past MAX_FIELD_CHARS
@example(raw="Mary-Jane O'Brien")
@example(raw="1956年4月16日")
def test_normalisers_are_idempotent(field_type, raw):
    normalise = NORMALISERS[field_type]
    canonical, _ = normalise(raw)
    if canonical is not None:
        assert normalise(canonical) == (canonical, None)


def test_name_normaliser_is_idempotent_on_a_name_simplified_outside_the_basic_cjk_blocks():
    """'畼' simplifies to U+2AF48 (CJK Extension B); the canonical name must still be recognised as Chinese."""
    canonical, _ = normalize_name("A畼")
    assert normalize_name(canonical) == (canonical, None)


@pytest.mark.parametrize("field_type", ["name", "text", "id"])
def test_canonical_of_an_accepted_value_is_accepted_again_whatever_its_length(field_type):
    """The length limit applies to the canonical value (case folding can grow it: ß -> ss), so a value accepted
    once is accepted again, and one whose folded form is too long is refused the first time."""
    assert NORMALISERS[field_type]("ß" * 300) == (None, "value_too_long")  # 600 characters once folded
    canonical, reason = NORMALISERS[field_type]("ß" * 250)
    assert reason is None and len(canonical) == 500
    assert NORMALISERS[field_type](canonical) == (canonical, None)


@pytest.mark.parametrize("field_type", ["name", "text", "id"])
@given(raw=case_text)
def test_case_insensitive(field_type, raw):
    normalise = NORMALISERS[field_type]
    assert normalise(raw.upper()) == normalise(raw) == normalise(raw.lower())


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=12))
def test_number_keeps_every_digit_of_an_integer(digits):
    assert normalize_number(digits) == (digits, None)
    assert normalize_number(digits + ".0") == (digits, None)


@given(day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)))
def test_every_date_spelling_gives_yyyymmdd(day):
    expected = (day.strftime("%Y%m%d"), None)
    assert normalize_date(day.isoformat()) == expected
    assert normalize_date(day.strftime("%Y%m%d")) == expected
    assert normalize_date(f"{day.year}年{day.month}月{day.day}日") == expected


# --- q-grams ----------------------------------------------------------------------------------------------------
def test_qgrams_of_a_name_are_padded_bigrams():
    assert qgrams("name", "jo") == [" j", "jo", "o "]
    assert set(qgrams("text", "anna")) == {" a", "an", "nn", "na", "a "}


def test_qgrams_of_a_date_are_positional_and_bigrams():
    grams = set(qgrams("date", "1956"))
    assert grams == {"1@0", "9@1", "5@2", "6@3", " 1", "19", "95", "56", "6 "}
    assert set(qgrams("date", "1965")) & grams == {"1@0", "9@1", " 1", "19"}


def test_qgrams_of_a_chinese_name_include_pinyin_and_characters():
    grams = set(qgrams("name", "张伟"))
    assert {"#张", "#伟", " z", "zh", "an", "ng", "we", "ei", "i "} <= grams
    assert set(qgrams("name", "章伟")) & grams >= {"#伟", " z", "zh", "ng"}  # a homophone shares its pinyin
    assert {"#张", "#伟", " 张", "张伟", "伟 "} <= set(qgrams("text", "张伟"))


TYPICAL_RAW = {  # raw spellings each field type mostly accepts (arbitrary text is mostly refused as a date)
    "date": st.tuples(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)),
                      st.sampled_from(["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"])).map(lambda pair: pair[0].strftime(pair[1])),
    "number": st.one_of(st.integers().map(str), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)),
    "id": st.text(alphabet="ABCXYZabc0123456789 -/.", min_size=1, max_size=20),
    "name": st.text(min_size=1, max_size=30),
    "text": st.text(min_size=1, max_size=30),
}


def canonical_values(field_type: str) -> st.SearchStrategy[str]:
    raw = st.one_of(TYPICAL_RAW[field_type], st.text(min_size=1, max_size=30))
    return raw.map(lambda value: NORMALISERS[field_type](value)[0]).filter(lambda value: value is not None)


@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@given(data=st.data())
def test_qgrams_deterministic_and_padded(field_type, data):
    canonical = data.draw(canonical_values(field_type))
    grams = qgrams(field_type, canonical)
    assert grams == qgrams(field_type, canonical)
    assert grams
    if not (field_type == "name" and fields._has_cjk(canonical)):  # a Chinese name is spelled in pinyin
        padded = f" {canonical} "
        assert {padded[i : i + 2] for i in range(len(padded) - 1)} <= set(grams)
    if field_type in ("date", "number", "id"):
        assert {f"{char}@{index}" for index, char in enumerate(canonical)} <= set(grams)


@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@given(data=st.data())
def test_gram_codes_are_the_codes_of_qgrams(field_type, data):
    """The vectorised q-gram codes agree with the reference q-grams, value by value, and no two q-grams of a
    value share a code."""
    values = data.draw(st.lists(canonical_values(field_type), min_size=1, max_size=6))
    rows, codes = fields.gram_codes(field_type, values)
    for row, value in enumerate(values):
        reference = set(qgrams(field_type, value))
        expected = {fields.gram_code(gram) for gram in reference}
        assert len(expected) == len(reference)
        assert set(codes[rows == row].tolist()) == expected


# --- blocking transforms ----------------------------------------------------------------------------------------
def test_phonetic_transforms():
    assert blocking_part("name", "soundex", "smith") == blocking_part("name", "soundex", "smyth") == "S530"
    assert blocking_part("name", "soundex", "smith") != blocking_part("name", "soundex", "jones")
    assert blocking_part("name", "nysiis", "catherine") == blocking_part("name", "nysiis", "katherine")
    assert blocking_part("name", "metaphone", "smith") == blocking_part("name", "metaphone", "smyth")
    # a Chinese name is keyed by its pinyin, so traditional/simplified and romanised spellings meet
    assert blocking_part("name", "soundex", "张伟") == blocking_part("name", "soundex", "zhang wei")
    assert blocking_part("name", "soundex", "ωμέγα") is None  # no Latin letters: no key in this pass


def test_positional_and_date_transforms():
    assert blocking_part("name", "first:3", "catherine") == "cat"
    assert blocking_part("name", "last:2", "catherine") == "ne"
    assert blocking_part("name", "first:3", "al") == "al"
    assert blocking_part("text", "exact", "wattle street") == "wattle street"
    assert blocking_part("date", "year", "19560416") == "1956"
    assert blocking_part("date", "year_month", "19560416") == "195604"
    assert blocking_part("date", "year", "19450493") == "1945"  # a kept invalid date still has its year
    assert blocking_part("date", "year", "ABC") is None


# --- exact tokens -----------------------------------------------------------------------------------------------
def test_exact_token_is_truncated_hmac():
    assert exact_tokens(KEY, ["smith"]) == [hmac.digest(KEY, b"smith", "sha256")[:16]]
    assert exact_tokens(KEY, [None, "a"])[0] is None


@given(values=st.lists(st.one_of(st.none(), st.sampled_from(["smith", "smyth", "jones", "张伟", ""]),
                                 st.text(max_size=8)), max_size=30))
def test_exact_tokens_equal_iff_values_equal(values):
    tokens = exact_tokens(KEY, values)
    assert len(tokens) == len(values)
    for value, token in zip(values, tokens):
        assert (token is None) == (value is None)
        if token is not None:
            assert isinstance(token, bytes) and len(token) == 16
    for i, first in enumerate(values):
        for j, second in enumerate(values):
            if first is not None and second is not None:
                assert (tokens[i] == tokens[j]) == (first == second)
    assert tokens == exact_tokens(KEY, values)
    present = [v for v in values if v is not None]
    if present:
        assert exact_tokens(OTHER_KEY, present) != exact_tokens(KEY, present)


# --- blocking tokens --------------------------------------------------------------------------------------------
part_value = st.one_of(st.none(), st.sampled_from(["S530", "1956", "cat", "a"]), st.text(max_size=6))


@given(first=st.lists(part_value, min_size=1, max_size=20), data=st.data())
def test_blocking_tokens_zero_iff_a_part_is_missing(first, data):
    second = data.draw(st.lists(part_value, min_size=len(first), max_size=len(first)))
    tokens = blocking_tokens(KEY, "pass", [first, second])
    assert tokens.dtype == np.int64 and tokens.shape == (len(first),)
    for index, (a, b) in enumerate(zip(first, second)):
        if a is None or b is None:
            assert tokens[index] == 0
        else:
            assert tokens[index] != 0
            for other, (c, d) in enumerate(zip(first, second)):
                if c is not None and d is not None:
                    assert (tokens[index] == tokens[other]) == ((a, b) == (c, d))


def test_blocking_tokens_depend_on_pass_key_and_part_boundaries():
    base = blocking_tokens(KEY, "p", [["ab"], ["c"]])
    assert base[0] != blocking_tokens(KEY, "q", [["ab"], ["c"]])[0]
    assert base[0] != blocking_tokens(OTHER_KEY, "p", [["ab"], ["c"]])[0]
    assert base[0] != blocking_tokens(KEY, "p", [["a"], ["bc"]])[0]
    assert base[0] == blocking_tokens(KEY, "p", [["ab", "ab"], ["c", "c"]])[1]
    assert blocking_tokens(KEY, "p", []).shape == (0,)


def test_blocking_token_that_would_be_zero_is_remapped(monkeypatch):
    monkeypatch.setattr(fields.KeyedHmac, "digests", lambda self, messages, size=32: [bytes(size) for _ in messages])
    assert blocking_tokens(KEY, "p", [["x", None]]).tolist() == [1, 0]


# --- Bloom filters ----------------------------------------------------------------------------------------------
def dice_numpy(a: np.ndarray, b: np.ndarray) -> float:
    pa_, pb = int(np.bitwise_count(a).sum()), int(np.bitwise_count(b).sum())
    return 2 * int(np.bitwise_count(a & b).sum()) / (pa_ + pb)


def dice_matchkit(a: np.ndarray, b: np.ndarray) -> float:
    column = arrow_tokens(pa.array([a.tobytes(), b.tobytes()], type=pa.binary(len(a))))
    return float(dice(column, column, np.array([0]), np.array([1]))[0])


def test_bloom_shape_and_empty_rows():
    encoder = BloomEncoder(KEY, "name", 512, 16)
    filters = encoder.encode(["catherine", None, "robert", "catherine"])
    assert filters.shape == (4, 64) and filters.dtype == np.uint8
    assert not filters[1].any()
    assert (filters[0] == filters[3]).all()
    assert not (filters[0] == filters[2]).all()
    assert encoder.encode([]).shape == (0, 64)


@pytest.mark.parametrize("bits", [63, 100, 32, 8192])
def test_bloom_size_must_be_a_power_of_two_in_range(bits):
    with pytest.raises(ValueError, match="power of two"):
        BloomEncoder(KEY, "name", bits, 16)


def reference_bloom(key: bytes, field_type: str, value: str, salt: str | None, bits: int, k: int) -> np.ndarray:
    """The documented construction, written out: AES-256 (key HMAC(key, "aes")) of the blocks
    ``code(g) big-endian int64 | salt tag | block number big-endian uint16``; 8 little-endian uint16 per block,
    modulo ``bits``, the first ``k``. Salt tag: HMAC(HMAC(key, "salt"), salt)[:6], or 6 zero bytes."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    aes = Cipher(algorithms.AES(hmac.digest(key, b"aes", "sha256")), modes.ECB()).encryptor()
    tag = hmac.digest(hmac.digest(key, b"salt", "sha256"), salt.encode(), "sha256")[:6] if salt else bytes(6)
    dense = np.zeros(bits, dtype=bool)
    for gram in qgrams(field_type, value):
        code = fields.gram_code(gram).to_bytes(8, "big", signed=True)
        words: list[int] = []
        for block in range(-(-k // 8)):
            encrypted = aes.update(code + tag + block.to_bytes(2, "big"))
            words += np.frombuffer(encrypted, dtype="<u2").tolist()
        for word in words[:k]:
            dense[word % bits] = True
    return dense


@pytest.mark.parametrize(("field_type", "value"), [("name", "catherine"), ("name", "张伟"), ("date", "19560416"),
                                                   ("text", "12 wattle street")])
@pytest.mark.parametrize("salt", [None, "19560416"])
@pytest.mark.parametrize("k", [8, 20])  # 20 positions need a third AES block
def test_bloom_matches_its_documented_construction(field_type, value, salt, k):
    encoded = BloomEncoder(KEY, field_type, 256, k).encode([value], [salt] if salt else None)
    expected = reference_bloom(KEY, field_type, value, salt, 256, k)
    assert (np.unpackbits(encoded[0], bitorder="little").astype(bool) == expected).all()


@given(rows=st.lists(st.tuples(st.sampled_from(["catherine", "jo", "anne marie", "张伟", None]),
                                st.sampled_from(["19560416", "1956", "", None])), max_size=12),
       salted=st.booleans(), k=st.sampled_from([4, 16, 20]), bits=st.sampled_from([64, 512]))
@example(rows=[(None, "1956"), ("jo", None), ("jo", ""), ("jo", "1956"), ("jo", "1956")], salted=True, k=16, bits=512)
def test_bloom_batch_equals_the_construction_row_by_row(rows, salted, k, bits):
    """Repeated values, repeated salts, missing values and missing salts in one batch: each row is exactly the filter
    of its own (value, salt), as the documented construction builds it alone."""
    values = [value for value, _ in rows]
    salts = [salt for _, salt in rows] if salted else None
    encoded = BloomEncoder(KEY, "name", bits, k).encode(values, salts)
    assert encoded.shape == (len(rows), bits // 8)
    for index, (value, salt) in enumerate(rows):
        expected = (np.zeros(bits, dtype=bool) if value is None
                    else reference_bloom(KEY, "name", value, salt if salted else None, bits, k))
        assert (np.unpackbits(encoded[index], bitorder="little").astype(bool) == expected).all()


@pytest.mark.parametrize("field_type", sorted(NORMALISERS))
@given(raw=st.text(min_size=1, max_size=30), k=st.integers(1, 40),
       bits=st.sampled_from([64, 128, 256, 512, 1024]))
def test_bloom_popcount_bounded_by_k_per_qgram(field_type, raw, k, bits):
    canonical, _ = NORMALISERS[field_type](raw)
    if canonical is None:
        return
    encoder = BloomEncoder(KEY, field_type, bits, k)
    filters = encoder.encode([canonical, canonical])
    count = int(popcounts(filters)[0])
    assert 0 < count <= min(k * len(qgrams(field_type, canonical)), bits)
    assert (filters[0] == filters[1]).all()
    assert (BloomEncoder(KEY, field_type, bits, k).encode([canonical]) == filters[:1]).all()  # deterministic


def test_bloom_salts():
    encoder = BloomEncoder(KEY, "name", 512, 16)
    same = encoder.encode(["catherine", "catherine"], ["1956", "1956"])
    assert (same[0] == same[1]).all()
    other = encoder.encode(["catherine", "catherine"], ["1956", "1957"])
    assert dice_numpy(other[0], other[1]) < 0.5  # unrelated filters, not merely different
    unsalted = encoder.encode(["catherine"])
    assert dice_numpy(unsalted[0], same[0]) < 0.5
    # a record whose salt value is missing is encoded unsalted
    assert (encoder.encode(["catherine"], [None]) == unsalted).all()
    assert not encoder.encode([None], ["1956"]).any()


def test_bloom_depends_on_the_key():
    a = BloomEncoder(KEY, "name", 512, 16).encode(["catherine"])
    b = BloomEncoder(OTHER_KEY, "name", 512, 16).encode(["catherine"])
    assert dice_numpy(a[0], b[0]) < 0.5


def test_dice_separates_similar_from_different_names():
    filters = BloomEncoder(KEY, "name", 512, 16).encode(["catherine", "katherine", "robert"])
    similar = dice_matchkit(filters[0], filters[1])
    different = dice_matchkit(filters[0], filters[2])
    assert similar == pytest.approx(dice_numpy(filters[0], filters[1]))
    assert different == pytest.approx(dice_numpy(filters[0], filters[2]))
    assert similar > 0.75
    assert different < 0.45
    assert similar - different > 0.35
    assert dice_matchkit(filters[0], filters[0]) == 1.0


@given(a=st.text(alphabet="abcdefghij ", min_size=1, max_size=12),
       b=st.text(alphabet="abcdefghij ", min_size=1, max_size=12))
def test_dice_symmetric_in_unit_interval_and_agrees_with_numpy(a, b):
    filters = BloomEncoder(KEY, "text", 256, 8).encode([a, b])
    if not filters[0].any() or not filters[1].any():
        return
    score = dice_matchkit(filters[0], filters[1])
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(dice_matchkit(filters[1], filters[0]))
    assert score == pytest.approx(dice_numpy(filters[0], filters[1]))
    if a == b:
        assert score == 1.0


# --- LinkTableEncoder: per-field sub-keys -----------------------------------------------------------------------
TWO_NAMES = {
    "source": {"name": "two", "kind": "link", "purpose": "test-linkage", "record_id": "rid"},
    "columns": [
        {"name": "rid", "type": "record_id"},
        {"name": "given_name", "type": "name"},
        {"name": "surname", "type": "name"},
        {"name": "dob", "type": "date", "encodings": ["exact"]},
    ],
    "blocking": [{"name": "g", "keys": ["given_name:soundex"]}, {"name": "s", "keys": ["surname:soundex"]}],
}


def encode_rows(document: dict, rows: dict[str, list[str]], key_secret: bytes = KEY,
                purpose: str = "test-linkage") -> tuple[pa.Table, list[tuple[int, str, str]]]:
    schema = parse_schema(document)
    encoder = LinkTableEncoder(schema, Encoder(SharedKey("mk-t", key_secret), purpose, "mk1"))
    size = len(next(iter(rows.values())))
    chunk = Chunk({name: np.array(values, dtype=object) for name, values in rows.items()},
                  np.arange(2, 2 + size))
    return encoder.encode(chunk)


def test_same_value_in_two_fields_gives_different_tokens():
    table, faults = encode_rows(TWO_NAMES, {"rid": ["1"], "given_name": ["morgan"], "surname": ["Morgan"],
                                            "dob": ["1956-04-16"]})
    assert faults == []
    row = table.to_pylist()[0]
    assert row["given_name_tok"] != row["surname_tok"]
    assert row["given_name_bf"] != row["surname_bf"]
    assert dice_numpy(np.frombuffer(row["given_name_bf"], np.uint8),
                      np.frombuffer(row["surname_bf"], np.uint8)) < 0.5
    assert row["_blk_g"] != row["_blk_s"]  # the pass name is part of the blocking key
    assert row["rid"] == "1"


def test_encodings_are_deterministic_and_keyed():
    rows = {"rid": ["1", "2"], "given_name": ["Mary-Jane", "mary jane"], "surname": ["O'Brien", "OBRIEN"],
            "dob": ["1956-04-16", "19560416"]}
    first, _ = encode_rows(TWO_NAMES, rows)
    again, _ = encode_rows(TWO_NAMES, rows)
    other_key, _ = encode_rows(TWO_NAMES, rows, key_secret=OTHER_KEY)
    other_purpose, _ = encode_rows(TWO_NAMES, rows, purpose="another-linkage")
    assert first.equals(again)
    tokens = first.column("surname_tok").to_pylist()
    assert tokens[0] == tokens[1]  # two spellings of one name
    assert first.column("dob_tok").to_pylist()[0] == first.column("dob_tok").to_pylist()[1]
    for other in (other_key, other_purpose):
        for column in ("given_name_tok", "surname_tok", "given_name_bf", "dob_tok", "_blk_g"):
            assert other.column(column).to_pylist()[0] != first.column(column).to_pylist()[0]


def test_layout_of_the_encoded_table():
    table, _ = encode_rows(TWO_NAMES, {"rid": ["1", "2"], "given_name": ["ann", ""], "surname": ["lee", "ωμέγα"],
                                       "dob": ["", "1956-04-16"]})
    assert table.schema.names == ["_line", "rid", "given_name_tok", "given_name_bf", "surname_tok", "surname_bf",
                                  "dob_tok", "_blk_g", "_blk_s"]
    assert table.schema.field("given_name_tok").type == pa.binary(16)
    assert table.schema.field("given_name_bf").type == pa.binary(64)
    assert table.column("_line").to_pylist() == [2, 3]
    # a missing value is a null cell in every encoding, and no blocking key
    assert table.column("given_name_tok").to_pylist()[1] is None
    assert table.column("given_name_bf").to_pylist()[1] is None
    assert table.column("_blk_g").to_pylist()[1] is None
    assert table.column("dob_tok").to_pylist()[0] is None
    assert table.column("_blk_s").to_pylist()[1] is None  # a Greek surname has no soundex
    assert table.column("surname_bf").to_pylist()[1] is not None


def test_row_faults_reject_or_keep():
    document = {**TWO_NAMES, "columns": [*TWO_NAMES["columns"][:3],
                                         {"name": "dob", "type": "date", "on_invalid": "keep"},
                                         {"name": "ssn", "type": "id", "required": True}]}
    schema = parse_schema(document)
    encoder = LinkTableEncoder(schema, Encoder(SharedKey("mk-t", KEY), "test-linkage", "mk1"))
    chunk = Chunk({"rid": np.array(["1", "2", "3", ""], dtype=object),
                   "given_name": np.array(["a", "b", "c", "d"], dtype=object),
                   "surname": np.array(["x", "y", "z", "w"], dtype=object),
                   "dob": np.array(["19561332", "1956-04-16", "", "1956-04-16"], dtype=object),
                   "ssn": np.array(["AB-1", "12#4", "", "C3"], dtype=object)}, np.array([2, 3, 4, 5]))
    table, faults = encoder.encode(chunk)
    assert faults == [(3, "ssn", "invalid_id"), (4, "ssn", "missing_value"), (5, "rid", "missing_value")]
    assert table.column("rid").to_pylist() == ["1"]
    assert table.column("dob_tok").to_pylist()[0] is not None  # the invalid date was kept, not rejected
    assert encoder.take_notes() == {"kept_invalid:dob": 1}
    assert encoder.take_notes() == {}


def test_required_field_with_only_punctuation_is_missing_even_when_invalid_values_are_kept():
    """'!!' is not a number; with on_invalid = keep it keeps no letters or digits, so the required field is
    empty and the row must be rejected, not hashed with the required field missing."""
    document = {**TWO_NAMES, "columns": [*TWO_NAMES["columns"],
                                         {"name": "postcode", "type": "number", "on_invalid": "keep",
                                          "required": True}]}
    table, faults = encode_rows(document, {"rid": ["1"], "given_name": ["a"], "surname": ["b"], "dob": [""],
                                           "postcode": ["!!"]})
    assert table.num_rows == 0
    assert faults == [(2, "postcode", "missing_value")]


@pytest.mark.parametrize("raw", ["-0", "+0", "0", "-0.0", "0.0"])
def test_every_spelling_of_zero_is_one_number(raw):
    assert normalize_number(raw) == ("0", None)


@given(st.lists(st.sampled_from(["ann", "anne", "bob", None, "ANN"]), max_size=15))
def test_coded_columns_remap_like_a_plain_list(values):
    """A coded column (codes into distinct values) mapped value by value equals the plain list mapped row by row."""
    import pandas as pd

    from matchkit.encode.fields_table import Coded

    codes, distinct = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
    coded = Coded(codes, np.asarray(distinct, dtype=object))

    def first_letter(value):
        return value[0].lower() if value != "bob" else None  # several values meet, one maps to nothing

    mapped = coded.remap([first_letter(v) for v in coded.values.tolist()])
    expected = [None if v is None else first_letter(v) for v in values]
    assert [None if code < 0 else mapped.values[code] for code in mapped.codes.tolist()] == expected
    assert len(set(mapped.values.tolist())) == len(mapped.values)  # equal results share one code
