"""Reports: the HTML parses, is self-contained, shows the aggregates and no claim id; the console table."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from matchkit.report import summary_table, write_report


@pytest.fixture
def flags() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "claim_id": [
                "CLM-SECRET-0001",
                "CLM-SECRET-0002",
                "CLM-SECRET-0003",
                "CLM-SECRET-0004",
                "CLM-SECRET-0005",
            ],
            "deduction": [
                "children_education",
                "children_education",
                "elderly_support",
                "infant_care",
                "housing_rent",
            ],
            "status": ["verified", "partial", "review", "rejected", "unverifiable"],
            "reasons": [
                "",
                "OVER_CAP",
                "FUZZY_MATCH;OVER_CAP",
                "SUBJECT_NOT_FOUND;SUBJECT_NOT_FOUND",
                "SOURCE_MISSING",
            ],
            "claimed_amount": [24000.0, 24000.0, 36000.0, 12000.0, 18000.0],
            "allowed_amount": [24000.0, 12000.0, 36000.0, 0.0, 0.0],
            "verified_months": [12, 6, 12, 0, 0],
            "match": ["exact", "exact", "fuzzy", "none", "none"],
            "match_score": [1.0, 1.0, 0.93, 0.0, None],
        }
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _render(
    flags: pd.DataFrame, tmp_path: Path, meta: dict[str, object] | None = None
) -> tuple[str, _Collector]:
    target = tmp_path / "report.html"
    write_report(flags, target, meta=meta)
    text = target.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    return text, parser


def test_html_report_is_self_contained_and_complete(flags: pd.DataFrame, tmp_path: Path) -> None:
    meta = {"inputs": {"claims.parquet": 5, "household.parquet": 40}, "key id": "mk-test"}
    text, parser = _render(flags, tmp_path, meta)
    assert parser.tags[0] == "html" and "svg" in parser.tags and "table" in parser.tags
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    words = " ".join(parser.text)
    for status in flags["status"]:
        assert status in words
    assert "OVER_CAP" in words and "2" in words
    assert "mk-test" in words and "claims.parquet: 5" in words
    assert "CLM-SECRET" not in text
    assert "fuzzy link score histogram" in words
    assert os.listdir(tmp_path) == ["report.html"]  # no temporary file left behind


def test_html_report_escapes_everything(flags: pd.DataFrame, tmp_path: Path) -> None:
    hostile = flags.assign(deduction="<script>alert(1)</script>", reasons="<b>X</b>")
    text, _ = _render(hostile, tmp_path, {"input": "<img src=x>"})
    assert "<script>alert" not in text and "<img src" not in text and "<b>X" not in text
    assert "&lt;script&gt;" in text


def test_html_report_of_no_lines(tmp_path: Path) -> None:
    empty = pd.DataFrame(
        columns=[
            "claim_id",
            "deduction",
            "status",
            "reasons",
            "claimed_amount",
            "allowed_amount",
            "verified_months",
            "match",
            "match_score",
        ]
    )
    text, parser = _render(empty, tmp_path)
    assert "0 claim lines" in text and "html" in parser.tags


def test_summary_table_lists_statuses_and_totals(flags: pd.DataFrame) -> None:
    table = summary_table(flags)
    for status in flags["status"]:
        assert status in table
    assert "114,000.00" in table and "72,000.00" in table
    assert "OVER_CAP" in table and "fuzzy" in table
    assert "CLM-SECRET" not in table
    assert max(len(line) for line in table.splitlines()) <= 100


def test_reason_counted_once_per_line(flags: pd.DataFrame) -> None:
    table = summary_table(flags)
    line = next(line for line in table.splitlines() if "SUBJECT_NOT_FOUND" in line)
    assert line.split()[-1] == "1"
