"""Issue 16 end to end on real encodings: raw CSVs hashed with a key (``mk1``: pinyin, traditional -> simplified,
birth-date salt), verified with the default linker. Which name spellings agree with an exactly linked person, and
what happens when a valid ID belongs to another real child."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from matchkit.jobs.hash import hash_file
from matchkit.jobs.verify import load_hashed_inputs
from matchkit.security.keys import SharedKey
from matchkit.synth.gb11643 import check_char
from matchkit.verify import verify_tables


def person_id(county: str, birth: str, sequence: str) -> str:
    body = county + birth + sequence
    return body + check_char(body)


KID = person_id("110101", "20150304", "123")  # 张伟明, dad's child
OTHER = person_id("110101", "20150304", "128")  # 李娜: one sequence digit away, same county and birth date
DAD = person_id("110101", "19800101", "015")
STRANGER = person_id("110102", "19790505", "033")
GRAN = person_id("110105", "19500612", "022")  # 王秀英, dad's mother
OLD_OTHER = person_id("110105", "19500612", "082")  # 赵桂兰: one digit away

# claim id, subject id, subject name, subject birth date, deduction, first month, last month
CLAIMS = [
    ("typo", OTHER, "张伟明", "2015-03-04", "children_education", 1, 1),
    ("homophone", KID, "张伟铭", "2015-03-04", "children_education", 2, 2),
    ("traditional", KID, "張偉明", "2015-03-04", "children_education", 3, 3),
    ("typo-trad", OTHER, "張偉銘", "2015-03-04", "children_education", 4, 4),
    ("nobody", KID, "王小红", "2015-03-04", "children_education", 5, 5),
    ("name-typo", KID, "张伟亮", "2015-03-04", "children_education", 6, 6),
    ("no-name", OTHER, "", "", "children_education", 7, 7),
    ("exact", KID, "张伟明", "2015-03-04", "children_education", 8, 8),
    ("parent-typo", OLD_OTHER, "王秀英", "1950-06-12", "elderly_support", 1, 12),
]


@pytest.fixture(scope="module")
def flags(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    raw = tmp_path_factory.mktemp("raw")
    out = tmp_path_factory.mktemp("hashed")
    pd.DataFrame(
        [
            {"claim_id": cid, "taxpayer_id": DAD, "taxpayer_name": "张建国", "deduction": deduction,
             "tax_year": 2025, "period_start": f"2025-{first:02d}", "period_end": f"2025-{last:02d}",
             "subject_id": subject, "subject_name": name, "subject_birth_date": birth,
             "subject_relation": "child" if deduction == "children_education" else "parent",
             "share": "100%" if deduction == "children_education" else "",
             "monthly_amount": 2000 if deduction == "children_education" else 1500,
             "education_stage": "compulsory" if deduction == "children_education" else ""}
            for cid, subject, name, birth, deduction, first, last in CLAIMS
        ]
    ).to_csv(raw / "claims.csv", index=False)
    pd.DataFrame(
        [
            {"parent_id": DAD, "parent_name": "张建国", "child_id": KID, "child_name": "张伟明"},
            {"parent_id": STRANGER, "parent_name": "李强", "child_id": OTHER, "child_name": "李娜"},
            {"parent_id": GRAN, "parent_name": "王秀英", "child_id": DAD, "child_name": "张建国"},
            {"parent_id": OLD_OTHER, "parent_name": "赵桂兰", "child_id": STRANGER, "child_name": "李强"},
        ]
    ).to_csv(raw / "household.csv", index=False)
    pd.DataFrame(
        [
            {"student_id": KID, "student_name": "张伟明", "birth_date": "2015-03-04",
             "education_stage": "compulsory", "enrolled_from": "2021-09", "enrolled_to": ""},
            {"student_id": OTHER, "student_name": "李娜", "birth_date": "2015-03-04",
             "education_stage": "compulsory", "enrolled_from": "2021-09", "enrolled_to": ""},
        ]
    ).to_csv(raw / "education.csv", index=False)
    pd.DataFrame(columns=["event", "person_id", "person_name", "partner_id", "partner_name", "event_date"]).to_csv(
        raw / "civil_affairs.csv", index=False
    )
    key = SharedKey("mk-test", bytes(range(32)))
    for source in ("claims", "household", "education", "civil_affairs"):
        hash_file(source, raw / f"{source}.csv", key, out / f"{source}.parquet", workers=1,
                  allow_empty=source == "civil_affairs")
    extracts: list[str | Path] = [out / f"{s}.parquet" for s in ("household", "education", "civil_affairs")]
    claims, sources, _ = load_hashed_inputs(out / "claims.parquet", extracts)
    return verify_tables(claims, sources).set_index("claim_id")


def test_an_id_of_another_real_child_links_the_child_the_claim_names(flags: pd.DataFrame) -> None:
    for cid in ("typo", "typo-trad"):  # the claim's name as typed, or in traditional characters + a homophone
        row = flags.loc[cid]
        assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "FUZZY_MATCH", "fuzzy", 2000)
        assert 0.75 <= row.match_score < 1


def test_homophones_and_traditional_characters_agree(flags: pd.DataFrame) -> None:
    for cid in ("homophone", "traditional", "exact"):
        row = flags.loc[cid]
        assert (row.status, row.reasons, row.match, row.allowed_amount) == ("verified", "", "exact", 2000)


def test_a_name_nobody_has_keeps_the_exact_link(flags: pd.DataFrame) -> None:
    for cid in ("nobody", "name-typo"):  # one character wrong is a typo in the name: it ends here
        row = flags.loc[cid]
        assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "NAME_MISMATCH", "exact", 2000)


def test_without_a_subject_name_the_exact_match_stands(flags: pd.DataFrame) -> None:
    row = flags.loc["no-name"]
    assert (row.status, row.reasons, row.match, row.allowed_amount) == ("rejected", "RELATION_UNVERIFIED", "exact", 0)


def test_a_parents_id_of_another_real_person(flags: pd.DataFrame) -> None:
    row = flags.loc["parent-typo"]  # the ID's owner is not dad's parent; the named one is, aged 60+ all year
    assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "FUZZY_MATCH", "fuzzy", 18000)
