"""Rule-by-rule tests of the verification engine on small hand-made hashed tables.

Tokens are fabricated (b"P" + name, padded to 16 bytes); name encodings are one CRC per name, and a fake linker
links on a shared name code, so these tests do not depend on matchkit.link.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib

import numpy as np
import pandas as pd
import pytest

from matchkit.verify import OUTPUT_COLUMNS, REASON_CODES, verify_tables


def tok(name: str | None) -> bytes | None:
    return None if name is None else b"P" + name.encode().ljust(15, b"\0")


def name_code(name: str) -> list[int]:
    return [zlib.crc32(name.encode())]


def entity(prefix: str, name: str | None, *, fuzzy_name: str | None = None) -> dict:
    return {
        f"{prefix}_id_tok": tok(name),
        f"{prefix}_id_near": None,
        f"{prefix}_name_fz": name_code(fuzzy_name or name) if name else None,
        f"{prefix}_dob_tok": None,
    }


def claim(
    cid: str,
    taxpayer: str,
    subject: str | None,
    deduction: str,
    year: int,
    *,
    start: int = 1,
    end: int = 12,
    relation: str | None = None,
    share: float = 1.0,
    monthly: float = math.nan,
    annual: float = math.nan,
    stage: str | None = None,
    birth_ym: int | None = None,
    valid: bool | None = True,
    name: str | None = None,
    only_child: bool | None = None,
) -> dict:
    return {
        "claim_id": cid,
        "taxpayer_id_tok": tok(taxpayer),
        "taxpayer_id_valid": True,
        "subject_id_tok": tok(subject),
        "subject_id_valid": valid,
        "subject_id_near": None,
        "subject_name_fz": name_code(name or subject or taxpayer),
        "subject_dob_tok": None,
        "subject_birth_ym": birth_ym,
        "subject_id_birth_ym": birth_ym if valid else None,
        "deduction": deduction,
        "tax_year": year,
        "period_start": year * 100 + start,
        "period_end": year * 100 + end,
        "subject_relation": relation,
        "share": share,
        "monthly_amount": monthly,
        "annual_amount": annual,
        "education_stage": stage,
        "only_child": only_child,
    }


def claims_frame(*rows: dict) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    frame.insert(1, "_line", np.arange(2, len(frame) + 2))
    for column in ("subject_birth_ym", "subject_id_birth_ym"):
        frame[column] = pd.array(frame[column], dtype="Int64")
    return frame


def education(*spells: tuple) -> pd.DataFrame:
    rows = []
    for student, stage, enrolled_from, enrolled_to in spells:
        rows.append(
            {
                **entity("student", student),
                "education_stage": stage,
                "enrolled_from": enrolled_from,
                "enrolled_to": enrolled_to,
            }
        )
    frame = pd.DataFrame(rows)
    frame["enrolled_to"] = pd.array(frame["enrolled_to"], dtype="Int64")
    return frame


def household(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{**entity("parent", p), **entity("child", c)} for p, c in pairs])


def civil(*events: tuple) -> pd.DataFrame:
    rows = []
    for event, person, partner, date in events:
        rows.append(
            {
                "event": event,
                **entity("person", person),
                **entity("partner", partner),
                "event_date": dt.date.fromisoformat(date),
            }
        )
    columns = ["event", *entity("person", "x"), *entity("partner", "x"), "event_date"]
    return pd.DataFrame(rows, columns=columns)


def only_child(*people: str) -> pd.DataFrame:
    return pd.DataFrame([entity("person", p) for p in people] or [entity("person", "nobody-at-all")])


def medical(*rows: tuple) -> pd.DataFrame:
    columns = [*entity("patient", "x"), "year", "total_cost", "out_of_pocket"]
    return pd.DataFrame(
        [
            {**entity("patient", p), "year": y, "total_cost": oop * 2, "out_of_pocket": oop}
            for p, y, oop in rows
        ],
        columns=columns,
    )


def fake_linker(queries: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """Links on a shared name code; two distinct persons with the query's name -> ambiguous."""
    by_name: dict[int, list[bytes]] = {}
    for id_tok, codes in zip(persons["id_tok"], persons["name_fz"], strict=True):
        for code in codes or []:
            by_name.setdefault(code, []).append(id_tok)
    rows = {}
    for index, codes in zip(queries.index, queries["name_fz"], strict=True):
        hits = sorted({t for code in codes or [] for t in by_name.get(code, [])})
        if hits:
            rows[index] = {"person_id_tok": hits[0], "score": 0.9, "ambiguous": len(hits) > 1}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["person_id_tok", "score", "ambiguous"])


def verify(claims: pd.DataFrame, **sources: pd.DataFrame) -> pd.DataFrame:
    return verify_tables(claims, sources, linker=fake_linker)


def one(result: pd.DataFrame, cid: str) -> pd.Series:
    return result.set_index("claim_id").loc[cid]


def codes(row: pd.Series) -> set[str]:
    return set(row["reasons"].split(";")) - {""}


# ----------------------------------------------------------------------------------------------------
# children_education


def test_children_education_2025_full_year_verified() -> None:
    c = claims_frame(claim("c1", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000))
    out = verify(
        c, household=household(("dad", "kid")), education=education(("kid", "compulsory", 202109, None))
    )
    row = one(out, "c1")
    assert (row.status, row.reasons, row.claimed_amount, row.allowed_amount) == ("verified", "", 24000, 24000)
    assert (row.verified_months, row.match, row.match_score) == (12, "exact", 1.0)
    assert list(out.columns) == OUTPUT_COLUMNS


def test_children_education_2022_standard_is_1000_and_over_cap() -> None:
    c = claims_frame(
        claim("ok", "dad", "kid", "children_education", 2022, stage="compulsory", monthly=1000),
        claim("over", "mum", "kid2", "children_education", 2022, stage="compulsory", monthly=2000),
    )
    hh = household(("dad", "kid"), ("mum", "kid2"))
    ed = education(("kid", "compulsory", 202009, None), ("kid2", "compulsory", 202009, None))
    out = verify(c, household=hh, education=ed)
    assert one(out, "ok").status == "verified" and one(out, "ok").allowed_amount == 12000
    over = one(out, "over")
    assert (over.status, over.reasons, over.allowed_amount, over.claimed_amount) == (
        "partial",
        "OVER_CAP",
        12000,
        24000,
    )


def test_default_amount_is_standard_times_share() -> None:
    c = claims_frame(claim("c", "dad", "kid", "children_education", 2025, stage="compulsory", share=0.5))
    out = verify(
        c, household=household(("dad", "kid")), education=education(("kid", "compulsory", 202109, None))
    )
    assert one(out, "c").claimed_amount == 12000 and one(out, "c").status == "verified"


def test_not_enrolled_after_spell_ends_and_near_miss() -> None:
    c = claims_frame(
        claim("gap", "dad", "kid", "children_education", 2025, stage="high_school", monthly=2000),
        claim(
            "fit", "dad", "kid", "children_education", 2025, start=1, end=6, stage="high_school", monthly=2000
        ),
    )
    out = verify(
        c, household=household(("dad", "kid")), education=education(("kid", "high_school", 202209, 202506))
    )
    gap = one(out, "gap")
    assert (gap.status, gap.reasons, gap.allowed_amount, gap.verified_months) == (
        "partial",
        "NOT_ENROLLED",
        12000,
        6,
    )
    # the second line overlaps the first for the same child: it is a duplicate, so test it alone
    out2 = verify(
        c.iloc[[1]],
        household=household(("dad", "kid")),
        education=education(("kid", "high_school", 202209, 202506)),
    )
    assert one(out2, "fit").status == "verified"


def test_stage_mismatch_and_stage_change_near_miss() -> None:
    spells = education(("kid", "compulsory", 201609, 202506), ("kid", "high_school", 202509, None))
    hh = household(("dad", "kid"))
    wrong = claims_frame(
        claim("w", "dad", "kid", "children_education", 2025, end=6, stage="high_school", monthly=2000)
    )
    row = one(verify(wrong, household=hh, education=spells), "w")
    assert (row.status, row.reasons, row.allowed_amount) == ("rejected", "STAGE_MISMATCH", 0)
    right = claims_frame(
        claim(
            "r", "dad", "kid", "children_education", 2025, start=9, end=12, stage="high_school", monthly=2000
        )
    )
    row = one(verify(right, household=hh, education=spells), "r")
    assert (row.status, row.allowed_amount, row.verified_months) == ("verified", 8000, 4)
    # July/August: between spells -> not enrolled
    summer = claims_frame(
        claim(
            "s", "dad", "kid", "children_education", 2025, start=7, end=9, stage="high_school", monthly=2000
        )
    )
    row = one(verify(summer, household=hh, education=spells), "s")
    assert (row.status, row.reasons, row.allowed_amount) == ("partial", "NOT_ENROLLED", 2000)


def test_relation_unverified_vs_subject_not_found() -> None:
    c = claims_frame(
        claim("other", "stranger", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
        claim(
            "nobody",
            "dad",
            "ghost",
            "children_education",
            2025,
            stage="compulsory",
            monthly=2000,
            name="ghost",
        ),
        claim("edu_only", "dad", "pupil", "children_education", 2025, stage="compulsory", monthly=2000),
    )
    ed = education(("kid", "compulsory", 202109, None), ("pupil", "compulsory", 202109, None))
    out = verify(c, household=household(("dad", "kid")), education=ed)
    assert (one(out, "other").status, one(out, "other").reasons) == ("rejected", "RELATION_UNVERIFIED")
    ghost = one(out, "nobody")
    assert (ghost.status, ghost.reasons, ghost.match, ghost.match_score) == (
        "rejected",
        "SUBJECT_NOT_FOUND",
        "none",
        0,
    )
    assert (one(out, "edu_only").status, one(out, "edu_only").reasons) == ("rejected", "RELATION_UNVERIFIED")


def test_share_exceeded_and_exact_hundred_percent() -> None:
    hh = household(("dad", "kid"), ("mum", "kid"))
    ed = education(("kid", "compulsory", 202109, None))
    fine = claims_frame(
        claim("d", "dad", "kid", "children_education", 2025, stage="compulsory", share=0.5, monthly=1000),
        claim("m", "mum", "kid", "children_education", 2025, stage="compulsory", share=0.5, monthly=1000),
    )
    out = verify(fine, household=hh, education=ed)
    assert set(out.status) == {"verified"} and set(out.allowed_amount) == {12000}
    both_full = claims_frame(
        claim("d", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
        claim("m", "mum", "kid", "children_education", 2025, stage="compulsory", start=7, monthly=2000),
    )
    out = verify(both_full, household=hh, education=ed)
    d, m = one(out, "d"), one(out, "m")
    # Jan-Jun dad alone (2000), Jul-Dec both at 100%: 1000 each
    assert (d.status, d.reasons, d.allowed_amount) == ("partial", "SHARE_EXCEEDED", 6 * 2000 + 6 * 1000)
    assert (m.status, m.reasons, m.allowed_amount) == ("partial", "SHARE_EXCEEDED", 6000)


def test_share_split_in_proportion_to_claims() -> None:
    hh = household(("dad", "kid"), ("mum", "kid"))
    ed = education(("kid", "compulsory", 202109, None))
    c = claims_frame(
        claim("d", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
        claim("m", "mum", "kid", "children_education", 2025, stage="compulsory", share=0.5, monthly=1000),
    )
    out = verify(c, household=hh, education=ed)
    assert one(out, "d").allowed_amount == pytest.approx(12 * round(2000 * 2 / 3, 2))
    assert one(out, "m").allowed_amount == pytest.approx(12 * round(2000 / 3, 2))


def test_preschool_from_third_birthday_until_school() -> None:
    hh = household(("dad", "kid"))
    c = claims_frame(
        claim("p", "dad", "kid", "children_education", 2024, stage="preschool", monthly=2000, birth_ym=202105)
    )
    # turns 3 in May 2024, starts compulsory school Sep 2024 -> May..Aug
    out = verify(c, household=hh, education=education(("kid", "compulsory", 202409, None)))
    row = one(out, "p")
    assert (row.status, row.reasons, row.verified_months, row.allowed_amount) == (
        "partial",
        "AGE_INELIGIBLE",
        4,
        8000,
    )
    # without a compulsory spell (education not supplied: preschool does not need it) -> May..Dec
    row = one(verify(c, household=hh), "p")
    assert (row.status, row.verified_months) == ("partial", 8)


def test_preschool_ends_month_before_age_six_without_school() -> None:
    c = claims_frame(
        claim("p", "dad", "kid", "children_education", 2025, stage="preschool", monthly=2000, birth_ym=201903)
    )
    row = one(
        verify(c, household=household(("dad", "kid")), education=education(("x", "higher", 202009, None))),
        "p",
    )
    assert (row.verified_months, row.allowed_amount, row.reasons) == (2, 4000, "AGE_INELIGIBLE")


def test_preschool_continues_past_age_six_until_a_later_school_start() -> None:
    # SPEC §5: preschool ends the month before the first compulsory spell; age 6 is only the fallback without one.
    c = claims_frame(
        claim("p", "dad", "kid", "children_education", 2024, end=8, stage="preschool", monthly=2000,
              birth_ym=201708)
    )
    hh = household(("dad", "kid"))
    row = one(verify(c, household=hh, education=education(("kid", "compulsory", 202409, None))), "p")
    assert (row.status, row.reasons, row.verified_months, row.allowed_amount) == ("verified", "", 8, 16000)
    # near miss: no compulsory spell at all -> the age-6 fallback (Aug 2023) rules every 2024 month out
    row = one(verify(c, household=hh), "p")
    assert (row.status, row.reasons, row.allowed_amount) == ("rejected", "AGE_INELIGIBLE", 0)


def test_preschool_full_year_near_miss() -> None:
    c = claims_frame(
        claim("p", "dad", "kid", "children_education", 2025, stage="preschool", monthly=2000, birth_ym=202101)
    )
    row = one(verify(c, household=household(("dad", "kid"))), "p")
    assert (row.status, row.verified_months) == ("verified", 12)


# ----------------------------------------------------------------------------------------------------
# infant_care


def test_infant_care_not_in_force_before_2022() -> None:
    c = claims_frame(claim("i", "mum", "baby", "infant_care", 2021, monthly=1000, birth_ym=202101))
    row = one(verify(c, household=household(("mum", "baby"))), "i")
    assert (row.status, row.reasons, row.allowed_amount) == ("rejected", "NOT_IN_FORCE", 0)


def test_infant_care_standards_2022_and_2025() -> None:
    c = claims_frame(
        claim("a", "mum", "baby", "infant_care", 2022, monthly=1000, birth_ym=202101),
        claim("b", "mum", "baby2", "infant_care", 2025, monthly=2000, birth_ym=202301),
    )
    out = verify(c, household=household(("mum", "baby"), ("mum", "baby2")))
    assert one(out, "a").allowed_amount == 12000 and one(out, "a").status == "verified"
    assert one(out, "b").allowed_amount == 24000 and one(out, "b").status == "verified"


def test_infant_care_age_window() -> None:
    c = claims_frame(
        claim("old", "mum", "baby", "infant_care", 2023, monthly=2000, birth_ym=202006),
        claim("new", "mum", "born", "infant_care", 2023, monthly=2000, birth_ym=202304),
    )
    out = verify(c, household=household(("mum", "baby"), ("mum", "born")))
    old, new = one(out, "old"), one(out, "new")
    assert (old.status, old.reasons, old.verified_months) == ("partial", "AGE_INELIGIBLE", 5)  # Jan..May
    assert (new.status, new.reasons, new.verified_months) == ("partial", "AGE_INELIGIBLE", 9)  # Apr..Dec


def test_infant_care_and_children_education_never_overlap() -> None:
    hh = household(("mum", "kid"))
    c = claims_frame(
        claim("ic", "mum", "kid", "infant_care", 2023, monthly=2000, birth_ym=202006),
        claim(
            "ce", "mum", "kid", "children_education", 2023, monthly=2000, stage="preschool", birth_ym=202006
        ),
    )
    out = verify(c, household=hh)
    assert one(out, "ic").verified_months == 5 and one(out, "ce").verified_months == 7
    assert one(out, "ic").allowed_amount + one(out, "ce").allowed_amount == 24000


def test_infant_care_share_exceeded() -> None:
    c = claims_frame(
        claim("a", "mum", "baby", "infant_care", 2023, monthly=2000, birth_ym=202201),
        claim("b", "dad", "baby", "infant_care", 2023, monthly=2000, birth_ym=202201),
    )
    out = verify(c, household=household(("mum", "baby"), ("dad", "baby")))
    assert set(out.reasons) == {"SHARE_EXCEEDED"} and set(out.allowed_amount) == {12000}


# ----------------------------------------------------------------------------------------------------
# elderly_support

ELDERLY_SOURCES = {"household": household(("gran", "me"), ("gran", "sis"), ("gran", "bro"), ("gramps", "me"))}


def elderly(
    cid: str, taxpayer: str, parent: str, year: int = 2023, monthly: float = 3000, birth: int = 195001, **kw
) -> dict:
    return claim(
        cid,
        taxpayer,
        parent,
        "elderly_support",
        year,
        monthly=monthly,
        birth_ym=birth,
        relation="parent",
        **kw,
    )


def test_elderly_turning_sixty_in_year_and_near_miss() -> None:
    c = claims_frame(elderly("late", "me", "gran", birth=196305), elderly("ok", "me", "gramps", birth=196301))
    out = verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me"))
    late, ok = one(out, "late"), one(out, "ok")
    # only child, two parents: the taxpayer's 3000 is shared in proportion in the months both lines count
    assert late.verified_months == 8 and "AGE_INELIGIBLE" in late.reasons
    assert ok.verified_months == 12
    assert late.allowed_amount + ok.allowed_amount == 12 * 3000


def test_elderly_single_parent_age_partial() -> None:
    c = claims_frame(elderly("late", "me", "gran", birth=196305))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me")), "late")
    assert (row.status, row.reasons, row.allowed_amount, row.verified_months) == (
        "partial",
        "AGE_INELIGIBLE",
        24000,
        8,
    )


def test_elderly_death_in_year_counts_to_december_earlier_death_nothing() -> None:
    c = claims_frame(elderly("c", "me", "gran"))
    died_2023 = civil(("death", "gran", None, "2023-03-15"))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=died_2023, only_child=only_child("me")), "c")
    assert (row.status, row.allowed_amount) == ("verified", 36000)
    died_2022 = civil(("death", "gran", None, "2022-12-31"))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=died_2022, only_child=only_child("me")), "c")
    assert (row.status, row.reasons, row.allowed_amount) == ("rejected", "SUBJECT_DECEASED", 0)


def test_not_only_child_caps_at_sibling_cap() -> None:
    c = claims_frame(elderly("c", "me", "gran"))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("someone")), "c")
    assert (row.status, row.reasons, row.allowed_amount) == ("partial", "NOT_ONLY_CHILD", 18000)
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me")), "c")
    assert (row.status, row.reasons) == ("verified", "")


def test_only_child_source_needed_only_above_sibling_cap() -> None:
    above = claims_frame(elderly("c", "me", "gran"))
    row = one(verify(above, **ELDERLY_SOURCES, civil_affairs=civil()), "c")
    assert (row.status, row.reasons, row.allowed_amount) == ("unverifiable", "SOURCE_MISSING", 18000)
    at_cap = claims_frame(elderly("c", "me", "gran", monthly=1500))
    row = one(verify(at_cap, **ELDERLY_SOURCES, civil_affairs=civil()), "c")
    assert (row.status, row.allowed_amount) == ("verified", 18000)


def test_elderly_2022_standard() -> None:
    c = claims_frame(elderly("c", "me", "gran", year=2022, monthly=2000))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me")), "c")
    assert (row.status, row.allowed_amount) == ("verified", 24000)
    c = claims_frame(elderly("c", "me", "gran", year=2022, monthly=1500))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child()), "c")
    assert (row.status, row.reasons, row.allowed_amount) == ("partial", "NOT_ONLY_CHILD", 12000)


def test_sibling_cap_exceeded_and_near_miss() -> None:
    two = claims_frame(elderly("a", "me", "gran", monthly=1500), elderly("b", "sis", "gran", monthly=1500))
    out = verify(two, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child())
    assert set(out.status) == {"verified"}
    three = claims_frame(
        elderly("a", "me", "gran", monthly=1500),
        elderly("b", "sis", "gran", monthly=1500),
        elderly("c", "bro", "gran", monthly=1500),
    )
    out = verify(three, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child())
    assert set(out.reasons) == {"SIBLING_CAP_EXCEEDED"} and set(out.allowed_amount) == {12000}
    assert set(out.status) == {"partial"}


def test_one_taxpayer_across_parents_over_cap() -> None:
    both = claims_frame(elderly("a", "me", "gran"), elderly("b", "me", "gramps"))
    out = verify(both, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me"))
    assert set(out.reasons) == {"OVER_CAP"} and set(out.allowed_amount) == {18000}
    halves = claims_frame(
        elderly("a", "me", "gran", monthly=1500), elderly("b", "me", "gramps", monthly=1500)
    )
    out = verify(halves, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child("me"))
    assert set(out.status) == {"verified"}


def test_elderly_relation_unverified_and_missing_civil_affairs() -> None:
    c = claims_frame(elderly("c", "sis", "gramps", monthly=1000))
    row = one(verify(c, **ELDERLY_SOURCES, civil_affairs=civil(), only_child=only_child()), "c")
    assert (row.status, row.reasons) == ("rejected", "RELATION_UNVERIFIED")
    c = claims_frame(elderly("c", "me", "gran", monthly=1000))
    row = one(verify(c, **ELDERLY_SOURCES), "c")
    assert (row.status, row.reasons, row.allowed_amount) == ("unverifiable", "SOURCE_MISSING", 0)


# ----------------------------------------------------------------------------------------------------
# serious_illness


def illness(
    cid: str,
    taxpayer: str,
    patient: str | None,
    annual: float,
    relation: str = "self",
    year: int = 2024,
    **kw,
) -> dict:
    return claim(cid, taxpayer, patient, "serious_illness", year, annual=annual, relation=relation, **kw)


def test_serious_illness_threshold_boundaries() -> None:
    c = claims_frame(
        illness("at", "a", "a", 100),
        illness("cent", "b", "b", 0.01),
        illness("more", "c", "c", 100),
        illness("cap", "d", "d", 80000),
    )
    med = medical(
        ("a", 2024, 15000),
        ("b", 2024, 15000.01),
        ("c", 2024, 10000),
        ("c", 2024, 5000.01),
        ("d", 2024, 150000),
        ("d", 2024, 60000),
    )
    out = verify(c, medical_insurance=med)
    at = one(out, "at")
    assert (at.status, at.reasons, at.allowed_amount) == ("rejected", "EXPENSE_BELOW_THRESHOLD", 0)
    cent = one(out, "cent")
    assert (cent.status, cent.allowed_amount, cent.reasons) == ("verified", 0.01, "")
    assert pd.isna(cent.verified_months)
    more = one(out, "more")
    assert (more.status, more.reasons, more.allowed_amount) == ("partial", "AMOUNT_EXCEEDS_EVIDENCE", 0.01)
    assert one(out, "cap").allowed_amount == 80000 and one(out, "cap").status == "verified"


def test_serious_illness_self_with_empty_subject_uses_taxpayer() -> None:
    c = claims_frame(illness("s", "a", None, 5000))
    row = one(verify(c, medical_insurance=medical(("a", 2024, 20000))), "s")
    assert (row.status, row.allowed_amount, row.match) == ("verified", 5000, "exact")


def test_serious_illness_spouse_marriage_in_force() -> None:
    med = medical(("wife", 2022, 25000), ("wife", 2023, 25000))
    events = civil(("marriage", "me", "wife", "2015-05-01"), ("divorce", "wife", "me", "2022-06-30"))
    c = claims_frame(
        illness("y22", "me", "wife", 10000, "spouse", 2022),
        illness("y23", "me", "wife", 10000, "spouse", 2023),
    )
    out = verify(c, medical_insurance=med, civil_affairs=events)
    assert one(out, "y22").status == "verified"
    assert (one(out, "y23").status, one(out, "y23").reasons) == ("rejected", "RELATION_UNVERIFIED")
    later = civil(("marriage", "me", "wife", "2024-03-01"))
    out = verify(c.iloc[[1]], medical_insurance=med, civil_affairs=later)
    assert one(out, "y23").reasons == "RELATION_UNVERIFIED"
    out = verify(c.iloc[[1]], medical_insurance=med)
    assert (one(out, "y23").status, one(out, "y23").reasons) == ("unverifiable", "SOURCE_MISSING")


def test_serious_illness_minor_child() -> None:
    med = medical(("kid18", 2024, 25000), ("kid19", 2024, 25000))
    c = claims_frame(
        illness("minor", "dad", "kid18", 10000, "child", birth_ym=200611),
        illness("adult", "dad", "kid19", 10000, "child", birth_ym=200512),
    )
    out = verify(c, medical_insurance=med, household=household(("dad", "kid18"), ("dad", "kid19")))
    assert one(out, "minor").status == "verified"
    assert (one(out, "adult").status, one(out, "adult").reasons) == ("rejected", "AGE_INELIGIBLE")


def test_serious_illness_patient_shared_between_claimants() -> None:
    med = medical(("kid", 2024, 25000))
    c = claims_frame(
        illness("d", "dad", "kid", 10000, "child", birth_ym=201501),
        illness("m", "mum", "kid", 10000, "child", birth_ym=201501),
    )
    out = verify(c, medical_insurance=med, household=household(("dad", "kid"), ("mum", "kid")))
    assert set(out.reasons) == {"SHARE_EXCEEDED"} and set(out.allowed_amount) == {5000}
    one_claim = verify(c.iloc[[0]], medical_insurance=med, household=household(("dad", "kid")))
    assert one(one_claim, "d").status == "verified"


# ----------------------------------------------------------------------------------------------------
# cross-cutting: duplicates, missing sources, linking, precedence


def test_duplicate_claim_overlap_and_near_miss() -> None:
    hh, ed = household(("dad", "kid")), education(("kid", "compulsory", 202109, None))
    c = claims_frame(
        claim("first", "dad", "kid", "children_education", 2025, end=9, stage="compulsory", monthly=2000),
        claim("again", "dad", "kid", "children_education", 2025, start=7, stage="compulsory", monthly=2000),
        claim(
            "inside",
            "dad",
            "kid",
            "children_education",
            2025,
            start=2,
            end=3,
            stage="compulsory",
            monthly=2000,
        ),
    )
    out = verify(c, household=hh, education=ed)
    assert (one(out, "first").status, one(out, "first").allowed_amount) == ("verified", 18000)
    again = one(out, "again")
    assert (again.status, again.reasons, again.verified_months) == ("partial", "DUPLICATE_CLAIM", 3)
    inside = one(out, "inside")
    assert (inside.status, inside.reasons, inside.allowed_amount) == ("rejected", "DUPLICATE_CLAIM", 0)
    split = claims_frame(
        claim("h1", "dad", "kid", "children_education", 2025, end=6, stage="compulsory", monthly=2000),
        claim("h2", "dad", "kid", "children_education", 2025, start=7, stage="compulsory", monthly=2000),
    )
    assert set(verify(split, household=hh, education=ed).status) == {"verified"}


def test_duplicate_keeps_earliest_line_not_first_row() -> None:
    hh, ed = household(("dad", "kid")), education(("kid", "compulsory", 202109, None))
    c = claims_frame(
        claim("late", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
        claim("early", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
    )
    c["_line"] = [9, 3]
    out = verify(c, household=hh, education=ed)
    assert list(out.claim_id) == ["late", "early"]
    assert one(out, "early").status == "verified" and one(out, "late").reasons == "DUPLICATE_CLAIM"


def test_serious_illness_duplicate_patient_year() -> None:
    c = claims_frame(illness("a", "me", "me", 5000), illness("b", "me", "me", 5000, start=6))
    out = verify(c, medical_insurance=medical(("me", 2024, 30000)))
    assert one(out, "a").status == "verified"
    assert (one(out, "b").status, one(out, "b").reasons) == ("rejected", "DUPLICATE_CLAIM")


def test_deductions_without_a_source_are_unverifiable() -> None:
    c = claims_frame(
        claim("ce", "me", "me", "continuing_education", 2025, monthly=400, relation="self"),
        claim("hl", "me", "me", "housing_loan_interest", 2025, monthly=1000, relation="self"),
        claim("hr", "me", "me", "housing_rent", 2025, monthly=1500, relation="self"),
    )
    out = verify(c)
    assert set(out.status) == {"unverifiable"} and set(out.reasons) == {"SOURCE_MISSING"}
    assert list(out.claimed_amount) == [4800, 12000, 18000] and set(out.allowed_amount) == {0}


def test_empty_subject_is_not_an_invalid_subject_id() -> None:
    c = claims_frame(
        claim("hl", "me", None, "housing_loan_interest", 2025, monthly=1000, valid=None),
        claim("ce", "me", None, "children_education", 2025, monthly=2000, stage="compulsory", valid=None),
        claim("bad", "me", "kid", "children_education", 2025, monthly=2000, stage="compulsory", valid=False),
    )
    out = verify(c, household=household(("me", "kid")), education=education(("kid", "compulsory", 202009, None)))
    assert one(out, "hl").reasons == "SOURCE_MISSING"
    assert "INVALID_SUBJECT_ID" not in one(out, "ce").reasons and one(out, "ce").status == "rejected"
    assert "INVALID_SUBJECT_ID" in one(out, "bad").reasons


def test_missing_source_is_never_rejected() -> None:
    c = claims_frame(
        claim("noedu", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=2000),
        claim("nohh", "dad", "kid2", "infant_care", 2025, monthly=2000, birth_ym=202401),
    )
    out = verify(c, education=education(("kid", "compulsory", 202109, None)))
    assert set(out.status) == {"unverifiable"} and set(out.reasons) == {"SOURCE_MISSING"}
    # ... but a check that ran and supports nothing rejects: enrolled in another stage
    wrong = claims_frame(claim("x", "dad", "kid", "children_education", 2025, stage="higher", monthly=2000))
    row = one(verify(wrong, education=education(("kid", "compulsory", 202109, None))), "x")
    assert row.status == "rejected" and codes(row) == {"STAGE_MISMATCH", "SOURCE_MISSING"}


def test_fuzzy_link_review_and_invalid_subject_id() -> None:
    hh = household(("dad", "kid"))
    ed = education(("kid", "compulsory", 202109, None))
    c = claims_frame(
        claim(
            "typo",
            "dad",
            "kid-typo",
            "children_education",
            2025,
            stage="compulsory",
            monthly=2000,
            name="kid",
        ),
        claim(
            "bad",
            "dad",
            "kid",
            "children_education",
            2024,
            start=1,
            end=1,
            stage="compulsory",
            monthly=2000,
            valid=False,
        ),
    )
    c.loc[1, "taxpayer_id_tok"] = tok("dad2")  # not a duplicate of the first line
    hh = household(("dad", "kid"), ("dad2", "kid"))
    out = verify(c, household=hh, education=ed)
    typo = one(out, "typo")
    assert (typo.status, typo.reasons, typo.match, typo.match_score) == (
        "review",
        "FUZZY_MATCH",
        "fuzzy",
        0.9,
    )
    assert typo.allowed_amount == 24000
    bad = one(out, "bad")
    assert (bad.status, bad.reasons, bad.match) == ("review", "INVALID_SUBJECT_ID;FUZZY_MATCH", "fuzzy")


def test_ambiguous_match_wins_over_everything() -> None:
    hh = household(("dad", "twin-a"), ("dad", "twin-b"))
    c = claims_frame(
        claim(
            "amb", "dad", "twin-x", "children_education", 2025, stage="compulsory", monthly=2000, name="twin"
        )
    )
    people = household(("dad", "twin-a"), ("dad", "twin-b"))
    people["child_name_fz"] = [name_code("twin"), name_code("twin")]
    row = one(verify(c, household=people), "amb")
    assert (row.status, row.reasons, row.allowed_amount, row.verified_months) == (
        "review",
        "AMBIGUOUS_MATCH",
        0,
        0,
    )
    assert hh is not None


def test_fuzzy_then_rule_rejects_is_rejected_and_missing_is_unverifiable() -> None:
    c = claims_frame(
        claim(
            "f",
            "stranger",
            "kid-typo",
            "children_education",
            2025,
            stage="compulsory",
            monthly=2000,
            name="kid",
        )
    )
    ed = education(("kid", "compulsory", 202109, None))
    row = one(verify(c, household=household(("dad", "kid")), education=ed), "f")
    assert row.status == "rejected" and row.reasons == "FUZZY_MATCH;RELATION_UNVERIFIED"
    c2 = claims_frame(
        claim("f", "dad", "kid-typo", "infant_care", 2025, monthly=2000, name="kid", birth_ym=202401)
    )
    row = one(verify(c2, household=household(("dad", "kid")), medical_insurance=medical()), "f")
    assert row.status == "review"


def test_reason_order_is_canonical() -> None:
    c = claims_frame(claim("x", "dad", "kid", "children_education", 2025, stage="compulsory", monthly=3000))
    c.loc[1] = c.loc[0]
    c.loc[1, ["claim_id", "_line"]] = ["y", 9]
    ed = education(("kid", "compulsory", 202109, 202506))
    out = verify(c, household=household(("dad", "kid")), education=ed)
    row = one(out, "x")
    assert row.reasons == "NOT_ENROLLED;OVER_CAP"
    assert one(out, "y").reasons == "DUPLICATE_CLAIM"
    assert list(REASON_CODES[:2]) == ["INVALID_SUBJECT_ID", "SUBJECT_NOT_FOUND"]


def test_output_shape_and_order_with_no_claims() -> None:
    out = verify(claims_frame(claim("x", "a", "a", "housing_rent", 2025, monthly=800)).iloc[:0])
    assert list(out.columns) == OUTPUT_COLUMNS and len(out) == 0
