"""The verification engine: hashed claims + hashed extracts -> one flags row per claim line (SPEC §5).

Everything is vectorised over lines: tokens become dense integer codes (tokens.py), monthly lines become rows of
12 month cells (months.py), competing claims are per-month group sums keyed by (person code, tax year). Python
loops only run over deductions, sources, link universes and the 12 months, never over claims.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from matchkit.errors import InputFileError
from matchkit.link.blocking import SharedKeys
from matchkit.link.fuzzy import PERSON_PASSES, best_links
from matchkit.verify.children import children_education, infant_care
from matchkit.verify.context import Run, truthy
from matchkit.verify.elderly import elderly_support
from matchkit.verify.evidence import (
    ENTITIES,
    REQUIRED_COLUMNS,
    SOURCES,
    build_evidence,
    check_columns,
    text_values,
)
from matchkit.verify.illness import serious_illness
from matchkit.verify.interning import TokenInterner
from matchkit.verify.linking import (
    PERSON_COLUMNS,
    QUERY_COLUMNS,
    HashedExtract,
    Linker,
    PersonUniverse,
    default_linker,
    exact_name_disagrees,
    fuzzy_links,
    name_agrees,
    split_sources,
    take,
)
from matchkit.verify.months import EPS, abs_months, month_range
from matchkit.verify.policy import Policy, load_policy
from matchkit.verify.reasons import BIT, render

OUTPUT_COLUMNS = [
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
CLAIM_COLUMNS = (
    "claim_id", "_line", "taxpayer_id_tok", "subject_id_tok", "subject_id_valid", "deduction", "tax_year",
    "period_start", "period_end",
)  # fmt: skip
CLAIM_OPTIONAL_COLUMNS = (
    "subject_relation", "education_stage", "share", "monthly_amount", "annual_amount", "only_child",
    "subject_birth_ym", "subject_id_birth_ym", *(f"subject_{c}" for c in QUERY_COLUMNS),
)  # fmt: skip


VERIFIABLE = ("children_education", "elderly_support", "serious_illness", "infant_care")
# Extracts in which a deduction's subject may appear (the linking universe) ...
SUBJECT_SOURCES: dict[str, tuple[str, ...]] = {
    "children_education": ("household", "education"),
    "elderly_support": ("household", "civil_affairs"),
    "serious_illness": ("medical_insurance", "civil_affairs", "household"),
    "infant_care": ("household",),
}
# ... and the extracts whose names an exact link's name is checked against (a person's name in any of them counts).
LINKED_SOURCES = frozenset(name for universe in SUBJECT_SOURCES.values() for name in universe)


def input_columns(source: str) -> tuple[str, ...]:
    """Every column the engine may read from a hashed file of ``source`` ("claims" or an extract): a loader need
    read no other."""
    if source == "claims":
        return (*CLAIM_COLUMNS, *CLAIM_OPTIONAL_COLUMNS)
    linked = any(source in universe for universe in SUBJECT_SOURCES.values())  # the fuzzy linker reads its people
    person = tuple(f"{entity}_{c}" for entity in ENTITIES[source] for c in PERSON_COLUMNS if c != "id_tok")
    return (*REQUIRED_COLUMNS[source], *(person if linked else ()))


def _needed_source_missing(run: Run, sources: dict[str, pd.DataFrame]) -> np.ndarray:
    """Per line: a source it needs before 'not found' may be concluded is absent (SPEC §5 'Sources each deduction
    needs'; serious illness with no stated relation needs both civil_affairs and household)."""
    absent = {name: name not in sources for name in SOURCES}
    ded, stage, relation = run.deduction, run.stage, run.relation
    preschool = stage == "preschool"
    spouse_like = ~np.isin(relation, ["self", "child", "parent"])
    child_like = ~np.isin(relation, ["self", "spouse", "parent"])
    return (
        ((ded == "children_education") & (absent["household"] | (~preschool & absent["education"])))
        | ((ded == "elderly_support") & (absent["household"] | absent["civil_affairs"]))
        | (
            (ded == "serious_illness")
            & (
                absent["medical_insurance"]
                | (spouse_like & absent["civil_affairs"])
                | (child_like & absent["household"])
            )
        )
        | ((ded == "infant_care") & absent["household"])
    )


def _column(claims: pd.DataFrame, name: str, default: object = None) -> pd.Series:
    if name in claims.columns:
        return claims[name]
    return pd.Series([default] * len(claims), index=claims.index, dtype=object)


def _float(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _objects(series: pd.Series) -> np.ndarray:
    return text_values(series)


def verify_tables(
    claims: pd.DataFrame,
    sources: dict[str, pd.DataFrame | HashedExtract],
    *,
    policy: Policy | None = None,
    linker: Linker | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Verify hashed claim lines against hashed extracts; one row per claim line, in claims order (SPEC §5).

    ``sources`` maps an extract name to its table: a DataFrame holding every column (token columns as ``bytes`` /
    lists per cell, or Arrow-backed), or a :class:`HashedExtract` whose person encodings are read on demand (what
    ``matchkit.jobs.verify.load_hashed_inputs`` gives). ``linker``: the fuzzy linker (default
    ``matchkit.link.fuzzy.best_links``).
    """
    say = progress or (lambda message: None)
    policy = policy or load_policy()
    missing_columns = [c for c in CLAIM_COLUMNS if c not in claims.columns]
    if missing_columns:
        raise InputFileError(f"claims table lacks column(s): {', '.join(missing_columns)}")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise InputFileError(f"unknown source name(s): {', '.join(unknown)}")
    sources, encodings = split_sources(sources)
    for name, table in sources.items():
        check_columns(name, table)

    n = len(claims)
    claims = claims.reset_index(drop=True)
    say(f"interning tokens ({n} claim lines, {len(sources)} extract(s))")
    interner = TokenInterner()
    h_taxpayer = interner.add(claims["taxpayer_id_tok"], name="taxpayer_id_tok")
    h_subject = interner.add(claims["subject_id_tok"], name="subject_id_tok")
    handles = {
        (name, entity): interner.add(table[f"{entity}_id_tok"], name=f"{name}.{entity}_id_tok")
        for name, table in sources.items()
        for entity in ENTITIES[name]
    }
    interner.build()
    codes = {key: interner.codes(h) for key, h in handles.items()}
    taxpayer = interner.codes(h_taxpayer).copy()  # copies: the views would keep every token code alive
    raw_subject = interner.codes(h_subject).copy()
    size = interner.size

    deduction = _objects(claims["deduction"])
    relation = _objects(_column(claims, "subject_relation"))
    stage = _objects(_column(claims, "education_stage"))
    is_self = relation == "self"
    empty_self = is_self & (raw_subject < 0)
    raw_subject[empty_self] = taxpayer[empty_self]
    declared_valid = claims["subject_id_valid"].astype("boolean")
    valid = declared_valid.fillna(False).to_numpy(dtype=bool) | empty_self
    # An ID that was given but failed validation is INVALID_SUBJECT_ID; an empty subject is not "invalid" (it is
    # simply not found, or the taxpayer for 'self' lines).
    invalid_given = (~declared_valid.fillna(True)).to_numpy(dtype=bool) & ~empty_self
    year = pd.to_numeric(claims["tax_year"]).to_numpy(dtype=np.int64)
    start = pd.to_numeric(claims["period_start"]).to_numpy(dtype=np.int64)
    end = pd.to_numeric(claims["period_end"]).to_numpy(dtype=np.int64)
    claimed = month_range(start % 100 - 1, end % 100 - 1)
    claimed[(start // 100 != year) | (end // 100 != year)] = False  # hash-time validation keeps these out

    say("building evidence tables")
    ev = build_evidence(sources, codes, size)
    run = Run(
        policy=policy,
        ev=ev,
        taxpayer=taxpayer,
        subject=np.full(n, -1, dtype=np.int64),
        year=year,
        deduction=deduction,
        relation=relation,
        stage=stage,
        share=_float(_column(claims, "share", 1.0)),
        monthly=_float(_column(claims, "monthly_amount", np.nan)),
        annual=_float(_column(claims, "annual_amount", np.nan)),
        only_child_declared=_objects(_column(claims, "only_child")),
        birth_abs=np.full(n, np.nan),
        claimed=claimed,
        dup=np.zeros((n, 12), dtype=bool),
        reasons=np.zeros(n, dtype=np.int64),
        missing=np.zeros(n, dtype=bool),
        supported=np.zeros(n, dtype=bool),
        allowed_months=np.zeros((n, 12)),
        allowed_annual=np.full(n, np.nan),
        claimed_amount=np.zeros(n),
    )
    run.flag(np.arange(n), "INVALID_SUBJECT_ID", invalid_given)

    # ---- linking
    say("linking subjects")
    verifiable = np.isin(deduction, VERIFIABLE)
    exact = np.zeros(n, dtype=bool)
    candidates = valid & (raw_subject >= 0) & verifiable
    for ded, subject_sources in SUBJECT_SOURCES.items():
        rows = candidates & (deduction == ded)
        for name in subject_sources:
            if name in sources and rows.any():
                exact[rows] |= ev.present[name][raw_subject[rows]]
    run.subject[exact] = raw_subject[exact]

    # An exact ID is trusted only when the claim's subject name agrees with that person's (SPEC §5): otherwise
    # look for another person as for a mistyped ID; failing that the exact link stands, with NAME_MISMATCH.
    mismatch = np.zeros(n, dtype=bool)
    named_exact = np.flatnonzero(exact)
    if "subject_name_fz" in claims.columns and len(named_exact):
        universe = tuple(name for name in SOURCES if name in sources and name in LINKED_SOURCES)
        say(f"checking subject names of {len(named_exact)} exact link(s)")
        mismatch[named_exact] = exact_name_disagrees(
            take(claims["subject_name_fz"], named_exact), raw_subject[named_exact], universe, encodings, codes, size
        )
        say(f"{int(mismatch.sum())} exact link(s) whose subject name disagrees")

    match = np.where(exact, "exact", "none").astype(object)
    score = exact.astype(np.float64)
    fuzzy = np.zeros(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    pending = verifiable & ~exact
    queried = pending | mismatch
    if queried.any():
        pending_rows = np.flatnonzero(queried)
        query_frame = pd.DataFrame(
            {c: take(_column(claims, f"subject_{c}"), pending_rows).set_axis(pending_rows) for c in QUERY_COLUMNS}
        )
        exclude = np.where(mismatch, raw_subject, -1)
        linker = linker or default_linker()
        # The default linker only ever pairs people sharing a blocking key with a query: read no others.
        keys = SharedKeys(query_frame, PERSON_PASSES) if linker is best_links else None
        people = PersonUniverse(sources, encodings, codes, keys)
        for ded, subject_sources in SUBJECT_SOURCES.items():
            universe = tuple(name for name in subject_sources if name in sources)
            rows = np.flatnonzero(queried & (deduction == ded))
            if not universe or not len(rows):
                continue
            persons, person_codes = people.persons(universe)
            say(
                f"fuzzy linking {len(rows)} subject(s) against {len(persons)} candidate person(s) in "
                f"{'+'.join(universe)}"
            )
            queries = query_frame.loc[rows]
            found_rows, found_codes, found_scores, found_ambiguous = fuzzy_links(
                queries, persons, person_codes, linker, exclude[rows]
            )
            # A line whose exact link's name disagrees takes another person only when that one is unique and
            # their names agree (name agreement implies the same birth date: the name tokens are salted by it).
            second = mismatch[found_rows]
            take_other = second & ~found_ambiguous
            take_other[take_other] = name_agrees(
                queries, persons, person_codes, found_rows[take_other], found_codes[take_other]
            )
            keep = ~second | take_other
            found_rows, found_codes = found_rows[keep], found_codes[keep]
            found_scores, found_ambiguous = found_scores[keep], found_ambiguous[keep]
            mismatch[found_rows] = False
            fuzzy[found_rows] = ~found_ambiguous
            ambiguous[found_rows] = found_ambiguous
            run.subject[found_rows[~found_ambiguous]] = found_codes[~found_ambiguous]
            match[found_rows] = "fuzzy"
            score[found_rows] = found_scores
        del people, query_frame  # the candidates and their encodings
    del interner, codes, handles  # every extract row's token code: the evidence tables hold what the rules need
    exact &= ~fuzzy  # an exact ID whose name pointed to another person is no longer the link
    run.flag(np.flatnonzero(fuzzy), "FUZZY_MATCH")
    run.flag(np.flatnonzero(ambiguous), "AMBIGUOUS_MATCH")
    run.flag(np.flatnonzero(mismatch), "NAME_MISMATCH")

    birth_ym = _float(_column(claims, "subject_birth_ym", np.nan))
    id_birth_ym = _float(_column(claims, "subject_id_birth_ym", np.nan))
    chosen = np.where(exact & ~np.isnan(id_birth_ym), id_birth_ym, birth_ym)
    run.birth_abs = np.floor(chosen / 100) * 12 + np.mod(chosen, 100) - 1

    # ---- duplicates: same taxpayer, deduction, subject, overlapping months (serious illness: patient-year) -----
    say("finding duplicate claims")
    subject_key = np.where(run.subject >= 0, run.subject, raw_subject)
    dup_rows = np.flatnonzero((subject_key >= 0) & ~ambiguous)
    if len(dup_rows):
        overlap_mask = claimed[dup_rows].copy()
        # Continuing education is two deductions SPEC §2 allows side by side: degree study (a monthly amount) and
        # a qualification certificate (an annual amount only: once per tax year, like a patient-year).
        certificate = (deduction == "continuing_education") & np.isnan(run.monthly) & ~np.isnan(run.annual)
        overlap_mask[(deduction[dup_rows] == "serious_illness") | certificate[dup_rows]] = True
        ded_code = pd.factorize(deduction[dup_rows])[0].astype(np.int64) * 2 + certificate[dup_rows]
        line = pd.to_numeric(claims["_line"]).to_numpy(dtype=np.int64)[dup_rows]
        pair = pd.factorize(taxpayer[dup_rows] * np.int64(size + 1) + subject_key[dup_rows])[0]
        group_id = pd.factorize((pair.astype(np.int64) * 64 + ded_code) * 10_000 + year[dup_rows])[0]
        order = np.lexsort((line, group_id))
        # Lines sorted by group, then input line: a month is a duplicate when an earlier line of the group
        # claims it (running count over the group minus the line itself).
        sorted_mask = overlap_mask[order].astype(np.int32)
        running = np.cumsum(sorted_mask, axis=0)
        group_sorted = group_id[order]
        first = np.r_[True, group_sorted[1:] != group_sorted[:-1]]
        starts = np.flatnonzero(first)
        offset = (running - sorted_mask)[starts]
        group_index = np.cumsum(first) - 1
        earlier = (running - sorted_mask - offset[group_index]) > 0
        dup = np.zeros((len(dup_rows), 12), dtype=bool)
        dup[order] = earlier & overlap_mask[order]
        run.dup[dup_rows] = dup
    run.flag(np.arange(n), "DUPLICATE_CLAIM", run.dup.any(axis=1))

    # ---- rules
    usable = run.subject >= 0
    default_claimed(run)
    infant_rows = np.flatnonzero(usable & (deduction == "infant_care"))
    say(f"rules: infant_care ({len(infant_rows)})")
    infant_care(run, infant_rows)
    infant_keys = run.subject[infant_rows] * 10_000 + year[infant_rows]
    rows = np.flatnonzero(usable & (deduction == "children_education"))
    say(f"rules: children_education ({len(rows)})")
    children_education(run, rows, (infant_keys, run.allowed_months[infant_rows]))
    rows = np.flatnonzero(usable & (deduction == "elderly_support"))
    say(f"rules: elderly_support ({len(rows)})")
    elderly_support(run, rows)
    rows = np.flatnonzero(usable & (deduction == "serious_illness"))
    say(f"rules: serious_illness ({len(rows)})")
    serious_illness(run, rows)

    # Lines without a usable subject.
    open_months = (claimed & ~run.dup).any(axis=1)
    unlinked = np.flatnonzero(verifiable & ~usable & ~ambiguous)
    if len(unlinked):
        needed_missing = _needed_source_missing(run, sources)[unlinked]
        run.flag(unlinked, "SUBJECT_NOT_FOUND", ~needed_missing)
        run.flag(unlinked, "SOURCE_MISSING", needed_missing)
        run.missing[unlinked] = needed_missing
        run.supported[unlinked] = needed_missing & open_months[unlinked]
    no_source = np.flatnonzero(~verifiable)
    run.flag(no_source, "SOURCE_MISSING")
    run.missing[no_source] = True
    run.supported[no_source] = open_months[no_source]

    return _flags(claims, run, match, score, fuzzy, ambiguous, mismatch)


def default_claimed(run: Run) -> None:
    """Claimed amounts for every line (rules overwrite theirs with the same figures): monthly x months, else
    annual, else the standard the line would get (children: standard x share; elderly: the per-sibling cap, or the
    standard when the claim declares an only child)."""
    n = len(run.year)
    months = abs_months(run.year)
    default = np.full((n, 12), np.nan)
    ded = run.deduction
    share = np.where(np.isnan(run.share), 1.0, run.share)[:, None]
    for name, figure in (("children_education", "monthly"), ("infant_care", "monthly")):
        rows = ded == name
        default[rows] = run.policy.figure_by_month(name, figure, months[rows]) * share[rows]
    for name in ("continuing_education", "housing_loan_interest"):
        rows = ded == name
        default[rows] = run.policy.figure_by_month(name, "monthly", months[rows])
    rows = ded == "elderly_support"
    declared = truthy(run.only_child_declared[rows])
    default[rows] = np.where(
        declared[:, None],
        run.policy.figure_by_month("elderly_support", "monthly", months[rows]),
        run.policy.figure_by_month("elderly_support", "per_sibling_cap", months[rows]),
    )
    all_rows = np.arange(n)
    amounts = run.claimed_monthly(all_rows, default)
    unknown = np.isnan(run.monthly) & np.isnan(run.annual) & np.isnan(default).all(axis=1)
    run.claimed_amount = np.where(unknown, np.nan, amounts.sum(axis=1))
    illness = ded == "serious_illness"
    run.claimed_amount[illness] = np.nan_to_num(
        np.where(np.isnan(run.annual), run.monthly * run.claimed.sum(axis=1), run.annual)[illness]
    )


def _flags(
    claims: pd.DataFrame,
    run: Run,
    match: np.ndarray,
    score: np.ndarray,
    fuzzy: np.ndarray,
    ambiguous: np.ndarray,
    name_mismatch: np.ndarray,
) -> pd.DataFrame:
    n = len(run.year)
    illness = run.deduction == "serious_illness"
    month_allowed = np.round(run.allowed_months, 2)
    allowed = np.where(illness, np.round(np.nan_to_num(run.allowed_annual), 2), month_allowed.sum(axis=1))
    allowed = np.round(allowed, 2)
    claimed_amount = np.round(run.claimed_amount, 2)
    rejected = ~run.supported | (~run.missing & (allowed <= 0))
    allowed = np.where(ambiguous | rejected, 0.0, allowed)
    status = np.full(n, "verified", dtype=object)
    partial = (allowed > 0) & (allowed < np.nan_to_num(claimed_amount) - EPS)
    status[partial] = "partial"
    status[fuzzy] = "review"
    status[run.missing] = "unverifiable"
    status[rejected] = "rejected"
    status[name_mismatch] = "review"  # SPEC §5: the exact link stands, but a human must look, whatever else applies
    status[ambiguous] = "review"
    reasons = run.reasons.copy()
    reasons[ambiguous] &= BIT["AMBIGUOUS_MATCH"] | BIT["INVALID_SUBJECT_ID"]
    verified_months = pd.array(
        np.where(ambiguous | rejected, 0, (month_allowed > 0).sum(axis=1)), dtype="Int64"
    )
    verified_months[illness] = pd.NA
    out = pd.DataFrame(
        {
            "claim_id": claims["claim_id"].to_numpy(dtype=object),
            "deduction": run.deduction,
            "status": status,
            "reasons": render(reasons).to_numpy(dtype=object),
            "claimed_amount": claimed_amount,
            "allowed_amount": allowed,
            "verified_months": verified_months,
            "match": match,
            "match_score": np.round(score, 4),
        }
    )
    return out[OUTPUT_COLUMNS]
