"""Issue 16 on small hand-made tables: an exact ID link is trusted only when the claim's subject name agrees
(SPEC §5), for every deduction and every role of the subject; and the two kinds of continuing education.

Same conventions as tests/test_verify_rules.py: fabricated tokens, one CRC per name, a fake linker on a shared name
code. The real encodings (pinyin, traditional characters, the default linker) are in test_verify_name_real.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.verify import REASON_CODES, verify_tables
from matchkit.verify.linking import FrameEncodings, exact_name_disagrees
from tests.test_verify_rules import (
    civil,
    claim,
    claims_frame,
    codes,
    education,
    elderly,
    household,
    illness,
    medical,
    name_code,
    one,
    only_child,
    verify,
)


def child_claim(cid: str, taxpayer: str, subject_id: str, name: str | None, **kw) -> dict:
    values = {"stage": "compulsory", "monthly": 2000.0, "relation": "child", **kw}
    return claim(cid, taxpayer, subject_id, "children_education", 2025, name=name, **values)


# Two real children: "kid" (dad's, enrolled all year) and "other" (a stranger's, enrolled from September).
HOUSEHOLD = household(("dad", "kid"), ("stranger", "other"))
EDUCATION = education(("kid", "compulsory", 202109, None), ("other", "compulsory", 202509, None))


def test_name_mismatch_is_a_known_code() -> None:
    assert "NAME_MISMATCH" in REASON_CODES and REASON_CODES[-1] == "NAME_MISMATCH"


def test_child_id_of_another_real_child_links_the_named_child() -> None:
    c = claims_frame(child_claim("typo", "dad", "other", "kid"))
    row = one(verify(c, household=HOUSEHOLD, education=EDUCATION), "typo")
    # today's answer would be rejected/RELATION_UNVERIFIED against "other"; the named child is dad's, all year
    assert (row.status, row.reasons, row.match, row.match_score) == ("review", "FUZZY_MATCH", "fuzzy", 0.9)
    assert (row.allowed_amount, row.verified_months) == (24000, 12)


def test_amounts_are_those_of_the_person_found() -> None:
    # the named child is enrolled only from September: 4 months, computed for her, not for the ID's owner
    hh = household(("dad", "kid"), ("dad", "other"))
    ed = education(("kid", "compulsory", 202509, None), ("other", "compulsory", 202109, None))
    row = one(verify(claims_frame(child_claim("typo", "dad", "other", "kid")), household=hh, education=ed), "typo")
    assert (row.status, row.match, row.allowed_amount, row.verified_months) == ("review", "fuzzy", 8000, 4)
    assert codes(row) == {"FUZZY_MATCH", "NOT_ENROLLED"}


def test_nobody_else_found_keeps_the_exact_link_with_name_mismatch() -> None:
    c = claims_frame(
        child_claim("stranger", "dad", "other", "nobody-has-this-name"),
        child_claim("own", "stranger", "other", "someone-else", start=9),
    )
    out = verify(c, household=HOUSEHOLD, education=EDUCATION)
    row = one(out, "stranger")
    assert (row.status, row.match, row.match_score, row.allowed_amount) == ("review", "exact", 1.0, 0)
    assert codes(row) == {"RELATION_UNVERIFIED", "NOT_ENROLLED", "NAME_MISMATCH"}  # beside whatever else applies
    own = one(out, "own")  # the exact link stands and its rules pass: amounts as claimed, still a review
    assert (own.status, own.reasons, own.match, own.allowed_amount) == ("review", "NAME_MISMATCH", "exact", 8000)


def test_agreeing_or_absent_names_change_nothing() -> None:
    named = child_claim("named", "dad", "kid", "kid")
    unnamed = child_claim("unnamed", "dad", "other", None, start=9)
    c = claims_frame(named, unnamed)
    c.at[1, "subject_name_fz"] = None  # no subject name: no check possible, the exact link stands
    out = verify(c, household=HOUSEHOLD, education=EDUCATION)
    assert (one(out, "named").status, one(out, "named").reasons) == ("verified", "")
    row = one(out, "unnamed")
    assert (row.status, row.reasons, row.match) == ("rejected", "RELATION_UNVERIFIED", "exact")
    no_column = claims_frame(child_claim("x", "dad", "other", "kid", start=9)).drop(columns=["subject_name_fz"])
    row = one(verify(no_column, household=HOUSEHOLD, education=EDUCATION), "x")
    assert (row.status, row.reasons, row.match) == ("rejected", "RELATION_UNVERIFIED", "exact")


def test_a_person_without_any_name_in_the_extracts_is_not_a_mismatch() -> None:
    hh = household(("dad", "kid"))
    hh["child_name_fz"] = [None]
    ed = education(("kid", "compulsory", 202109, None))
    ed["student_name_fz"] = [None]
    row = one(verify(claims_frame(child_claim("c", "dad", "kid", "anything")), household=hh, education=ed), "c")
    assert (row.status, row.reasons) == ("verified", "")


def test_any_of_the_persons_names_in_the_extracts_agrees() -> None:
    # the household writes the child one way, the school another: either agrees
    hh = household(("dad", "kid"))
    ed = education(("kid", "compulsory", 202109, None))
    ed["student_name_fz"] = [name_code("kid-school-spelling")]
    c = claims_frame(child_claim("a", "dad", "kid", "kid"), child_claim("b", "dad", "kid", "kid-school-spelling",
                                                                        start=1, end=1))
    c.at[1, "taxpayer_id_tok"] = b"Pmum".ljust(16, b"\0")
    out = verify(c, household=household(("dad", "kid"), ("mum", "kid")), education=ed)
    assert "NAME_MISMATCH" not in "".join(out.reasons) and set(out.match) == {"exact"}
    assert hh is not None


def test_ambiguous_other_person_keeps_the_exact_link() -> None:
    hh = household(("dad", "kid"), ("dad", "kid2"), ("stranger", "other"))
    hh["child_name_fz"] = [name_code("kid"), name_code("kid"), name_code("other")]
    ed = education(("kid", "compulsory", 202109, None), ("kid2", "compulsory", 202109, None),
                   ("other", "compulsory", 202109, None))
    row = one(verify(claims_frame(child_claim("c", "dad", "other", "kid")), household=hh, education=ed), "c")
    assert (row.status, row.match) == ("review", "exact")
    assert codes(row) == {"RELATION_UNVERIFIED", "NAME_MISMATCH"}


def test_a_linker_returning_the_excluded_person_is_not_trusted() -> None:
    """A custom linker knows nothing of the exclusion: its answer 'the same person' means nobody else."""

    def stubborn(queries: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
        other = persons["id_tok"][persons["id_tok"] == b"Pother".ljust(16, b"\0")].iloc[0]
        return pd.DataFrame({"person_id_tok": [other] * len(queries), "score": 0.9, "ambiguous": False},
                            index=queries.index)

    c = claims_frame(child_claim("c", "dad", "other", "kid"))
    row = one(verify_tables(c, {"household": HOUSEHOLD, "education": EDUCATION}, linker=stubborn), "c")
    assert (row.status, row.match) == ("review", "exact") and "NAME_MISMATCH" in row.reasons


def test_infant_care_child() -> None:
    hh = household(("mum", "baby"), ("stranger", "other-baby"))
    c = claims_frame(claim("c", "mum", "other-baby", "infant_care", 2025, monthly=2000, relation="child",
                           name="baby", birth_ym=202401))
    row = one(verify(c, household=hh), "c")
    assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "FUZZY_MATCH", "fuzzy", 24000)
    c = claims_frame(claim("c", "mum", "other-baby", "infant_care", 2025, monthly=2000, relation="child",
                           name="nobody", birth_ym=202401))
    row = one(verify(c, household=hh), "c")
    assert (row.status, row.match) == ("review", "exact")
    assert codes(row) == {"RELATION_UNVERIFIED", "NAME_MISMATCH"}


def test_elderly_parent() -> None:
    hh = household(("gran", "me"), ("old-stranger", "someone"))
    sources = {"household": hh, "civil_affairs": civil(), "only_child": only_child("me")}
    c = claims_frame(elderly("c", "me", "old-stranger", name="gran"))
    row = one(verify(c, **sources), "c")
    assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "FUZZY_MATCH", "fuzzy", 36000)
    c = claims_frame(elderly("c", "me", "gran", name="a-name-nobody-has"))
    row = one(verify(c, **sources), "c")
    assert (row.status, row.reasons, row.match, row.allowed_amount) == ("review", "NAME_MISMATCH", "exact", 36000)


def test_serious_illness_patient_self_spouse_child() -> None:
    med = medical(("me", 2024, 35000), ("other", 2024, 100000), ("wife", 2024, 25000), ("kid", 2024, 20000))
    hh = household(("me", "kid"), ("stranger", "other"))
    marriage = civil(("marriage", "me", "wife", "2010-05-01"))
    sources = {"medical_insurance": med, "household": hh, "civil_affairs": marriage}
    c = claims_frame(
        illness("self", "me", "other", 30000, name="me"),
        illness("spouse", "me", "other", 30000, relation="spouse", name="wife"),
        illness("child", "me", "other", 30000, relation="child", name="kid", birth_ym=201501),
        illness("nobody", "me", "other", 30000, relation="spouse", name="not-a-person"),
    )
    c.loc[[1, 2, 3], "taxpayer_id_tok"] = [b"P" + t.ljust(15, b"\0") for t in (b"me", b"me", b"me")]
    out = verify(c, **sources)
    expected = {"self": 20000, "spouse": 10000, "child": 5000}
    for cid, allowed in expected.items():
        row = one(out, cid)
        assert (row.match, row.allowed_amount) == ("fuzzy", allowed), cid
        assert "FUZZY_MATCH" in row.reasons and "NAME_MISMATCH" not in row.reasons
    row = one(out, "nobody")
    assert (row.status, row.match, row.allowed_amount) == ("review", "exact", 0)
    assert codes(row) == {"RELATION_UNVERIFIED", "NAME_MISMATCH"}


def test_duplicates_follow_the_person_found() -> None:
    # a correct line for "kid", then the same claim typed with another child's ID: a duplicate of the first
    c = claims_frame(child_claim("right", "dad", "kid", "kid"), child_claim("typo", "dad", "other", "kid"))
    out = verify(c, household=HOUSEHOLD, education=EDUCATION)
    assert (one(out, "right").status, one(out, "right").reasons) == ("verified", "")
    assert one(out, "typo").status == "rejected"
    assert codes(one(out, "typo")) == {"FUZZY_MATCH", "DUPLICATE_CLAIM"}


# ----------------------------------------------------------------------------------------------------
# continuing education: degree study (monthly) and a qualification certificate (annual) are two deductions


def degree(cid: str, taxpayer: str = "me", **kw) -> dict:
    return claim(cid, taxpayer, taxpayer, "continuing_education", 2025, monthly=400, relation="self", **kw)


def certificate(cid: str, taxpayer: str = "me", **kw) -> dict:
    return claim(cid, taxpayer, taxpayer, "continuing_education", 2025, annual=3600, relation="self", **kw)


def test_degree_study_and_certificate_are_not_duplicates() -> None:
    out = verify(claims_frame(degree("d"), certificate("c")))
    assert set(out.status) == {"unverifiable"} and set(out.reasons) == {"SOURCE_MISSING"}
    out = verify(claims_frame(certificate("c"), degree("d")))
    assert set(out.reasons) == {"SOURCE_MISSING"}


def test_two_lines_of_one_kind_still_duplicate() -> None:
    out = verify(claims_frame(degree("d1"), certificate("c1"), degree("d2"), certificate("c2", start=6, end=6)))
    assert (one(out, "d1").reasons, one(out, "c1").reasons) == ("SOURCE_MISSING", "SOURCE_MISSING")
    for cid in ("d2", "c2"):  # a certificate is once per tax year, whatever months it names
        assert (one(out, cid).status, codes(one(out, cid))) == ("rejected", {"DUPLICATE_CLAIM", "SOURCE_MISSING"})
    # degree study in two halves of the year is not a duplicate; other taxpayers never are
    halves = verify(claims_frame(degree("a", end=6), degree("b", start=7), certificate("x", "you")))
    assert set(halves.reasons) == {"SOURCE_MISSING"}


# ----------------------------------------------------------------------------------------------------
# the vectorised name check against a plain reference


@st.composite
def name_lists(draw: st.DrawFn) -> list[int] | None:
    return draw(st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=1, max_size=4)))


@given(
    st.lists(st.tuples(st.integers(0, 5), name_lists()), min_size=1, max_size=12),
    st.lists(st.tuples(st.integers(0, 5), name_lists()), max_size=12),
    st.lists(st.tuples(st.integers(0, 5), name_lists()), max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_exact_name_disagrees_matches_a_plain_reference(lines, parents, children) -> None:
    """Per line: the claim has a name, the person has at least one name in the extracts and none of them shares
    element 0 or element 1 with the claim's (at the same position)."""
    rows = max(len(parents), len(children))
    parents = parents + [(-1, None)] * (rows - len(parents))
    children = children + [(-1, None)] * (rows - len(children))
    frame = pd.DataFrame(
        {"parent_name_fz": [n for _, n in parents], "child_name_fz": [n for _, n in children]}, dtype=object
    )
    codes_by_entity = {
        ("household", "parent"): np.array([c for c, _ in parents], dtype=np.int64),
        ("household", "child"): np.array([c for c, _ in children], dtype=np.int64),
    }
    got = exact_name_disagrees(
        pd.Series([n for _, n in lines], dtype=object),
        np.array([c for c, _ in lines], dtype=np.int64),
        ("household",),
        {"household": FrameEncodings(frame)},
        codes_by_entity,
        6,
    )
    held: dict[int, list[list[int]]] = {}
    for people in (parents, children):
        for code, names in people:
            if code >= 0 and names:
                held.setdefault(code, []).append(names)
    for position, (code, names) in enumerate(lines):
        agrees = any(
            any(i < len(names) and i < len(other) and names[i] == other[i] for i in (0, 1))
            for other in held.get(code, [])
        ) if names else False
        expected = bool(names) and code in held and not agrees
        assert got[position] == expected
