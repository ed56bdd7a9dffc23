"""The reason catalogue is data (matchkit/data/reasons.toml), complete and validated; `matchkit reasons` reads it."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from matchkit.cli.main import main
from matchkit.errors import SchemaError
from matchkit.report.catalogue import LANGUAGES, STATUSES, catalogue_path, load_catalogue, parse_catalogue
from matchkit.verify.policy import DEDUCTION_FIELDS
from matchkit.verify.reasons import REASON_CODES

REPO = Path(__file__).resolve().parents[1]
SPEC_CODES = (  # SPEC §5
    "INVALID_SUBJECT_ID", "SUBJECT_NOT_FOUND", "FUZZY_MATCH", "NOT_ENROLLED", "STAGE_MISMATCH", "AGE_INELIGIBLE",
    "SHARE_EXCEEDED", "OVER_CAP", "SUBJECT_DECEASED", "NOT_ONLY_CHILD", "SIBLING_CAP_EXCEEDED",
    "RELATION_UNVERIFIED", "EXPENSE_BELOW_THRESHOLD", "AMOUNT_EXCEEDS_EVIDENCE", "DUPLICATE_CLAIM",
    "SOURCE_MISSING", "AMBIGUOUS_MATCH", "NAME_MISMATCH",
)  # fmt: skip


def _raw() -> dict:
    return tomllib.loads(catalogue_path().read_text(encoding="utf-8"))


def test_every_code_the_engine_can_emit_is_explained() -> None:
    catalogue = load_catalogue()
    assert set(REASON_CODES) <= set(catalogue.reasons)
    assert set(SPEC_CODES) <= set(catalogue.reasons)
    for code, entry in catalogue.reasons.items():
        for lang in LANGUAGES:
            for field in ("", "evidence", "rule", "check"):
                assert entry.text(lang, field).strip(), (code, lang, field)
        assert entry.attrs["group"] in catalogue.groups and entry.attrs["basis"].strip()
    assert set(STATUSES) <= set(catalogue.statuses) and set(DEDUCTION_FIELDS) <= set(catalogue.deductions)


def test_policy_sources_are_named() -> None:
    bases = {load_catalogue().basis(code) for code in SPEC_CODES}
    for document in ("国发〔2018〕41号", "国发〔2022〕8号", "国发〔2023〕13号", "公告2018年第60号"):
        assert any(document in basis for basis in bases), document


def test_review_groups_order_what_the_reviewer_does() -> None:
    catalogue = load_catalogue()
    assert catalogue.group_order()[:3] == ["ambiguous", "identity", "competing"]
    assert catalogue.group_of(["OVER_CAP", "FUZZY_MATCH"]) == "identity"
    assert catalogue.group_of(["SOURCE_MISSING"]) == "source_missing"
    assert catalogue.group_of(["NOT_A_CODE"]) == catalogue.group_of([]) == "other"


def test_a_broken_catalogue_is_refused_with_every_problem_named() -> None:
    data = _raw()
    del data["reasons"]["OVER_CAP"]
    del data["reasons"]["FUZZY_MATCH"]["rule_en"]
    data["reasons"]["NOT_ENROLLED"]["group"] = "nowhere"
    data["statuses"]["review"]["zh"] = " "
    with pytest.raises(SchemaError) as caught:
        parse_catalogue(data, path="reasons.toml")
    problems = caught.value.problems
    assert "reasons: missing OVER_CAP" in problems
    assert "reasons.FUZZY_MATCH.rule_en: missing or empty text" in problems
    assert any(p.startswith("reasons.NOT_ENROLLED.group: must name one of") for p in problems)
    assert "statuses.review.zh: missing or empty text" in problems
    assert str(caught.value).startswith("reasons.toml: invalid configuration (4 problem(s))")


def test_a_catalogue_file_that_is_not_toml(tmp_path) -> None:
    bad = tmp_path / "reasons.toml"
    bad.write_text("format = ", encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid TOML"):
        load_catalogue(str(bad))


def test_catalogue_ships_with_the_package() -> None:
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    relative = catalogue_path().relative_to(REPO / "matchkit").as_posix()
    assert relative == "data/reasons.toml"
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data["matchkit"])


def test_reasons_command_in_chinese_and_english(capsys) -> None:
    catalogue = load_catalogue()
    assert main(["reasons"]) == 0
    out = capsys.readouterr().out
    for code in catalogue.reasons:
        assert code in out and catalogue.reason(code, "zh") in out
    assert "政策依据：国发〔2018〕41号 第二十二条" in out and catalogue.groups["competing"].text("zh") in out
    assert main(["reasons", "--lang", "en", "over_cap"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== " + catalogue.groups["ineligible"].text("en"))
    assert "OVER_CAP  Above the standard" in out and "FUZZY_MATCH" not in out


def test_reasons_command_refuses_an_unknown_code(capsys) -> None:
    assert main(["reasons", "NO_SUCH_CODE"]) == 1
    assert "unknown reason code(s): NO_SUCH_CODE" in capsys.readouterr().err
