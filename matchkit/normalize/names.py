"""Personal names: one canonical spelling per name, and toneless pinyin for homophone tolerance.

A name is evidence for a fuzzy link (a claim whose subject ID has a typo), so two records of one person must
give the same string however each agency typed it:

- NFKC (full-width Latin letters, compatibility ideographs and Kangxi radicals → their ordinary forms);
- invisible format characters removed (zero-width space/joiners U+200B–U+200F, word joiner U+2060, BOM, soft
  hyphen, direction marks);
- whitespace: a name containing a CJK ideograph loses **all** whitespace (Chinese names have no spaces, so one
  is noise from a form or an alignment habit); any other name (Latin, Cyrillic, kana…) keeps single spaces
  between words, trimmed, because ``LI MING`` and ``LIMING`` may well be different people abroad;
- letters upper-cased (a no-op for CJK), so ``Zhang San`` equals ``ZHANG SAN``; curly apostrophes → ``'``;
- minority-name separators unified to U+00B7 ``·`` with no spaces around, runs collapsed, none at either end:
  the dot look-alikes (``•``, ``・``, ``‧``, ``∙``, ``⋅``…) anywhere, and ``.``/``。``/hyphens/dashes when
  they stand between two CJK ideographs (``阿卜杜.艾买提``, ``买买提-艾力``) — in a Latin name they are kept
  (``JEAN-PAUL``);
- traditional → simplified per character with OpenCC ``t2s`` (``張偉`` → ``张伟``). Phrase context is
  irrelevant for names; each character's mapping is memoised and iterated to a fixed point so normalising
  twice changes nothing.

Nothing here logs or raises: a name never leaves this module except as the caller's return value.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from matchkit.normalize.values import to_text

__all__ = ["COMPOUND_SURNAMES", "SURNAME_READINGS", "name_pinyin", "name_problem", "normalize_name",
           "normalize_plain_cjk_name"]

MIDDLE_DOT = "\u00b7"

# Invisible characters nobody types on purpose: soft hyphen, joiners, direction marks, variation selectors.
# fmt: off
_INVISIBLE_CODEPOINTS = [
    0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810),
    *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x2070),
    0x3164, *range(0xFE00, 0xFE10), 0xFEFF, 0xFFA0, *range(0xFFF9, 0xFFFC), *range(0xE0100, 0xE01F0),
]
# Characters that are a middle dot wherever they appear (NFKC also folds U+0387 and U+FF65; listed anyway).
_DOT_LOOKALIKES = [
    0x00B7, 0x0387, 0x16EB, 0x2022, 0x2027, 0x2219, 0x22C5, 0x2E31, 0x30FB, 0xFF65, 0x318D, 0xA78F,
    0x2981, 0x2E33, 0x1427, 0x02D1,
]
# fmt: on
_TRANSLATE: dict[int, str | None] = dict.fromkeys(_INVISIBLE_CODEPOINTS)
_TRANSLATE.update(dict.fromkeys(_DOT_LOOKALIKES, MIDDLE_DOT))
_TRANSLATE.update({0x2018: "'", 0x2019: "'", 0x2032: "'"})

# CJK ideographs: URO, Ext A, compatibility block, Ext B–H, and 〇 (used in names such as 王〇).
_CJK_CLASS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAS_CJK = re.compile(f"[{_CJK_CLASS}]")
_SEPARATOR_BETWEEN_CJK = re.compile(
    f"(?<=[{_CJK_CLASS}])[.\u3002\\-\u2010-\u2015\u2212\u00b7]+(?=[{_CJK_CLASS}])"
)
_SPACED_DOT = re.compile(" ?\u00b7 ?")
_DOT_RUN = re.compile("\u00b7{2,}")


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Chinese character (any CJK block, Ext B-H and 〇 included)."""
    return _HAS_CJK.search(text) is not None


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x3134F
        or 0xF900 <= code <= 0xFAFF
        or code == 0x3007
    )


# --- traditional → simplified, per character ----------------------------------------------------------------

_t2s_converter: Any = None
_T2S: dict[str, str] = {}


def _simplify_char(char: str) -> str:
    """Simplified form of one character (memoised); iterated so that the mapping is idempotent."""
    global _t2s_converter
    if _t2s_converter is None:
        import opencc  # deferred: loading the dictionaries costs milliseconds nobody needs at import time

        _t2s_converter = opencc.OpenCC("t2s")
    seen = [char]
    current = char
    for _ in range(4):
        converted = _t2s_converter.convert(current)
        if len(converted) != 1 or converted == current:
            break
        current = converted
        seen.append(current)
    for step in seen:
        _T2S[step] = current
    return current


class _SimplifyTable(dict[int, str]):
    """``str.translate`` table for :func:`_simplify` on text of CJK ideographs: a code point's simplified form,
    looked up through :func:`_simplify_char` the first time it is met."""

    def __missing__(self, code: int) -> str:
        simple = _T2S.get(chr(code))
        if simple is None:
            simple = _simplify_char(chr(code))
        self[code] = simple
        return simple


_SIMPLIFY_TABLE = _SimplifyTable()


def _simplify(text: str) -> str:
    table = _T2S
    out = []
    changed = False
    for char in text:
        if char < "\u2e80":
            out.append(char)
            continue
        simple = table.get(char)
        if simple is None:
            simple = _simplify_char(char)
        if simple != char:
            changed = True
        out.append(simple)
    return "".join(out) if changed else text


# --- normalise ----------------------------------------------------------------------------------------------


def _normalize_once(text: str) -> str:
    if not text.isascii():
        # Translate before NFKC too: NFKC turns some look-alikes into letters (U+318D → Hangul jamo U+119E).
        text = unicodedata.normalize("NFKC", text.translate(_TRANSLATE)).translate(_TRANSLATE)
    if _HAS_CJK.search(text):
        text = "".join(text.split())
        text = _SEPARATOR_BETWEEN_CJK.sub(MIDDLE_DOT, text)
    else:
        text = " ".join(text.split())
        if MIDDLE_DOT in text:
            text = _SPACED_DOT.sub(MIDDLE_DOT, text)
    if MIDDLE_DOT in text:
        text = _DOT_RUN.sub(MIDDLE_DOT, text).strip(MIDDLE_DOT + " ")
    if not text.isascii():
        text = _simplify(text)
    if not text.isupper() and text.upper() != text:
        text = text.upper()
        if not text.isascii():  # upper() may leave a decomposed sequence (Greek, ligatures); fold it back
            text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    return text


def _is_plain(text: str) -> bool:
    """True when only ASCII, CJK ideographs and the middle dot occur — one pass is then provably a fixed
    point."""
    return all(char < "\x80" or char == MIDDLE_DOT or _is_cjk(char) for char in text)


def normalize_name(raw: Any) -> str | None:
    """Canonical spelling of a personal name (rules in the module docstring); ``None`` if nothing is left."""
    text = to_text(raw)
    if text is None:
        return None
    text = _normalize_once(text)
    if not _is_plain(text):
        # Exotic scripts: case mapping and NFKC can interact; repeat until stable (two rounds in practice).
        for _ in range(3):
            again = _normalize_once(text)
            if again == text:
                break
            text = again
    return text or None


_URO_ONLY = re.compile("[\u4e00-\u9fff]+")


def normalize_plain_cjk_name(raw: str) -> str | None:
    """``normalize_name(raw)`` for a non-empty ``raw`` made only of CJK Unified Ideographs (U+4E00–U+9FFF), the
    common case, without the general pipeline: such a string has no whitespace, separators, case or invisible
    characters and is NFKC-stable, so only the traditional → simplified step can change it, and when its result is
    again plain ideographs one pass is the fixed point ``normalize_name`` stops at. Any other input, or a simplified
    form that leaves the block, takes ``normalize_name`` itself. ``tests/test_normalize_names.py`` checks both agree.
    """
    if type(raw) is not str or not _URO_ONLY.fullmatch(raw):
        return normalize_name(raw)
    text = raw.translate(_SIMPLIFY_TABLE)  # = _simplify(raw): every character is at or above U+2E80
    if text == raw or _URO_ONLY.fullmatch(text):
        return text
    return normalize_name(raw)


_ALLOWED_PUNCTUATION = frozenset(f"{MIDDLE_DOT} '-.")


def name_problem(raw: Any) -> str | None:
    """Why a name cannot be used: ``empty`` or ``invalid_characters`` (digits, control characters, symbols,
    placeholders like ``*`` or ``?``); ``None`` when it is usable.

    Letters of any script, combining marks, private-use characters (government systems encode rare name
    characters there) and ``· ' - .`` are allowed.
    """
    name = normalize_name(raw)
    if name is None:
        return "empty"
    for char in name:
        if char.isalpha() or char in _ALLOWED_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if category[0] == "M" or category == "Co":
            continue
        return "invalid_characters"
    return None


# --- pinyin -------------------------------------------------------------------------------------------------

# Surname readings for the first character where pypinyin's first dictionary reading is not the surname
# reading (or commonly mis-read), after 《百家姓》 and the 通用规范汉字表 surname notes. Only the first
# character(s) of a name are looked up here; given-name characters keep the first dictionary reading, since
# homophone tolerance, not correct pronunciation, is the point.
# fmt: off
SURNAME_READINGS: dict[str, str] = {
    "曾": "zeng", "单": "shan", "仇": "qiu", "解": "xie", "区": "ou", "朴": "piao", "查": "zha",
    "盖": "ge", "乐": "yue", "覃": "qin", "缪": "miao", "翟": "zhai", "召": "shao", "尉": "wei",
    "繁": "po", "种": "chong", "秘": "bi", "员": "yun", "句": "gou", "隗": "wei", "纪": "ji",
    "任": "ren", "黑": "he", "牟": "mu", "过": "guo", "宁": "ning", "折": "she", "教": "jiao",
    "适": "kuo", "藏": "zang", "薄": "bo", "柏": "bai", "阚": "kan", "洗": "xian", "冼": "xian",
    "能": "nai", "角": "jue", "蕃": "pi", "重": "chong", "蔚": "yu", "佴": "nai", "粘": "nian",
    "卜": "bu", "祭": "zhai", "颉": "xie", "乜": "nie", "么": "yao", "都": "du", "长": "chang",
    "万": "wan", "华": "hua", "燕": "yan", "葛": "ge", "莘": "shen", "眭": "sui", "逄": "pang",
    "贲": "ben", "隽": "juan", "郇": "huan", "谌": "chen", "沈": "shen", "石": "shi", "车": "che",
    "叶": "ye",
}

COMPOUND_SURNAMES: dict[str, tuple[str, str]] = {
    "尉迟": ("yu", "chi"), "万俟": ("mo", "qi"), "长孙": ("zhang", "sun"), "单于": ("chan", "yu"),
    "澹台": ("tan", "tai"), "乐正": ("yue", "zheng"), "令狐": ("ling", "hu"), "上官": ("shang", "guan"),
    "欧阳": ("ou", "yang"), "司马": ("si", "ma"), "诸葛": ("zhu", "ge"), "皇甫": ("huang", "fu"),
    "宇文": ("yu", "wen"), "夏侯": ("xia", "hou"), "东方": ("dong", "fang"), "公孙": ("gong", "sun"),
    "慕容": ("mu", "rong"), "司徒": ("si", "tu"), "司空": ("si", "kong"), "呼延": ("hu", "yan"),
    "赫连": ("he", "lian"), "鲜于": ("xian", "yu"), "亓官": ("qi", "guan"), "仲孙": ("zhong", "sun"),
}
# fmt: on

_SYLLABLES: dict[str, str] = {MIDDLE_DOT: ""}  # "" = contributes no syllable
_pinyin_table: Any = None


def _toneless(reading: str) -> str:
    # ü keeps its diaeresis as a combining mark once decomposed (lǜ → l u ̈ ̀); pinyin keyboards write v.
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v").replace("U\u0308", "v")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _syllable(char: str) -> str:
    """Toneless first dictionary reading of one CJK character (memoised); the character itself if unknown."""
    global _pinyin_table
    if _pinyin_table is None:
        from pypinyin.pinyin_dict import pinyin_dict  # deferred: a 40k-entry dict

        _pinyin_table = pinyin_dict
    readings = _pinyin_table.get(ord(char))
    syllable = _toneless(readings.split(",", 1)[0]) if readings else char
    _SYLLABLES[char] = syllable
    return syllable


def _latin_token(run: str) -> str:
    return run.replace("'", "").lower()


def _pinyin_slow(name: str) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if _is_cjk(char):
            if run:
                out.append(_latin_token("".join(run)))
                run = []
            out.append(_SYLLABLES.get(char) or _syllable(char))
        elif char.isalnum() or char == "'" or unicodedata.category(char)[0] == "M":
            run.append(char)
        elif run:
            out.append(_latin_token("".join(run)))
            run = []
    if run:
        out.append(_latin_token("".join(run)))
    return [token for token in out if token]


def name_pinyin(normalised: Any) -> tuple[str, ...]:
    """Toneless lower-case pinyin of a normalised name: one syllable per CJK character, one token per run of
    other letters; the middle dot and other punctuation give nothing. Polyphonic and compound surnames at the
    start of the name take their surname reading (``曾`` → ``zeng``, ``尉迟`` → ``yu chi``). ``()`` for
    non-text input.
    """
    if type(normalised) is not str or not normalised:
        return ()
    try:  # fast path: only CJK ideographs and middle dots, every one already cached
        tokens = [syllable for syllable in [_SYLLABLES[char] for char in normalised] if syllable]
    except KeyError:
        tokens = _pinyin_slow(normalised)
    if tokens and _is_cjk(normalised[0]):
        _apply_surname(normalised, tokens)
    return tuple(tokens)


def _apply_surname(name: str, tokens: list[str]) -> None:
    compound = COMPOUND_SURNAMES.get(name[:2])
    if compound is not None and len(tokens) >= 2:
        tokens[0], tokens[1] = compound
        return
    single = SURNAME_READINGS.get(name[0])
    if single is not None and tokens:
        tokens[0] = single
