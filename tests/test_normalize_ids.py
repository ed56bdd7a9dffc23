"""ID numbers: canonical form, GB 11643 validation, 15→18 upgrade, and the helpers near tokens rely on."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from matchkit.normalize.ids import (
    GB11643_TYPES,
    ID_STATUSES,
    ID_TYPES,
    IdResult,
    birth_date_from_id,
    check_char,
    id_body17,
    normalize_id,
    normalize_id_type,
    upgrade_15,
)

TODAY = dt.date(2024, 6, 30)
GB_EXAMPLE = "11010519491231002X"  # the worked example of GB 11643-1999


def make_id(region: str = "110105", birth: str = "19900307", seq: str = "457") -> str:
    body = region + birth + seq
    return body + check_char(body)


def norm(raw: object, id_type: object = "resident") -> IdResult:
    return normalize_id(raw, id_type, today=TODAY)


# --- arithmetic ---------------------------------------------------------------------------------------------


def test_check_char_of_the_standard_example() -> None:
    assert check_char("11010519491231002") == "X"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "44052418800101001",
            "4",
        ),  # hand-computed: 4*7+4*9+0+5*5+2*8+4*4+1*2+8*1+8*6+0+0+1*9+0+1*5+0+0+1*2 = 195
        ("00000000000000000", "1"),  # sum 0 → index 0 → "1"
    ],
)
def test_check_char_known_values(body: str, expected: str) -> None:
    assert check_char(body) == expected


@pytest.mark.parametrize(
    "bad", ["", "1234", "1101051949123100X", "110105194912310021", "１１０１０５１９４９１２３１００２"]
)
def test_check_char_refuses_non_bodies(bad: str) -> None:
    with pytest.raises(ValueError):
        check_char(bad)


def test_upgrade_15_known_pair() -> None:
    # 15-digit 110105491231002 is the legacy form of the standard example 11010519491231002X.
    assert upgrade_15("110105491231002") == GB_EXAMPLE


def test_upgrade_15_refuses_other_lengths() -> None:
    with pytest.raises(ValueError):
        upgrade_15("11010549123100")


# --- canonical spellings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        GB_EXAMPLE,
        "11010519491231002x",
        " 11010519491231002X\t",
        "１１０１０５１９４９１２３１００２Ｘ",
        "１１０１０５１９４９１２３１００２ｘ",
        "110105 19491231 002X",
        "110105-19491231-002x",
        "\u200b11010519491231002X\ufeff",
        "'11010519491231002X",
        '="11010519491231002X"',
        '"11010519491231002X"',
        "110105491231002",  # legacy 15 digits
        "110105491231002.0",  # legacy 15 digits through a float column
        110105491231002,
        110105491231002.0,
    ],
)
def test_spellings_of_one_id_normalise_to_it(raw: object) -> None:
    assert norm(raw) == IdResult(GB_EXAMPLE, "ok")


def test_int_input_of_a_valid_numeric_id() -> None:
    valid = make_id()
    assert valid[-1] != "X"
    assert norm(int(valid)) == IdResult(valid, "ok")


@pytest.mark.parametrize("raw", [None, float("nan"), "", "   ", "nan", "NULL", "None", "\u3000", "-"])
def test_empty(raw: object) -> None:
    assert norm(raw) == IdResult(None, "empty")


def test_pandas_missing_values_are_empty() -> None:
    pd = pytest.importorskip("pandas")
    assert norm(pd.NA).status == "empty"
    assert norm(pd.NaT).status == "empty"


@pytest.mark.parametrize(
    "raw",
    [
        "1.10105E+17",
        "1.10105e+17",
        "1.1010519491231002e+17",
        "1,10105E+17",
        1.1010519491231002e17,  # a float cannot hold 18 digits
        "110105199003074576.0",  # float64-representable 18 digits + .0: may be a rounded float
    ],
)
def test_excel_damage_is_never_repaired(raw: object) -> None:
    assert norm(raw) == IdResult(None, "excel_damage")


def test_dot_zero_on_an_18_digit_number_no_float_can_hold_is_lossless() -> None:
    valid = make_id()
    assert float(int(valid)) != int(valid)  # not representable, so the text was not printed from a float
    assert norm(valid + ".0") == IdResult(valid, "ok")


@pytest.mark.parametrize(
    "raw",
    [
        "1101051949123100",
        "11010519491231002",
        "1101051949123100201",
        "11010519491231002Y",
        "X1010519491231002X",
        "11010519491231002X.5",
        "abc",
        "１１０１０５１９４９１２３１００２?",
        "110105491231002X",
    ],
)
def test_bad_format(raw: str) -> None:
    assert norm(raw) == IdResult(None, "bad_format")


# --- validation statuses ------------------------------------------------------------------------------------


def test_bad_checksum_keeps_the_value() -> None:
    wrong = GB_EXAMPLE[:17] + "1"
    assert norm(wrong) == IdResult(wrong, "bad_checksum")


@pytest.mark.parametrize(
    "birth", ["19900230", "19901301", "19900001", "18991231", "20240701", "20990101", "00000101"]
)
def test_bad_date_keeps_the_value(birth: str) -> None:
    value = make_id(birth=birth)
    assert norm(value) == IdResult(value, "bad_date")


def test_birth_today_is_allowed_tomorrow_is_not() -> None:
    assert norm(make_id(birth="20240630")).status == "ok"
    assert norm(make_id(birth="20240701")).status == "bad_date"


def test_leap_day() -> None:
    assert norm(make_id(birth="20000229")).status == "ok"
    assert norm(make_id(birth="19000229")).status == "bad_date"
    assert norm(make_id(birth="19960229")).status == "ok"
    assert norm(make_id(birth="19970229")).status == "bad_date"


@pytest.mark.parametrize(
    "region",
    [
        "000000",
        "100000",
        "160000",
        "240000",
        "380000",
        "470000",
        "550000",
        "660000",
        "700000",
        "720000",
        "800000",
        "840000",
        "900000",
        "970000",
        "910000",
    ],
)
def test_bad_region_keeps_the_value(region: str) -> None:
    value = make_id(region=region)
    assert norm(value) == IdResult(value, "bad_region")


def test_check_order_is_format_region_date_checksum() -> None:
    # Wrong region, impossible date and wrong check char together: region is reported.
    body = "99" + "0105" + "19901345" + "457"
    everything_wrong = body + ("0" if check_char(body) != "0" else "1")
    assert norm(everything_wrong).status == "bad_region"
    body = "110105" + "19901345" + "457"
    date_and_checksum_wrong = body + ("0" if check_char(body) != "0" else "1")
    assert norm(date_and_checksum_wrong).status == "bad_date"


@pytest.mark.parametrize("prefix", ["810000", "820000", "830000", "710000"])
@pytest.mark.parametrize("id_type", ["resident", "hmt_residence", "港澳台居民居住证"])
def test_hmt_residence_permit_prefixes(prefix: str, id_type: str) -> None:
    value = make_id(region=prefix, birth="19850101", seq="001")
    assert norm(value, id_type) == IdResult(value, "ok")


@pytest.mark.parametrize("id_type", ["foreign_permanent", "resident", "外国人永久居留身份证"])
def test_new_foreigner_permanent_residence_id(id_type: str) -> None:
    value = make_id(region="931840", birth="19800515", seq="012")  # 9 + Shanghai 31 + nationality 840
    assert norm(value, id_type) == IdResult(value, "ok")


def test_gb11643_types_share_one_rule() -> None:
    value = make_id()
    assert {norm(value, t) for t in GB11643_TYPES} == {IdResult(value, "ok")}


def test_today_default_is_the_real_today() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert normalize_id(make_id(birth=tomorrow.strftime("%Y%m%d"))).status == "bad_date"
    assert normalize_id(make_id(birth="20000101")).status == "ok"


# --- opaque types and type names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "id_type", "expected"),
    [
        ("E12345678", "passport", "E12345678"),
        (" e1234 5678 ", "中国护照", "E12345678"),
        ("ｅ１２３４５６７８", "护照", "E12345678"),
        ("H-1234-5678", "hmt_permit", "H12345678"),
        ("12345678", "台湾居民来往大陆通行证", "12345678"),
        (12345678.0, "hmt_permit", "12345678"),
        ("p1234567", "foreign_passport", "P1234567"),
        ("军字第0012345号", "other", "军字第0012345号"),
    ],
)
def test_opaque_types_are_canonical_text(raw: object, id_type: str, expected: str) -> None:
    assert norm(raw, id_type) == IdResult(expected, "ok")


@pytest.mark.parametrize("raw", ["E1", "E123?5678", "E1234567/8"])
def test_opaque_bad_format(raw: str) -> None:
    assert norm(raw, "passport") == IdResult(None, "bad_format")


def test_opaque_number_in_scientific_notation_is_damage() -> None:
    assert norm("1.2345678E+07", "hmt_permit") == IdResult(None, "excel_damage")


def test_opaque_types_do_not_validate_gb11643() -> None:
    wrong = GB_EXAMPLE[:17] + "1"
    assert norm(wrong, "passport") == IdResult(wrong, "ok")


def test_unknown_type() -> None:
    assert norm(GB_EXAMPLE, "driving licence") == IdResult(None, "unknown_type")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "resident"),
        ("", "resident"),
        (float("nan"), "resident"),
        ("  ", "resident"),
        ("居民身份证", "resident"),
        ("身份证", "resident"),
        ("大陆居民身份证", "resident"),
        ("resident", "resident"),
        (" Resident ", "resident"),
        ("港澳台居民居住证", "hmt_residence"),
        ("台湾居民居住证", "hmt_residence"),
        ("外国人永久居留身份证", "foreign_permanent"),
        ("外国人永久居留证", "foreign_permanent"),
        ("外国人永久居留身份证（外国人永久居留证）", "foreign_permanent"),
        ("中国护照", "passport"),
        ("护照", "passport"),
        ("港澳居民来往内地通行证", "hmt_permit"),
        ("台湾居民来往大陆通行证", "hmt_permit"),
        ("外籍护照", "foreign_passport"),
        ("外国护照", "foreign_passport"),
        ("其他", "other"),
        ("驾驶证", None),
        ("xyz", None),
        (3, None),
    ],
)
def test_normalize_id_type(raw: object, expected: str | None) -> None:
    assert normalize_id_type(raw) == expected


def test_every_canonical_type_and_alias_round_trips() -> None:
    for canonical, aliases in ID_TYPES.items():
        assert normalize_id_type(canonical) == canonical
        for alias in aliases:
            assert normalize_id_type(alias) == canonical


# --- body and birth date helpers ----------------------------------------------------------------------------


def test_id_body17_of_valid_and_invalid_shapes() -> None:
    assert id_body17(GB_EXAMPLE) == "11010519491231002"
    assert id_body17(GB_EXAMPLE[:17] + "1") == "11010519491231002"  # bad checksum still has a body
    assert id_body17(make_id(region="990000")) == make_id(region="990000")[:17]
    assert id_body17("E12345678") is None
    assert id_body17(None) is None
    assert id_body17("11010519491231002x") is None  # canonical values only


def test_birth_date_from_id() -> None:
    assert birth_date_from_id(GB_EXAMPLE) == dt.date(1949, 12, 31)
    assert birth_date_from_id(make_id(birth="20000229")) == dt.date(2000, 2, 29)
    assert birth_date_from_id(make_id(birth="19900230")) is None
    assert birth_date_from_id("E12345678") is None
    assert birth_date_from_id(None) is None


# --- properties ---------------------------------------------------------------------------------------------

_regions = st.sampled_from(
    ["11", "12", "13", "31", "37", "44", "46", "50", "54", "65", "71", "81", "82", "83"]
)
_births = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        region = draw(_regions) + draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    else:  # foreigner permanent residence: 9 + mainland province + 3-digit nationality
        region = (
            "9"
            + draw(st.sampled_from(["11", "31", "44", "65"]))
            + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
        )
    birth = draw(_births).strftime("%Y%m%d")
    seq = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    return make_id(region, birth, seq)


@given(valid_ids())
def test_valid_ids_round_trip(value: str) -> None:
    assert norm(value) == IdResult(value, "ok")
    assert norm(value.lower()) == IdResult(value, "ok")
    assert id_body17(value) == value[:17]
    assert birth_date_from_id(value) == dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


@given(valid_ids(), st.integers(0, 16), st.integers(1, 9))
def test_any_single_digit_change_is_caught(value: str, position: int, delta: int) -> None:
    digit = (int(value[position]) + delta) % 10
    changed = value[:position] + str(digit) + value[position + 1 :]
    result = norm(changed)
    assert result.status != "ok"
    assert result.value == changed  # still carries its value for near tokens
    # Recomputing the check char "repairs" the checksum, never the region or date.
    recomputed = changed[:17] + check_char(changed[:17])
    assert norm(recomputed).status in {"ok", "bad_region", "bad_date"}


@given(valid_ids(), st.integers(0, 15))
def test_adjacent_swap_of_different_digits_is_caught(value: str, position: int) -> None:
    a, b = value[position], value[position + 1]
    assume(a != b)
    swapped = value[:position] + b + a + value[position + 2 :]
    assert norm(swapped).status != "ok"


@given(
    st.sampled_from(["11", "31", "44", "65"]),
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1999, 12, 31)),
    st.from_regex(r"[0-9]{3}", fullmatch=True),
)
def test_15_to_18_upgrade_is_valid(province: str, county: str, birth: dt.date, seq: str) -> None:
    legacy = province + county + birth.strftime("%y%m%d") + seq
    upgraded = upgrade_15(legacy)
    assert len(upgraded) == 18
    assert upgraded[:6] == legacy[:6] and upgraded[6:8] == "19" and upgraded[8:17] == legacy[6:]
    assert norm(upgraded) == IdResult(upgraded, "ok")
    assert norm(legacy) == IdResult(upgraded, "ok")


_anything = st.one_of(
    st.text(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.binary(),
    st.booleans(),
    st.dates(),
    st.from_regex(r"[0-9xX .\-eE+]{0,25}", fullmatch=True),
)
_type_names = st.one_of(st.sampled_from([*ID_TYPES, "bogus", None, "", "护照"]), st.text(max_size=5))


@given(_anything, _type_names)
def test_never_raises_and_status_is_known(raw: object, id_type: object) -> None:
    result = normalize_id(raw, id_type)
    assert isinstance(result, IdResult)
    assert result.status in ID_STATUSES
    if result.status in {"empty", "excel_damage", "bad_format", "unknown_type"}:
        assert result.value is None
    else:
        assert isinstance(result.value, str) and result.value


@given(st.floats(min_value=1e16, max_value=1e18), st.sampled_from(sorted(GB11643_TYPES)))
def test_floats_too_large_to_be_exact_are_excel_damage(raw: float, id_type: str) -> None:
    assert norm(raw, id_type) == IdResult(None, "excel_damage")


@given(_anything, st.sampled_from(list(ID_TYPES)))
def test_normalising_twice_changes_nothing(raw: object, id_type: str) -> None:
    first = norm(raw, id_type)
    if first.value is not None:
        assert norm(first.value, id_type) == first


@given(st.text())
def test_helpers_never_raise(raw: str) -> None:
    id_body17(raw)
    birth_date_from_id(raw)
    normalize_id_type(raw)
