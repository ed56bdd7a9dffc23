"""The workbench page as a browser shows it: headless Chromium (Debian's `chromium` package, used when present)
loads the report, runs its script and dumps the DOM; the worklist rows, the tabs, the pager and the charts must be
there. Skipped when no Chromium is installed (CI installs nothing by hand)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchkit.report import write_report
from matchkit.report.catalogue import load_catalogue

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this machine")


def dump_dom(page: Path, fragment: str = "") -> str:
    """The DOM after the page's script ran (no network: the page needs none, and Chromium is told so)."""
    result = subprocess.run(
        [str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--proxy-server=127.0.0.1:9", "--virtual-time-budget=3000",
         "--dump-dom", page.resolve().as_uri() + fragment],
        check=False, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    n = 400
    mix = [("verified", ""), ("partial", "OVER_CAP"), ("review", "FUZZY_MATCH"), ("rejected", "SUBJECT_NOT_FOUND"),
           ("partial", "SIBLING_CAP_EXCEEDED"), ("unverifiable", "SOURCE_MISSING"), ("review", "AMBIGUOUS_MATCH")]
    pick = rng.integers(0, len(mix), size=n)
    flags = pd.DataFrame({
        "claim_id": [f"SB{i:06d}" for i in range(n)],
        "deduction": rng.choice(["children_education", "elderly_support", "infant_care"], size=n),
        "status": [mix[p][0] for p in pick], "reasons": [mix[p][1] for p in pick],
        "claimed_amount": rng.integers(1, 25, size=n) * 1000.0,
        "verified_months": rng.integers(0, 13, size=n), "match": "exact", "match_score": 1.0})
    flags["allowed_amount"] = np.where(flags["status"] == "verified", flags["claimed_amount"], 0.0)
    flags.loc[flags["status"] == "review", ["match", "match_score"]] = ["fuzzy", 0.91]
    target = tmp_path_factory.mktemp("browser") / "report.html"
    write_report(flags, target, flags_name="flags.xlsx", worklist_limit=60)
    return target


def test_browser_renders_worklist_and_charts(page) -> None:
    catalogue = load_catalogue()
    dom = dump_dom(page)
    assert dom.count("<svg") >= 4 and "<rect" in dom  # status, groups, deductions, fuzzy scores, reasons
    rows = re.findall(r'<tr class="line">(.*?)</tr>', dom)
    assert len(rows) == 50 or 0 < len(rows) < 50  # one page of the first group
    first_group = catalogue.groups["ambiguous"].text("zh")
    assert f'class="on">{first_group} (' in dom  # the most urgent group is open first
    assert catalogue.reason("AMBIGUOUS_MATCH", "zh") in rows[0] and "AMBIGUOUS_MATCH" in rows[0]
    assert re.search(r'id="wl-page">第 1/\d+ 页，共 \d+ 行<', dom)
    assert 'id="wl-tools"' in dom and 'id="wl-tools" hidden' not in dom


def test_browser_opens_the_group_named_in_the_address(page) -> None:
    catalogue = load_catalogue()
    dom = dump_dom(page, "#g=ineligible")
    rows = re.findall(r'<tr class="line">(.*?)</tr>', dom)
    assert len(rows) == 50  # one full page
    assert all(catalogue.reason("OVER_CAP", "zh") in row for row in rows)
    shown = re.search(r'id="wl-page">第 1/2 页，共 (\d+) 行<', dom)
    assert shown and 50 < int(shown.group(1)) <= 60  # at most 60 in the page (the cap), so two pages
    amounts = [float(m.replace(",", "")) for m in re.findall(r'<td class="n">([\d,]+\.\d\d)</td>', "".join(rows))]
    at_stake = amounts[2::3]  # claimed, allowed, at stake per row
    assert at_stake == sorted(at_stake, reverse=True)  # most at stake first
    assert "flags.xlsx" in dom  # the page says where the full list is


def test_browser_filters_and_sorts_as_the_address_says(page) -> None:
    """The view in the address: every group, only SOURCE_MISSING lines, sorted by amount claimed, ascending."""
    dom = dump_dom(page, "#g=*&r=SOURCE_MISSING&s=claimed&d=1")
    rows = re.findall(r'<tr class="line">(.*?)</tr>', dom)
    assert rows and all("SOURCE_MISSING" in row for row in rows)
    assert not any("OVER_CAP" in row or "FUZZY_MATCH" in row for row in rows)
    claimed = [float(m.replace(",", "")) for m in re.findall(r'<td class="n">([\d,]+\.\d\d)</td>', "".join(rows))][::3]
    assert claimed == sorted(claimed) and claimed[0] < claimed[-1]
    assert 'class="on">全部 (' in dom


def test_browser_opens_a_claims_reasons_in_full(page) -> None:
    """Finding one claim from the address opens its details: each reason with its evidence, rule, basis, check."""
    catalogue = load_catalogue()
    embedded = re.search(r'id="worklist-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.DOTALL)
    claim = json.loads(embedded.group(1))["rows"][-1][0]  # some line that is not verified
    dom = dump_dom(page, f"#g=*&c={claim}")
    rows = re.findall(r'<tr class="line">(.*?)</tr>', dom)
    assert len(rows) == 1 and claim in rows[0]
    detail = re.search(r'<tr class="detail">(.*?)</tr>', dom)
    assert detail, "the line's details did not open"
    code = next(c for c in catalogue.reasons if c in rows[0])
    for field in ("evidence", "rule", "check"):
        assert catalogue.reason(code, "zh", field) in detail.group(1)
    assert catalogue.basis(code) in detail.group(1) and f"({code})" in detail.group(1)
