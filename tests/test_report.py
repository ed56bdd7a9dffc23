"""The review workbench (HTML) and the console summary: self-contained, every text from the catalogue, the worklist
holds every line that is not verified, grouped by what the reviewer must do; capped at scale; escaped."""

from __future__ import annotations

import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from matchkit import __version__
from matchkit.report import summary_table, write_report
from matchkit.report.catalogue import load_catalogue


@pytest.fixture
def flags() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "claim_id": ["CLM-0001", "CLM-0002", "CLM-0003", "CLM-0004", "CLM-0005"],
            "deduction": ["children_education", "children_education", "elderly_support", "infant_care",
                          "housing_rent"],
            "status": ["verified", "partial", "review", "rejected", "unverifiable"],
            "reasons": ["", "OVER_CAP", "FUZZY_MATCH;OVER_CAP", "SUBJECT_NOT_FOUND;SUBJECT_NOT_FOUND",
                        "SOURCE_MISSING"],
            "claimed_amount": [24000.0, 24000.0, 36000.0, 12000.0, 18000.0],
            "allowed_amount": [24000.0, 12000.0, 36000.0, 0.0, 0.0],
            "verified_months": [12, 6, 12, 0, 0],
            "match": ["exact", "exact", "fuzzy", "none", "none"],
            "match_score": [1.0, 1.0, 0.93, 0.0, None],
        }
    )


META = {
    "key_id": "mk-test",
    "encoding_version": "mk1",
    "purpose": "iit-special-deduction",
    "inputs": [
        {"name": "claims.parquet", "source": "claims", "rows": 5, "digest": "ab" * 32},
        {"name": "household.parquet", "source": "household", "rows": 40, "digest": "cd" * 32,
         "signer": "gongan (sk-1)"},
    ],
}


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


def _render(flags: pd.DataFrame, tmp_path: Path, **options) -> tuple[str, _Collector]:
    target = tmp_path / "report.html"
    write_report(flags, target, **options)
    text = target.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    return text, parser


def worklist_data(text: str) -> dict:
    """The JSON the page's script renders the worklist from."""
    match = re.search(r'<script type="application/json" id="worklist-data">(.*?)</script>', text, re.DOTALL)
    assert match, "no worklist data in the page"
    return json.loads(match.group(1))


def test_report_is_self_contained(flags: pd.DataFrame, tmp_path: Path) -> None:
    text, parser = _render(flags, tmp_path, meta=META, flags_name="flags.xlsx")
    assert parser.tags[0] == "html" and {"svg", "table", "script"} <= set(parser.tags)
    lowered = text.lower()
    for network in ("http://", "https://", "src=", "href=", "<link", "@import", "url(", "@font-face"):
        assert network not in lowered, network
    assert os.listdir(tmp_path) == ["report.html"]  # no temporary file left behind
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o600  # as the flags: it holds claim ids


def test_report_is_chinese_by_default_with_every_text_from_the_catalogue(flags, tmp_path) -> None:
    catalogue = load_catalogue()
    text, parser = _render(flags, tmp_path, meta=META, flags_name="flags.xlsx")
    words = " ".join(parser.text)
    assert '<html lang="zh-CN">' in text and catalogue.label("report.title", "zh") in words
    for status in flags["status"]:
        assert catalogue.status(status, "zh") in words
    for deduction in flags["deduction"]:
        assert catalogue.deduction(deduction, "zh") in words
    for code in ("OVER_CAP", "FUZZY_MATCH", "SUBJECT_NOT_FOUND", "SOURCE_MISSING"):
        assert code in words and catalogue.reason(code, "zh") in words
        assert catalogue.reason(code, "zh", "evidence") in words and catalogue.basis(code) in words
    assert "SIBLING_CAP_EXCEEDED" not in text  # only the codes the flags carry


def test_report_in_english(flags, tmp_path) -> None:
    catalogue = load_catalogue()
    text, parser = _render(flags, tmp_path, meta=META, lang="en")
    words = " ".join(parser.text)
    assert '<html lang="en">' in text and "Worklist" in words and "Outcome by status" in words
    assert catalogue.reason("OVER_CAP", "en") in words
    assert catalogue.status("unverifiable", "zh") not in words
    data = worklist_data(text)
    assert data["labels"]["col.claimed"] == "Claimed (yuan)"


def test_run_table_is_clean(flags, tmp_path) -> None:
    """Inputs as a table of file, source, rows, signer and digest; the tool version once; no Python repr."""
    text, parser = _render(flags, tmp_path, meta=META, flags_name="flags.xlsx")
    words = " ".join(parser.text)
    assert words.count(f"matchkit {__version__}") == 1 and words.count(__version__) == 1
    run = text[text.index('id="run"'):text.index("</main>")]
    for value in ("claims.parquet", "household.parquet", "ab" * 32, "cd" * 32, "gongan (sk-1)", "mk-test",
                  "mk1", "flags.xlsx", ">40<"):
        assert value in run, value
    for repr_mark in ("{'", "[{", "'name'", "': ", "{\"", "None"):
        assert repr_mark not in run


def test_worklist_holds_every_line_not_verified_in_its_review_group(flags, tmp_path) -> None:
    text, _ = _render(flags, tmp_path, meta=META)
    data = worklist_data(text)
    rows = {row[0]: row for row in data["rows"]}
    assert set(rows) == {"CLM-0002", "CLM-0003", "CLM-0004", "CLM-0005"}  # the verified line is not there
    assert {cid: row[1] for cid, row in rows.items()} == {
        "CLM-0002": "ineligible", "CLM-0003": "identity", "CLM-0004": "evidence", "CLM-0005": "source_missing"}
    assert [g["key"] for g in data["groups"]] == ["identity", "evidence", "ineligible", "source_missing"]
    assert all(g["total"] == g["shown"] == 1 for g in data["groups"])
    # claimed, allowed, at stake (the whole claim for a line under review), months, match score
    assert rows["CLM-0002"][5:9] == [24000.0, 12000.0, 12000.0, 6]
    assert rows["CLM-0003"][5:8] == [36000.0, 36000.0, 36000.0] and rows["CLM-0003"][10] == 0.93
    assert data["combos"][rows["CLM-0004"][4]] == ["SUBJECT_NOT_FOUND"]  # a code once a line
    explained = data["reasons"]["FUZZY_MATCH"]
    assert explained["name"] == load_catalogue().reason("FUZZY_MATCH", "zh") and explained["check"]


def test_worklist_is_capped_per_group_with_the_most_at_stake_first(tmp_path) -> None:
    n = 30
    flags = pd.DataFrame({
        "claim_id": [f"C{i:03d}" for i in range(n)], "deduction": "children_education", "status": "partial",
        "reasons": "OVER_CAP", "claimed_amount": [1000.0 * (i + 2) for i in range(n)],
        "allowed_amount": 1000.0, "verified_months": 12, "match": "exact", "match_score": 1.0})
    text, _parser = _render(flags, tmp_path, flags_name="big_flags.xlsx", worklist_limit=5)
    data = worklist_data(text)
    assert [row[0] for row in data["rows"]] == ["C029", "C028", "C027", "C026", "C025"]
    assert data["groups"] == [{**data["groups"][0], "key": "ineligible", "total": n, "shown": 5}]
    assert data["flags"] == "big_flags.xlsx" and data["limit"] == 5
    assert "{flags}" in data["labels"]["capped"]  # the page fills in where the full list is


def test_report_escapes_everything(flags, tmp_path) -> None:
    hostile = flags.assign(deduction="<script>alert(1)</script>", reasons="<b>X</b>",
                           claim_id="</script><script>alert(2)</script>")
    text, _ = _render(hostile, tmp_path, meta={"inputs": [{"name": "<img src=x>", "rows": 1}]})
    assert "<script>alert" not in text and "<img src" not in text and "<b>X" not in text
    assert "&lt;script&gt;" in text
    data = worklist_data(text)
    assert data["rows"][0][0] == "</script><script>alert(2)</script>"  # intact once parsed, inert in the page
    assert data["combos"] == [["<b>X</b>"]]


def test_unknown_codes_and_statuses_still_render(tmp_path) -> None:
    """A flags file from another matchkit version: unknown words shown as they are, lines in the 'other' group."""
    flags = pd.DataFrame({"claim_id": ["A1"], "deduction": "new_deduction", "status": "escalated",
                          "reasons": "NEW_CODE", "claimed_amount": [10.0], "allowed_amount": [0.0],
                          "verified_months": [None], "match": "exact", "match_score": [1.0]})
    text, parser = _render(flags, tmp_path)
    words = " ".join(parser.text)
    assert "escalated" in words and "new_deduction" in words and "NEW_CODE" in words
    assert [g["key"] for g in worklist_data(text)["groups"]] == ["other"]


def test_report_of_no_lines(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["claim_id", "deduction", "status", "reasons", "claimed_amount",
                                  "allowed_amount", "verified_months", "match", "match_score"])
    text, parser = _render(empty, tmp_path)
    words = " ".join(parser.text)
    assert "共 0 条申报" in words and load_catalogue().label("worklist.empty", "zh") in words
    assert worklist_data(text)["rows"] == []


def test_summary_table_lists_statuses_and_totals(flags: pd.DataFrame) -> None:
    table = summary_table(flags)
    for status in flags["status"]:
        assert status in table
    assert "114,000.00" in table and "72,000.00" in table
    assert "OVER_CAP" in table and "fuzzy" in table
    assert "CLM-" not in table
    assert max(len(line) for line in table.splitlines()) <= 100


def test_reason_counted_once_per_line(flags: pd.DataFrame) -> None:
    table = summary_table(flags)
    line = next(line for line in table.splitlines() if "SUBJECT_NOT_FOUND" in line)
    assert line.split()[-1] == "1"
