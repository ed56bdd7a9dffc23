"""Realistic, normalisable noise: the ways clerks and export tools write the same value differently.

``level`` in [0, 1] scales every probability; 0 writes canonical values. Nothing here changes *who* a value refers
to once normalised (SPEC §4): traditional characters and homophones keep the pinyin, full-width digits, a lowercase
x, stray spaces and the 15-digit legacy form all normalise back to the same ID. Deliberate identity defects (typo'd
IDs) are made by the claims builder, not here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from matchkit.synth import reference as ref

FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")

# Probabilities at level 1.0.
P_TRADITIONAL = 0.25     # a name gets some characters in traditional form
P_HOMOPHONE = 0.05       # one given-name character replaced by a homophone
P_NAME_SPACE = 0.03      # a space inside or around a name
P_DOT_VARIANT = 0.6      # a minority name written with a look-alike middle dot
P_LEGACY15 = 0.3         # a pre-2000 ID written in its 15-digit form (old cards, old systems)
P_FULL_WIDTH = 0.04
P_LOWER_X = 0.5          # of IDs ending in X
P_ID_SPACE = 0.04
P_TRAILING_ZERO = 0.01   # a lossless ".0" left by an export through a decimal column
P_DATE_FORMAT = 0.5      # a date in another accepted format
P_CHINESE_CODE = 0.4     # a code value written as its Chinese alias


@lru_cache(maxsize=1)
def character_tables() -> tuple[dict[str, str], dict[str, list[str]]]:
    """(simplified -> traditional, char -> homophones) for the characters names are made of.

    Only characters whose traditional form converts back exactly, and homophones that have one reading, are used,
    so a normaliser's t2s and pinyin recover the original reading unambiguously.
    """
    from opencc import OpenCC
    from pypinyin import Style, pinyin

    s2t, t2s = OpenCC("s2t"), OpenCC("t2s")
    chars: set[str] = set("".join(ref.GIVEN_CHARS.values())) | set(ref.HOMOPHONE_EXTRA)
    chars |= {c for surname, _ in ref.SURNAMES for c in surname}
    traditional = {}
    for char in sorted(chars):
        trad = s2t.convert(char)
        if trad != char and t2s.convert(trad) == char:
            traditional[char] = trad
    readings: dict[str, list[str]] = {}
    by_sound: dict[str, list[str]] = {}
    for char in sorted(chars):
        sounds = pinyin(char, style=Style.NORMAL, heteronym=True)[0]
        if len(sounds) == 1:
            readings[char] = sounds
            by_sound.setdefault(sounds[0], []).append(char)
    given_chars = set("".join(ref.GIVEN_CHARS.values()))
    homophones = {char: [other for other in by_sound[readings[char][0]] if other != char]
                  for char in sorted(given_chars) if char in readings}
    return traditional, {char: others for char, others in homophones.items() if others}


class Noise:
    def __init__(self, rng: np.random.Generator, level: float) -> None:
        self.rng = rng
        self.level = max(0.0, min(1.0, float(level)))
        self.traditional, self.homophones = character_tables()

    def chance(self, p: float, n: int) -> np.ndarray:
        return self.rng.random(n) < p * self.level

    # ---- names ---------------------------------------------------------------------------------------------
    def name(self, value: str, *, homophone: bool) -> str:
        rng = self.rng
        if ref.MIDDLE_DOT in value:
            if rng.random() < P_DOT_VARIANT * self.level:
                value = value.replace(ref.MIDDLE_DOT, ref.MIDDLE_DOT_VARIANTS[int(rng.integers(0, 3))])
            return value
        if homophone and rng.random() < P_HOMOPHONE * self.level * 4:
            positions = [i for i in range(1, len(value)) if value[i] in self.homophones]
            if positions:
                i = positions[int(rng.integers(0, len(positions)))]
                options = self.homophones[value[i]]
                value = value[:i] + options[int(rng.integers(0, len(options)))] + value[i + 1:]
        if rng.random() < 0.6:
            value = "".join(self.traditional.get(c, c) if rng.random() < 0.6 else c for c in value)
        if rng.random() < 0.2:
            value = value[:1] + " " + value[1:] if len(value) > 1 else value + " "
        return value

    def names(self, values: np.ndarray, protect: np.ndarray | None = None, *, homophone: bool = False) -> np.ndarray:
        """Noisy copy of a name column; rows where ``protect`` is set are left exactly as they are."""
        out = values.copy()
        n = len(values)
        p_any = (P_TRADITIONAL + P_NAME_SPACE + (P_HOMOPHONE if homophone else 0.0))
        pick = self.chance(p_any, n)
        minority = np.fromiter((ref.MIDDLE_DOT in v for v in values), bool, n) if n else np.zeros(0, bool)
        pick |= minority & self.chance(P_DOT_VARIANT, n)
        if protect is not None:
            pick &= ~protect
        for i in np.flatnonzero(pick).tolist():
            out[i] = self.name(values[i], homophone=homophone)
        return out

    # ---- IDs -----------------------------------------------------------------------------------------------
    def id_value(self, value: str, legacy_ok: bool) -> str:
        rng = self.rng
        if legacy_ok and rng.random() < P_LEGACY15 / (P_LEGACY15 + P_FULL_WIDTH + P_ID_SPACE + 0.05):
            value = value[:6] + value[8:17]
        elif value.endswith("X") and rng.random() < P_LOWER_X:
            value = value[:-1] + "x"
        elif rng.random() < 0.4:
            value = value.translate(FULL_WIDTH)
        elif rng.random() < 0.3 and value.isdigit() and float(int(value)) != int(value):
            # only where the ".0" is provably lossless: an 18-digit integer a float64 cannot hold was not printed
            # from a float (one it can hold might have been rounded, which is Excel damage)
            value = value + ".0"
        if rng.random() < 0.4:
            value = rng.choice([" ", "  ", "\u3000"]) + value if rng.random() < 0.3 else value + " "
        return value

    def ids(self, values: np.ndarray, birth_year: np.ndarray) -> np.ndarray:
        out = values.astype(object)
        n = len(values)
        legacy_ok = (birth_year >= 1900) & (birth_year < 2000)
        p = np.where(legacy_ok, P_LEGACY15, 0.0) + P_FULL_WIDTH + P_ID_SPACE + P_TRAILING_ZERO
        p = p + np.where(np.char.endswith(values.astype(str), "X"), P_LOWER_X, 0.0)
        pick = self.rng.random(n) < p * self.level
        for i in np.flatnonzero(pick).tolist():
            out[i] = self.id_value(str(values[i]), bool(legacy_ok[i]))
        return out

    # ---- dates and codes -----------------------------------------------------------------------------------
    def dates(self, year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Dates as YYYY-MM-DD, some as YYYYMMDD, YYYY/MM/DD or YYYY年M月D日."""
        n = len(year)
        style = np.where(self.chance(P_DATE_FORMAT, n), self.rng.integers(1, 4, n), 0)
        y = year.astype(str).astype(object)
        m2 = np.char.zfill(month.astype(str), 2).astype(object)
        d2 = np.char.zfill(day.astype(str), 2).astype(object)
        out = y + "-" + m2 + "-" + d2
        compact = style == 1
        out[compact] = y[compact] + m2[compact] + d2[compact]
        slash = style == 2
        out[slash] = y[slash] + "/" + m2[slash] + "/" + d2[slash]
        chinese = style == 3
        out[chinese] = (y[chinese] + "年" + month[chinese].astype(str).astype(object) + "月"
                        + day[chinese].astype(str).astype(object) + "日")
        return out

    def months(self, month_index: np.ndarray) -> np.ndarray:
        """Months as YYYY-MM, some as YYYYMM."""
        year = (month_index // 12).astype(str).astype(object)
        month = np.char.zfill((month_index % 12 + 1).astype(str), 2).astype(object)
        out = year + "-" + month
        compact = self.chance(P_DATE_FORMAT, len(month_index))
        out[compact] = year[compact] + month[compact]
        return out

    def codes(self, values: np.ndarray, chinese: dict[str, str]) -> np.ndarray:
        out = values.astype(object).copy()
        pick = self.chance(P_CHINESE_CODE, len(values))
        for i in np.flatnonzero(pick).tolist():
            out[i] = chinese.get(out[i], out[i])
        return out
