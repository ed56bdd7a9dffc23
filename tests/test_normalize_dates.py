"""Dates and year-months: the SPEC spellings, tolerated export noise, reason codes, month arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchkit.normalize.dates import month_add, months_between, parse_date, parse_month, ym_of

TODAY = dt.date(2024, 6, 30)
D = dt.date(2023, 1, 5)


@pytest.mark.parametrize(
    "raw",
    [
        "2023-01-05",
        "20230105",
        "2023/01/05",
        "2023年1月5日",
        "2023年01月05日",
        "2023-1-5",
        "2023/1/5",
        "2023.01.05",
        "2023年1月5号",
        " 2023-01-05 ",
        "2023-01-05 00:00:00",
        "2023/1/5 0:00",
        "20230105 00:00:00",
        "2023-01-05T00:00:00",
        "2023-01-05T00:00:00.000000000",
        "2023-01-05 00:00:00+08:00",
        "2023-01-05 13:45:10",
        "２０２３－０１－０５",
        "２０２３年１月５日",
        "２０２３／０１／０５",
        "2023 年 1 月 5 日",
        20230105,
        20230105.0,
        dt.date(2023, 1, 5),
        dt.datetime(2023, 1, 5),
        dt.datetime(2023, 1, 5, 13, 45),
    ],
)
def test_parse_date_spellings(raw: object) -> None:
    assert parse_date(raw, today=TODAY) == (D, None)


def test_parse_date_pandas_and_numpy_objects() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    assert parse_date(pd.Timestamp("2023-01-05"), today=TODAY) == (D, None)
    assert parse_date(pd.Timestamp("2023-01-05 08:00", tz="Asia/Shanghai"), today=TODAY) == (D, None)
    assert parse_date(np.datetime64("2023-01-05"), today=TODAY) == (D, None)
    assert parse_date(pd.NaT) == (None, "empty")
    assert parse_date(pd.NA) == (None, "empty")
    assert parse_date(np.datetime64("NaT")) == (None, "empty")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        (float("nan"), "empty"),
        ("", "empty"),
        ("  ", "empty"),
        ("NaT", "empty"),
        ("nan", "empty"),
        ("05/01/2023", "bad_format"),
        ("23-01-05", "bad_format"),
        ("2023-01", "bad_format"),
        ("abc", "bad_format"),
        ("2023-01/05", "bad_format"),
        ("2023010", "bad_format"),
        ("2023-01-05 25", "bad_format"),
        (3.5, "bad_format"),
        ("2023-02-30", "bad_date"),
        ("2023-13-01", "bad_date"),
        ("2023-00-10", "bad_date"),
        ("20230132", "bad_date"),
        ("2023年2月29日", "bad_date"),
        ("0000-01-01", "bad_date"),
        ("1899-12-31", "too_old"),
        (dt.date(1850, 1, 1), "too_old"),
        ("2024-07-01", "future_date"),
        (dt.datetime(2030, 1, 1), "future_date"),
    ],
)
def test_parse_date_reasons(raw: object, reason: str) -> None:
    assert parse_date(raw, today=TODAY) == (None, reason)


def test_parse_date_limits_are_inclusive() -> None:
    assert parse_date("1900-01-01", today=TODAY) == (dt.date(1900, 1, 1), None)
    assert parse_date("2024-06-30", today=TODAY) == (TODAY, None)
    assert parse_date("2024-02-29", today=TODAY) == (dt.date(2024, 2, 29), None)


def test_parse_date_default_today_is_the_real_today() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert parse_date(tomorrow.isoformat()) == (None, "future_date")
    assert parse_date(dt.date.today().isoformat()) == (dt.date.today(), None)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY))
def test_all_four_formats_give_the_same_date(day: dt.date) -> None:
    spellings = [
        day.isoformat(),
        day.strftime("%Y%m%d"),
        day.strftime("%Y/%m/%d"),
        f"{day.year}年{day.month}月{day.day}日",
        f"{day.year}-{day.month}-{day.day}",
    ]
    assert {parse_date(s, today=TODAY) for s in spellings} == {(day, None)}


_anything = st.one_of(
    st.text(),
    st.none(),
    st.floats(),
    st.integers(),
    st.binary(),
    st.dates(),
    st.datetimes(),
    st.from_regex(r"[0-9年月日/\-. :T]{0,20}", fullmatch=True),
)


@given(_anything)
def test_parsers_never_raise(raw: object) -> None:
    value, reason = parse_date(raw, today=TODAY)
    assert (value is None) != (reason is None)
    assert reason in {None, "empty", "bad_format", "bad_date", "too_old", "future_date"}
    month, month_reason = parse_month(raw)
    assert (month is None) != (month_reason is None)
    assert month_reason in {None, "empty", "bad_format", "bad_month"}
    if month is not None:
        assert 1 <= month % 100 <= 12


# --- months -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2023-01",
        "202301",
        "2023/01",
        "2023/1",
        "2023-1",
        "2023.01",
        "2023年1月",
        "2023年01月",
        "2023年1月份",
        "２０２３－０１",
        202301,
        202301.0,
        "2023-01-31",
        "20230115",
        "2023年1月15日",
        dt.date(2023, 1, 20),
        dt.datetime(2023, 1, 31, 23, 59),
        "2023-01-01 00:00:00",
    ],
)
def test_parse_month_spellings(raw: object) -> None:
    assert parse_month(raw) == (202301, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        ("", "empty"),
        (float("nan"), "empty"),
        ("NULL", "empty"),
        ("2023-13", "bad_month"),
        ("202300", "bad_month"),
        ("202313", "bad_month"),
        ("2023年0月", "bad_month"),
        ("2023-02-30", "bad_month"),
        ("23-01", "bad_format"),
        ("01/2023", "bad_format"),
        ("2023", "bad_format"),
        ("abc", "bad_format"),
        ("2023-001", "bad_format"),
        (2023, "bad_format"),
        ("0000-01", "bad_format"),
    ],
)
def test_parse_month_reasons(raw: object, reason: str) -> None:
    assert parse_month(raw) == (None, reason)


@given(st.integers(1900, 2100), st.integers(1, 12))
def test_both_month_formats_agree(year: int, month: int) -> None:
    expected = (year * 100 + month, None)
    assert parse_month(f"{year}-{month:02d}") == expected
    assert parse_month(f"{year}{month:02d}") == expected
    assert parse_month(f"{year}年{month}月") == expected
    assert parse_month(year * 100 + month) == expected


def test_ym_of() -> None:
    assert ym_of(dt.date(2023, 7, 31)) == 202307
    assert ym_of(dt.datetime(2023, 12, 1, 5)) == 202312
    assert ym_of(None) is None
    assert ym_of("2023-07-31") is None


@pytest.mark.parametrize(
    ("ym", "n", "expected"),
    [
        (202301, 0, 202301),
        (202301, 1, 202302),
        (202312, 1, 202401),
        (202301, -1, 202212),
        (202306, 18, 202412),
        (202306, -18, 202112),
        (202301, -12, 202201),
    ],
)
def test_month_add(ym: int, n: int, expected: int) -> None:
    assert month_add(ym, n) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (202301, 202312, 12),
        (202301, 202301, 1),
        (202311, 202402, 4),
        (202305, 202304, 0),
        (202305, 202201, 0),
    ],
)
def test_months_between_is_inclusive(start: int, end: int, expected: int) -> None:
    assert months_between(start, end) == expected


@given(st.integers(1900, 2100), st.integers(1, 12), st.integers(-600, 600))
def test_month_add_and_months_between_agree(year: int, month: int, n: int) -> None:
    start = year * 100 + month
    shifted = month_add(start, n)
    assert 1 <= shifted % 100 <= 12
    assert month_add(shifted, -n) == start
    if n >= 0:
        assert months_between(start, shifted) == n + 1


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_compact_fast_path_equals_the_general_parser(raw: str) -> None:
    """An 8-digit string skips the regular expressions; with a separator-free text the general path (here forced by
    a surrounding space, which cleaning strips) must give the same date or the same reason."""
    today = dt.date(2026, 11, 21)
    assert parse_date(raw, today=today) == parse_date(f" {raw} ", today=today)
