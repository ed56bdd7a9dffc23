"""The reason catalogue (``matchkit/data/reasons.toml``): every word tax staff read, in Chinese and English.

The report, the workbook and ``matchkit reasons`` take their texts from here and nowhere else. The file is validated
on load and every problem is reported at once with its path (``reasons.OVER_CAP.rule_en: missing``): every reason
code the engine can emit (``matchkit.verify.reasons.REASON_CODES``), every status, deduction and match method, and
every review group a reason names must be present with every text in both languages.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from matchkit.errors import SchemaError

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
CATALOGUE_FORMAT = "matchkit-reasons"
CATALOGUE_FILE = "reasons.toml"
FALLBACK_GROUP = "other"  # a line that is not verified but carries no known code

STATUSES = ("verified", "partial", "rejected", "review", "unverifiable")
MATCHES = ("exact", "fuzzy", "none")

# Texts each entry of a section carries, in every language (name_zh, name_en, ...); "" is the entry's short name.
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "statuses": ("", "meaning"),
    "deductions": ("",),
    "matches": ("",),
    "groups": ("", "action"),
    "reasons": ("", "evidence", "rule", "check"),
    "labels": ("",),
}


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: its texts by field and language, and its plain attributes (``group``, ``basis``...)."""

    key: str
    texts: Mapping[str, Mapping[str, str]]  # field ("" = name) -> language -> text
    attrs: Mapping[str, Any]

    def text(self, lang: str, field: str = "") -> str:
        return self.texts[field][lang]


@dataclass(frozen=True)
class Catalogue:
    statuses: Mapping[str, Entry]
    deductions: Mapping[str, Entry]
    matches: Mapping[str, Entry]
    groups: Mapping[str, Entry]
    reasons: Mapping[str, Entry]
    labels: Mapping[str, Entry]
    version: int

    # ---- one word each; an unknown key comes back as itself (a flags file from another version still renders)
    def status(self, status: str, lang: str) -> str:
        entry = self.statuses.get(status)
        return entry.text(lang) if entry else status

    def deduction(self, deduction: str, lang: str) -> str:
        entry = self.deductions.get(deduction)
        return entry.text(lang) if entry else deduction

    def match(self, match: str, lang: str) -> str:
        entry = self.matches.get(match)
        return entry.text(lang) if entry else match

    def reason(self, code: str, lang: str, field: str = "") -> str:
        entry = self.reasons.get(code)
        return entry.text(lang, field) if entry else (code if field == "" else "")

    def basis(self, code: str) -> str:
        entry = self.reasons.get(code)
        return str(entry.attrs["basis"]) if entry else ""

    def label(self, key: str, lang: str) -> str:
        """A word of the page or workbook; a key missing from the catalogue is a bug (KeyError)."""
        return self.labels[key].text(lang)

    # ---- review groups
    def group_order(self) -> list[str]:
        return sorted(self.groups, key=lambda g: (int(self.groups[g].attrs["order"]), g))

    def group_of(self, codes: Iterable[str]) -> str:
        """The review group of a line: the group of its reason with the lowest order; ``other`` without one."""
        best, best_order = FALLBACK_GROUP, None
        for code in codes:
            entry = self.reasons.get(code)
            if entry is None:
                continue
            group = str(entry.attrs["group"])
            order = int(self.groups[group].attrs["order"])
            if best_order is None or order < best_order:
                best, best_order = group, order
        return best


def split_codes(reasons: str) -> list[str]:
    """``'A;B;A'`` -> ``['A', 'B']`` (order kept, blanks and repeats dropped)."""
    seen: dict[str, None] = {}
    for code in str(reasons or "").split(";"):
        code = code.strip()
        if code:
            seen.setdefault(code)
    return list(seen)


def catalogue_path() -> Path:
    return Path(str(resources.files("matchkit").joinpath("data", CATALOGUE_FILE)))


@lru_cache(maxsize=4)
def load_catalogue(path: str | None = None) -> Catalogue:
    """Read and validate the reason catalogue (default: the one shipped in the package)."""
    source: Any = Path(path) if path is not None else resources.files("matchkit").joinpath("data", CATALOGUE_FILE)
    shown = Path(path) if path is not None else catalogue_path()
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SchemaError(["reason catalogue not found"], path=shown) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError([f"not valid TOML: {exc}"], path=shown) from exc
    return parse_catalogue(data, path=shown)


def parse_catalogue(data: Mapping[str, Any], *, path: str | Path | None = None,
                    required_codes: Iterable[str] | None = None) -> Catalogue:
    """Validate a parsed catalogue; ``required_codes`` defaults to every code the engine can emit."""
    from matchkit.verify.policy import DEDUCTION_FIELDS
    from matchkit.verify.reasons import REASON_CODES

    problems: list[str] = []
    if data.get("format") != CATALOGUE_FORMAT:
        problems.append(f"format: must be '{CATALOGUE_FORMAT}'")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append("version: must be a positive integer")
    sections: dict[str, dict[str, Entry]] = {}
    for section, fields in _TEXT_FIELDS.items():
        raw = data.get(section)
        if not isinstance(raw, Mapping) or not raw:
            problems.append(f"{section}: missing or empty table")
            sections[section] = {}
            continue
        entries: dict[str, Entry] = {}
        for key, body in raw.items():
            where = f"{section}.{key}"
            if not isinstance(body, Mapping):
                problems.append(f"{where}: must be a table")
                continue
            texts: dict[str, dict[str, str]] = {}
            for field in fields:
                texts[field] = {}
                for lang in LANGUAGES:
                    name = f"{field}_{lang}" if field else lang
                    value = body.get(name)
                    if not isinstance(value, str) or not value.strip():
                        problems.append(f"{where}.{name}: missing or empty text")
                    else:
                        texts[field][lang] = value
            known = {f"{f}_{lang}" if f else lang for f in fields for lang in LANGUAGES}
            attrs = {k: v for k, v in body.items() if k not in known}
            entries[str(key)] = Entry(str(key), texts, attrs)
        sections[section] = entries

    groups = sections["groups"]
    for key, entry in groups.items():
        order = entry.attrs.get("order")
        if not isinstance(order, int) or isinstance(order, bool):
            problems.append(f"groups.{key}.order: must be an integer")
    if groups and FALLBACK_GROUP not in groups:
        problems.append(f"groups.{FALLBACK_GROUP}: missing (lines without a known code go there)")
    for key, entry in sections["reasons"].items():
        if entry.attrs.get("group") not in groups:
            problems.append(f"reasons.{key}.group: must name one of [groups] ({', '.join(groups)})")
        basis = entry.attrs.get("basis")
        if not isinstance(basis, str) or not basis.strip():
            problems.append(f"reasons.{key}.basis: missing policy source")
        unknown = sorted(set(entry.attrs) - {"group", "basis"})
        if unknown:
            problems.append(f"reasons.{key}: unknown key(s) {', '.join(unknown)}")
    codes = list(REASON_CODES) if required_codes is None else list(required_codes)
    for section, wanted in (("reasons", codes), ("statuses", STATUSES), ("deductions", list(DEDUCTION_FIELDS)),
                            ("matches", MATCHES)):
        missing = [k for k in wanted if k not in sections[section]]
        if missing:
            problems.append(f"{section}: missing {', '.join(missing)}")
    if problems:
        raise SchemaError(problems, path=path)
    return Catalogue(statuses=sections["statuses"], deductions=sections["deductions"],
                     matches=sections["matches"], groups=groups, reasons=sections["reasons"],
                     labels=sections["labels"], version=int(version))  # type: ignore[arg-type]


def check_language(lang: str) -> str:
    """``zh`` or ``en``; anything else is a usage fault (the CLI restricts the choices)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    return lang
