"""Clear attribute values: codes with their Chinese aliases, yes/no, shares, amounts, years, text coercion."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchkit.normalize.values import (
    DEDUCTION_CODES,
    EVENT_CODES,
    RELATION_CODES,
    STAGE_CODES,
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


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("children_education", "children_education"),
        ("子女教育", "children_education"),
        (" 子女教育 ", "children_education"),
        ("Children-Education", "children_education"),
        ("赡养老人", "elderly_support"),
        ("大病医疗", "serious_illness"),
        ("3岁以下婴幼儿照护", "infant_care"),
        ("３岁以下婴幼儿照护", "infant_care"),
        ("婴幼儿照护", "infant_care"),
        ("继续教育", "continuing_education"),
        ("住房贷款利息", "housing_loan_interest"),
        ("住房租金", "housing_rent"),
        ("HOUSING_RENT", "housing_rent"),
    ],
)
def test_parse_deduction(raw: str, code: str) -> None:
    assert parse_deduction(raw) == (code, None)


@pytest.mark.parametrize(
    ("parser", "raw", "code"),
    [
        (parse_stage, "学前教育", "preschool"),
        (parse_stage, "学前", "preschool"),
        (parse_stage, "preschool", "preschool"),
        (parse_stage, "义务教育", "compulsory"),
        (parse_stage, "小学", "compulsory"),
        (parse_stage, "初中", "compulsory"),
        (parse_stage, "高中阶段教育", "high_school"),
        (parse_stage, "高中", "high_school"),
        (parse_stage, "high-school", "high_school"),
        (parse_stage, "高等教育", "higher"),
        (parse_stage, "本科", "higher"),
        (parse_relation, "本人", "self"),
        (parse_relation, "SELF", "self"),
        (parse_relation, "配偶", "spouse"),
        (parse_relation, "子女", "child"),
        (parse_relation, "儿子", "child"),
        (parse_relation, "女儿", "child"),
        (parse_relation, "父母", "parent"),
        (parse_relation, "父亲", "parent"),
        (parse_relation, "母亲", "parent"),
        (parse_event, "结婚", "marriage"),
        (parse_event, "离婚", "divorce"),
        (parse_event, "死亡", "death"),
        (parse_event, "Marriage", "marriage"),
    ],
)
def test_code_parsers(parser: object, raw: str, code: str) -> None:
    assert parser(raw) == (code, None)  # type: ignore[operator]


@pytest.mark.parametrize("parser", [parse_deduction, parse_stage, parse_relation, parse_event])
def test_code_parsers_reasons(parser: object) -> None:
    assert parser("no such thing") == (None, "unknown_code")  # type: ignore[operator]
    assert parser("") == (None, "empty")  # type: ignore[operator]
    assert parser(None) == (None, "empty")  # type: ignore[operator]
    assert parser(float("nan")) == (None, "empty")  # type: ignore[operator]
    assert parser(42) == (None, "unknown_code")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("parser", "table"),
    [
        (parse_deduction, DEDUCTION_CODES),
        (parse_stage, STAGE_CODES),
        (parse_relation, RELATION_CODES),
        (parse_event, EVENT_CODES),
    ],
)
def test_every_alias_maps_to_its_code(parser: object, table: dict[str, tuple[str, ...]]) -> None:
    for code, aliases in table.items():
        for spelling in (code, *aliases):
            assert parser(spelling) == (code, None)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("是", True),
        ("否", False),
        ("Y", True),
        ("N", False),
        ("y", True),
        ("n", False),
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        (" 是 ", True),
        ("Ｙ", True),
        (1, True),
        (0, False),
        (1.0, True),
        (0.0, False),
        (True, True),
        (False, False),
    ],
)
def test_parse_bool(raw: object, value: bool) -> None:
    assert parse_bool(raw) == (value, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("maybe", "bad_bool"),
        (2, "bad_bool"),
        ("是的吧", "bad_bool"),
        ("", "empty"),
        (None, "empty"),
        (float("nan"), "empty"),
    ],
)
def test_parse_bool_reasons(raw: object, reason: str) -> None:
    assert parse_bool(raw) == (None, reason)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (None, 1.0),
        ("", 1.0),
        (float("nan"), 1.0),
        (1, 1.0),
        (1.0, 1.0),
        (0.5, 0.5),
        ("0.5", 0.5),
        ("1", 1.0),
        ("50%", 0.5),
        ("50％", 0.5),
        ("100%", 1.0),
        (" 50 % ", 0.5),
        ("１００％", 1.0),
        ("全额", 1.0),
        ("平均", 0.5),
        ("1.0", 1.0),
        (".5", 0.5),
    ],
)
def test_parse_share(raw: object, value: float) -> None:
    assert parse_share(raw) == (value, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("120%", "share_out_of_range"),
        (2, "share_out_of_range"),
        ("50", "share_out_of_range"),
        (0, "share_out_of_range"),
        ("0", "share_out_of_range"),
        ("0%", "share_out_of_range"),
        (-0.5, "share_out_of_range"),
        ("-50%", "share_out_of_range"),
        (float("inf"), "share_out_of_range"),
        (10**400, "share_out_of_range"),
        ("half", "bad_number"),
        ("%", "bad_number"),
        (True, "bad_number"),
        ("1/2", "bad_number"),
    ],
)
def test_parse_share_reasons(raw: object, reason: str) -> None:
    assert parse_share(raw) == (None, reason)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1234.50", 1234.5),
        ("1,234.50", 1234.5),
        ("¥1,234.50", 1234.5),
        ("￥1,234.50", 1234.5),
        ("1234.50元", 1234.5),
        ("１２３４．５", 1234.5),
        ("１，２３４．５０", 1234.5),
        ("¥ 1 234", 1234.0),
        ("0", 0.0),
        ("-0", 0.0),
        (12, 12.0),
        (12.5, 12.5),
        ("1,234,567", 1234567.0),
        ("RMB 100", 100.0),
        ("+5", 5.0),
        ("1e3", 1000.0),
    ],
)
def test_parse_amount(raw: object, value: float) -> None:
    result = parse_amount(raw)
    assert result == (value, None)
    assert math.copysign(1.0, result[0]) == 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("-5", "negative_amount"),
        (-0.01, "negative_amount"),
        ("¥-5", "negative_amount"),
        ("-¥5", "negative_amount"),
        ("abc", "bad_number"),
        ("1,23", "bad_number"),
        ("12,34.5", "bad_number"),
        ("1.2.3", "bad_number"),
        ("¥", "bad_number"),
        ("元", "bad_number"),
        ("inf", "bad_number"),
        (float("inf"), "bad_number"),
        (True, "bad_number"),
        ("", "empty"),
        (None, "empty"),
        (float("nan"), "empty"),
    ],
)
def test_parse_amount_reasons(raw: object, reason: str) -> None:
    assert parse_amount(raw) == (None, reason)


@pytest.mark.parametrize(
    ("raw", "year"),
    [
        ("2023", 2023),
        (2023, 2023),
        (2023.0, 2023),
        ("2023年", 2023),
        ("2023年度", 2023),
        (" ２０２３ ", 2023),
        ("2019", 2019),
        ("2023.0", 2023),
    ],
)
def test_parse_year(raw: object, year: int) -> None:
    assert parse_year(raw) == (year, None)


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        ("2018", {}, "year_out_of_range"),
        (1999, {}, "year_out_of_range"),
        ("2025", {"max_year": 2024}, "year_out_of_range"),
        ("2020", {"min_year": 2022}, "year_out_of_range"),
        ("23", {}, "bad_number"),
        ("二〇二三", {}, "bad_number"),
        (2023.5, {}, "bad_number"),
        (True, {}, "bad_number"),
        ("", {}, "empty"),
        (None, {}, "empty"),
    ],
)
def test_parse_year_reasons(raw: object, kwargs: dict[str, int], reason: str) -> None:
    assert parse_year(raw, **kwargs) == (None, reason)


def test_is_missing_and_to_text() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    for missing in (None, float("nan"), pd.NA, pd.NaT, np.float64("nan")):
        assert is_missing(missing)
        assert to_text(missing) is None
    assert not is_missing("")
    assert to_text(np.float64(1.5)) == "1.5"
    assert to_text(np.int64(7)) == "7"
    assert to_text(110105491231002.0) == "110105491231002.0"
    assert to_text(b"\xe5\xbc\xa0") == "张"
    assert to_text(True) == "true"


_anything = st.one_of(
    st.text(),
    st.none(),
    st.floats(),
    st.integers(),
    st.booleans(),
    st.binary(),
    st.from_regex(r"[-+¥￥0-9,.%元 ]{0,12}", fullmatch=True),
)


@given(_anything)
def test_parsers_never_raise_and_return_value_xor_reason(raw: object) -> None:
    for parser in (
        parse_deduction,
        parse_stage,
        parse_relation,
        parse_event,
        parse_bool,
        parse_amount,
        parse_year,
    ):
        value, reason = parser(raw)  # type: ignore[operator]
        assert (value is None) != (reason is None)
    share, reason = parse_share(raw)
    assert (share is None) != (reason is None)
    if share is not None:
        assert 0.0 < share <= 1.0
    amount, reason = parse_amount(raw)
    if amount is not None:
        assert amount >= 0.0 and math.isfinite(amount)


@given(st.floats(min_value=0.0001, max_value=1.0))
def test_shares_in_range_round_trip_as_fraction_and_percentage(share: float) -> None:
    assert parse_share(share) == (share, None)
    assert parse_share(repr(share)) == (share, None)
    value, reason = parse_share(f"{share * 100!r}%")
    assert reason is None and value is not None and math.isclose(value, share, rel_tol=1e-12)


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_grouped_amounts_equal_plain_ones(amount: object) -> None:
    plain = f"{amount:.2f}"
    grouped = f"{amount:,.2f}"
    assert parse_amount(grouped) == parse_amount(plain) == (float(plain), None)
    assert parse_amount(f"¥{grouped}") == parse_amount(f"{plain}元") == (float(plain), None)
