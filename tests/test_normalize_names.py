"""Names: canonical spelling (NFKC, invisible characters, spaces, middle dots, traditional → simplified),
reason
codes, and toneless pinyin with surname readings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchkit.normalize.names import (
    COMPOUND_SURNAMES,
    SURNAME_READINGS,
    name_pinyin,
    name_problem,
    normalize_name,
    normalize_plain_cjk_name,
)

DOT = "\u00b7"

DOT_VARIANTS = [
    "\u00b7",
    "\u30fb",
    "\uff65",
    "\u2022",
    "\u2027",
    "\u2219",
    "\u22c5",
    "\u0387",
    "\u16eb",
    "\u2e31",
    "\u318d",
    "\uff0e",
    ".",
    "\u3002",
    "-",
    "\u2014",
    "\uff0d",
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张伟", "张伟"),
        (" 张伟 ", "张伟"),
        ("张 伟", "张伟"),
        ("张\u3000伟", "张伟"),
        ("张\u00a0伟", "张伟"),
        ("张\t伟\n", "张伟"),
        ("\u200b张\u200c伟\u200d\u200e\u200f\u2060\ufeff", "张伟"),
        ("张\u00ad伟", "张伟"),
        ("張偉", "张伟"),
        ("歐陽娜娜", "欧阳娜娜"),
        ("龍", "龙"),
        ("劉德華", "刘德华"),
        ("阿卜杜 · 艾买提", f"阿卜杜{DOT}艾买提"),
        ("阿卜杜··艾买提", f"阿卜杜{DOT}艾买提"),
        (f"{DOT}阿卜杜{DOT}艾买提{DOT}", f"阿卜杜{DOT}艾买提"),
        ("买买提-艾力", f"买买提{DOT}艾力"),
        ("john smith", "JOHN SMITH"),
        ("  John \t  Smith ", "JOHN SMITH"),
        ("Ｊｏｈｎ　Ｓｍｉｔｈ", "JOHN SMITH"),
        ("Jean-Paul Sartre", "JEAN-PAUL SARTRE"),
        ("Jean • Paul", f"JEAN{DOT}PAUL"),
        ("J.R. Smith", "J.R. SMITH"),
        ("O\u2019Neil", "O'NEIL"),
        ("\u2f42\u2f08", "文人"),  # Kangxi radicals fold to ordinary ideographs
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw", [None, float("nan"), "", "   ", "\u200b", DOT, " · · ", "\u3000"])
def test_nothing_left_is_none(raw: object) -> None:
    assert normalize_name(raw) is None
    assert name_problem(raw) == "empty"


@pytest.mark.parametrize("variant", DOT_VARIANTS)
def test_every_middle_dot_variant_between_cjk_is_one_dot(variant: str) -> None:
    assert normalize_name(f"阿卜杜{variant}艾买提") == f"阿卜杜{DOT}艾买提"
    assert normalize_name(f"阿卜杜 {variant} 艾买提") == f"阿卜杜{DOT}艾买提"


@given(st.sampled_from(DOT_VARIANTS), st.sampled_from(["", " ", "\u3000", "\u200b"]))
def test_middle_dot_variants_all_normalise_to_the_same_string(variant: str, padding: str) -> None:
    assert normalize_name(f"古丽{padding}{variant}{padding}热合曼") == normalize_name(f"古丽{DOT}热合曼")


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("張偉", "张伟"), ("歐陽", "欧阳"), ("龍", "龙"), ("陳國強", "陈国强"), ("鄭麗華", "郑丽华")],
)
def test_traditional_and_simplified_normalise_equal(traditional: str, simplified: str) -> None:
    assert normalize_name(traditional) == normalize_name(simplified) == simplified


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("张伟", None),
        ("阿卜杜·艾买提", None),
        ("JOHN O'NEIL", None),
        ("JEAN-PAUL", None),
        ("\ue000伟", None),
        ("张伟1", "invalid_characters"),
        ("张*", "invalid_characters"),
        ("张?", "invalid_characters"),
        ("张\x00伟", "invalid_characters"),
        ("张伟（曾用名）", "invalid_characters"),
        ("\ufffd\ufffd", "invalid_characters"),
        ("", "empty"),
        (None, "empty"),
    ],
)
def test_name_problem(raw: object, problem: str | None) -> None:
    assert name_problem(raw) == problem


# --- pinyin -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "syllables"),
    [
        ("张伟", ("zhang", "wei")),
        ("章伟", ("zhang", "wei")),
        ("李娜", ("li", "na")),
        ("吕绿", ("lv", "lv")),
        ("欧阳娜娜", ("ou", "yang", "na", "na")),
        (f"阿卜杜{DOT}艾买提", ("a", "bo", "du", "ai", "mai", "ti")),
        ("JOHN SMITH", ("john", "smith")),
        (f"JEAN-PAUL{DOT}SARTRE", ("jean", "paul", "sartre")),
        ("O'NEIL", ("oneil",)),
        ("张JOHN", ("zhang", "john")),
    ],
)
def test_name_pinyin(name: str, syllables: tuple[str, ...]) -> None:
    assert name_pinyin(name) == syllables


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("曾小明", "zeng"),
        ("单田芳", "shan"),
        ("仇英", "qiu"),
        ("解缙", "xie"),
        ("区永", "ou"),
        ("朴树", "piao"),
        ("查良镛", "zha"),
        ("盖聂", "ge"),
        ("乐嘉", "yue"),
        ("覃辉", "qin"),
        ("缪斯", "miao"),
        ("翟明", "zhai"),
        ("召忽", "shao"),
        ("繁钦", "po"),
        ("种师道", "chong"),
        ("秘书", "bi"),
        ("员工", "yun"),
        ("句芒", "gou"),
        ("牟宗三", "mu"),
        ("折克行", "she"),
        ("适之", "kuo"),
    ],
)
def test_surname_readings(name: str, first: str) -> None:
    assert name_pinyin(name)[0] == first


def test_surname_reading_applies_only_to_the_first_character() -> None:
    assert name_pinyin("王曾") == ("wang", "ceng")
    assert name_pinyin("曾曾") == ("zeng", "ceng")


@pytest.mark.parametrize(
    ("name", "first_two"),
    [
        ("尉迟恭", ("yu", "chi")),
        ("万俟卨", ("mo", "qi")),
        ("长孙无忌", ("zhang", "sun")),
        ("单于", ("chan", "yu")),
        ("澹台灭明", ("tan", "tai")),
        ("欧阳修", ("ou", "yang")),
    ],
)
def test_compound_surnames(name: str, first_two: tuple[str, str]) -> None:
    assert name_pinyin(name)[:2] == first_two


def test_surname_tables_are_plain_lowercase_ascii() -> None:
    for reading in [*SURNAME_READINGS.values(), *(s for pair in COMPOUND_SURNAMES.values() for s in pair)]:
        assert reading.isascii() and reading.isalpha() and reading == reading.lower()
    assert all(len(key) == 1 for key in SURNAME_READINGS)
    assert all(len(key) == 2 for key in COMPOUND_SURNAMES)


@pytest.mark.parametrize(
    ("a", "b"),
    [("张伟", "章伟"), ("李娜", "李纳"), ("曾小明", "增小明"), ("张偉", "章伟"), ("單田芳", "善田芳")],
)
def test_homophones_have_equal_pinyin(a: str, b: str) -> None:
    assert name_pinyin(normalize_name(a)) == name_pinyin(normalize_name(b))


def test_pinyin_of_non_text_is_empty() -> None:
    assert name_pinyin(None) == ()
    assert name_pinyin("") == ()
    assert name_pinyin(3) == ()


# --- properties ---------------------------------------------------------------------------------------------

_cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_name_like = st.text(
    alphabet=st.one_of(_cjk, st.sampled_from([*DOT_VARIANTS, " ", "\u3000", "\u200b", "\u00a0", "a", "Z"])),
    max_size=12,
)
_anything = st.one_of(st.text(), _name_like, st.none(), st.floats(), st.integers(), st.binary())


@given(_anything)
def test_normalize_name_is_idempotent(raw: object) -> None:
    once = normalize_name(raw)
    assert normalize_name(once) == once


@given(_anything)
def test_name_functions_never_raise(raw: object) -> None:
    normalised = normalize_name(raw)
    assert normalised is None or (isinstance(normalised, str) and normalised)
    assert name_problem(raw) in {None, "empty", "invalid_characters"}
    syllables = name_pinyin(normalised)
    assert all(isinstance(s, str) and s for s in syllables)
    name_pinyin(raw)


@given(st.text(alphabet=_cjk, min_size=1, max_size=6))
def test_pinyin_of_chinese_names_is_one_lowercase_ascii_syllable_per_character(name: str) -> None:
    normalised = normalize_name(name)
    assert normalised is not None
    syllables = name_pinyin(normalised)
    assert len(syllables) == len(normalised)
    for char, syllable in zip(normalised, syllables, strict=True):
        # A character pypinyin does not know stands for itself (it still matches itself exactly).
        assert syllable == char or (
            syllable.isascii() and syllable.isalpha() and syllable == syllable.lower()
        )


@given(_name_like)
def test_normalised_names_have_no_spaces_around_dots_and_no_dot_runs(raw: str) -> None:
    normalised = normalize_name(raw)
    if normalised is not None:
        assert f" {DOT}" not in normalised and f"{DOT} " not in normalised
        assert DOT * 2 not in normalised
        assert not normalised.startswith(DOT) and not normalised.endswith(DOT)
        assert "\u200b" not in normalised


@given(st.one_of(st.text(_cjk, min_size=1, max_size=20), _anything,
                 st.text(st.sampled_from("張偉劉誠國華龍鳳門東車馬鳥魚長書愛聽說話銀錢張三丰"), min_size=1, max_size=6)))
def test_plain_cjk_fast_path_equals_normalize_name(raw: object) -> None:
    """The hashing fast path for names of plain ideographs gives what the general pipeline gives, for any input."""
    assert normalize_plain_cjk_name(raw) == normalize_name(raw)


def test_plain_cjk_fast_path_every_unified_ideograph() -> None:
    for start in range(0x4E00, 0xA000, 2048):
        text = "".join(chr(code) for code in range(start, min(start + 2048, 0xA000)))
        for size in (1, 2, 3):
            for offset in range(0, len(text), 97):
                raw = text[offset : offset + size]
                assert normalize_plain_cjk_name(raw) == normalize_name(raw)
