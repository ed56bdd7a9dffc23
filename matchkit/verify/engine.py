"""The verification engine: hashed claims + hashed extracts -> one flags row per claim line (SPEC §5).

Everything is vectorised over lines: tokens become dense integer codes (tokens.py), monthly lines become rows of
12 month cells (months.py), competing claims are per-month group sums keyed by (person code, tax year). Python
loops only run over deductions, sources, link universes and the 12 months, never over claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from matchkit.errors import InputFileError
from matchkit.link.blocking import SharedKeys
from matchkit.link.fuzzy import PERSON_PASSES, best_links
from matchkit.verify.children import children_education, infant_care
from matchkit.verify.context import Run, truthy
from matchkit.verify.elderly import ElderlyState, elderly_subject_step, elderly_taxpayer_step
from matchkit.verify.evidence import (
    ENTITIES,
    REQUIRED_COLUMNS,
    SOURCES,
    Evidence,
    build_evidence,
    check_columns,
    presence,
    text_values,
)
from matchkit.verify.illness import serious_illness
from matchkit.verify.interning import TokenInterner
from matchkit.verify.linking import (
    PERSON_COLUMNS,
    QUERY_COLUMNS,
    HashedExtract,
    Linker,
    PersonEncodings,
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


def _needed_source_missing(run: Run, sources: frozenset[str]) -> np.ndarray:
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

    The partitioned job (``matchkit.jobs.verify_partitioned``) runs the same stages (:func:`exact_stage`,
    :func:`fuzzy_stage`, :func:`rules_stage`) on partitions of the input; this function runs them once over all
    of it.
    """
    say = progress or (lambda message: None)
    stage = _prepare(claims, sources, policy=policy, say=say)
    stage.exact, stage.mismatch = _exact_links(stage, say)
    _fuzzy_links(stage, linker, say)
    del stage.interner, stage.codes  # every extract row's token code: the evidence tables hold what the rules need
    flags, _ = _rules(stage, say)
    return flags


@dataclass
class _Stage:
    """One stage's inputs: claims and extracts interned into dense person codes, and the per-line run state."""

    claims: pd.DataFrame
    sources: dict[str, pd.DataFrame]
    encodings: dict[str, PersonEncodings]
    interner: TokenInterner | None
    codes: dict[tuple[str, str], np.ndarray] | None
    size: int
    policy: Policy
    run: Run
    raw_subject: np.ndarray
    valid: np.ndarray
    verifiable: np.ndarray
    supplied: frozenset[str]
    extra_codes: dict[str, np.ndarray] = field(default_factory=dict)
    exact: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    mismatch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    match: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fuzzy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    ambiguous: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    found_tokens: pd.Series | None = None  # fuzzy stage: per line, the token of the person a fuzzy link found


def _prepare(
    claims: pd.DataFrame,
    sources: dict[str, pd.DataFrame | HashedExtract],
    *,
    policy: Policy | None,
    say: Callable[[str], None],
    supplied: frozenset[str] | None = None,
    extra_tokens: tuple[str, ...] = (),
    evidence: bool = True,
    extra_deaths: str | None = None,
) -> _Stage:
    """Check and intern the inputs, build the evidence tables and the run state. ``supplied``: the extracts of
    the whole run (a partition's ``sources`` may lack some); ``extra_tokens``: claim columns of tokens to intern
    too; ``extra_deaths``: a claim column of the taxpayer's death date (YYYYMMDD, NaN: none) known from rows in
    another partition."""
    policy = policy or load_policy()
    missing_columns = [c for c in CLAIM_COLUMNS if c not in claims.columns]
    if missing_columns:
        raise InputFileError(f"claims table lacks column(s): {', '.join(missing_columns)}")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise InputFileError(f"unknown source name(s): {', '.join(unknown)}")
    frames, encodings = split_sources(sources)
    for name, table in frames.items():
        check_columns(name, table)
    supplied = frozenset(frames) if supplied is None else supplied

    n = len(claims)
    claims = claims.reset_index(drop=True)
    say(f"interning tokens ({n} claim lines, {len(frames)} extract(s))")
    interner = TokenInterner()
    h_taxpayer = interner.add(claims["taxpayer_id_tok"], name="taxpayer_id_tok")
    h_subject = interner.add(claims["subject_id_tok"], name="subject_id_tok")
    h_extra = {column: interner.add(claims[column], name=column) for column in extra_tokens}
    handles = {
        (name, entity): interner.add(table[f"{entity}_id_tok"], name=f"{name}.{entity}_id_tok")
        for name, table in frames.items()
        for entity in ENTITIES[name]
    }
    interner.build()
    codes = {key: interner.codes(h) for key, h in handles.items()}
    taxpayer = interner.codes(h_taxpayer).copy()  # copies: the views would keep every token code alive
    raw_subject = interner.codes(h_subject).copy()
    extra_codes = {column: interner.codes(h).copy() for column, h in h_extra.items()}
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

    if evidence:
        say("building evidence tables")
        deaths = None
        if extra_deaths is not None:
            ymd = _float(claims[extra_deaths])
            known = np.isfinite(ymd) & (taxpayer >= 0)
            deaths = (taxpayer[known], ymd[known])
        ev = build_evidence(frames, codes, size, supplied=supplied, extra_deaths=deaths)
    else:
        ev = Evidence(size=size, supplied=supplied)
        ev.present = presence(frames, codes, size)
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
    return _Stage(
        claims=claims, sources=frames, encodings=encodings, interner=interner, codes=codes, size=size,
        policy=policy, run=run, raw_subject=raw_subject, valid=valid,
        verifiable=np.isin(deduction, VERIFIABLE), supplied=supplied, extra_codes=extra_codes,
    )


def _exact_links(stage: _Stage, say: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray]:
    """(exact, name mismatch) per line: the subject's token is in an extract of its deduction's universe, and
    (mismatch) the claim's subject name disagrees with every name the extracts hold for that person."""
    say("linking subjects")
    run, claims, raw_subject = stage.run, stage.claims, stage.raw_subject
    assert stage.codes is not None
    n = len(run.year)
    deduction = run.deduction
    exact = np.zeros(n, dtype=bool)
    candidates = stage.valid & (raw_subject >= 0) & stage.verifiable
    for ded, subject_sources in SUBJECT_SOURCES.items():
        rows = candidates & (deduction == ded)
        for name in subject_sources:
            if name in stage.supplied and name in stage.sources and rows.any():
                exact[rows] |= run.ev.present[name][raw_subject[rows]]

    # An exact ID is trusted only when the claim's subject name agrees with that person's (SPEC §5): otherwise
    # look for another person as for a mistyped ID; failing that the exact link stands, with NAME_MISMATCH.
    mismatch = np.zeros(n, dtype=bool)
    named_exact = np.flatnonzero(exact)
    if "subject_name_fz" in claims.columns and len(named_exact):
        universe = tuple(name for name in SOURCES if name in stage.sources and name in LINKED_SOURCES)
        say(f"checking subject names of {len(named_exact)} exact link(s)")
        mismatch[named_exact] = exact_name_disagrees(
            take(claims["subject_name_fz"], named_exact), raw_subject[named_exact], universe, stage.encodings,
            stage.codes, stage.size,
        )
        say(f"{int(mismatch.sum())} exact link(s) whose subject name disagrees")
    return exact, mismatch


def exact_stage(
    claims: pd.DataFrame, sources: dict[str, pd.DataFrame | HashedExtract], *, supplied: frozenset[str],
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partitioned runs, first stage (claims and extract rows of one partition of subject tokens): per line,
    (exact, name mismatch, queried): what :func:`verify_tables` finds for them before the fuzzy linker."""
    say = progress or (lambda message: None)
    stage = _prepare(claims, sources, policy=None, say=say, supplied=supplied, evidence=False)
    exact, mismatch = _exact_links(stage, say)
    return exact, mismatch, (stage.verifiable & ~exact) | mismatch


def _fuzzy_links(stage: _Stage, linker: Linker | None, say: Callable[[str], None]) -> None:
    """The fuzzy linker for the lines without an exact link, and for those whose exact link's name disagrees;
    sets the run's linked subjects and the link columns of ``stage``."""
    run, claims, exact, mismatch = stage.run, stage.claims, stage.exact, stage.mismatch.copy()
    assert stage.codes is not None
    n = len(run.year)
    deduction = run.deduction
    run.subject[exact] = stage.raw_subject[exact]
    match = np.where(exact, "exact", "none").astype(object)
    score = exact.astype(np.float64)
    fuzzy = np.zeros(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    found_positions = np.full(n, -1, dtype=np.int64)
    found_tokens: list[pd.Series] = []
    offset = 0
    pending = stage.verifiable & ~exact
    queried = pending | mismatch
    if queried.any():
        pending_rows = np.flatnonzero(queried)
        query_frame = pd.DataFrame(
            {c: take(_column(claims, f"subject_{c}"), pending_rows).set_axis(pending_rows) for c in QUERY_COLUMNS}
        )
        exclude = np.where(mismatch, stage.raw_subject, -1)
        linker = linker or default_linker()
        # The default linker only ever pairs people sharing a blocking key with a query: read no others.
        keys = SharedKeys(query_frame, PERSON_PASSES) if linker is best_links else None
        people = PersonUniverse(stage.sources, stage.encodings, stage.codes, keys)
        for ded, subject_sources in SUBJECT_SOURCES.items():
            universe = tuple(name for name in subject_sources if name in stage.sources)
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
            # the found person's token, for a partitioned run's later stages
            found_positions[found_rows] = offset + np.arange(len(found_rows))
            offset += len(found_rows)
            found_tokens.append(
                take(persons["id_tok"], pd.Index(person_codes).get_indexer(found_codes)).reset_index(drop=True)
            )
        del people, query_frame  # the candidates and their encodings
    stage.exact = exact & ~fuzzy  # an exact ID whose name pointed to another person is no longer the link
    stage.mismatch, stage.match, stage.score, stage.fuzzy, stage.ambiguous = mismatch, match, score, fuzzy, ambiguous
    if offset:
        tokens = pd.concat(found_tokens, ignore_index=True) if len(found_tokens) > 1 else found_tokens[0]
        stage.found_tokens = take(tokens, np.maximum(found_positions, 0)).where(found_positions >= 0)
    _link_flags(stage)


def _link_flags(stage: _Stage) -> None:
    run = stage.run
    run.flag(np.flatnonzero(stage.fuzzy), "FUZZY_MATCH")
    run.flag(np.flatnonzero(stage.ambiguous), "AMBIGUOUS_MATCH")
    run.flag(np.flatnonzero(stage.mismatch), "NAME_MISMATCH")


def fuzzy_stage(
    claims: pd.DataFrame,
    sources: dict[str, pd.DataFrame | HashedExtract],
    exact: np.ndarray,
    mismatch: np.ndarray,
    *,
    supplied: frozenset[str],
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Partitioned runs, second stage: the fuzzy linker for the queried lines of the whole run (``claims``), with
    (``exact``, ``mismatch``) from :func:`exact_stage`, against ``sources`` holding every extract row of every
    candidate person (a person with a row sharing a blocking key with some query), in the extracts' order.

    One row per line: ``exact`` (the exact link stands), ``match``, ``score``, ``fuzzy``, ``ambiguous``,
    ``mismatch``, ``found_tok`` (the token of the person a fuzzy link found; None otherwise)."""
    say = progress or (lambda message: None)
    stage = _prepare(claims, sources, policy=None, say=say, supplied=supplied, evidence=False)
    stage.exact, stage.mismatch = np.asarray(exact, dtype=bool), np.asarray(mismatch, dtype=bool)
    _fuzzy_links(stage, None, say)
    found = stage.found_tokens
    if found is None:
        found = pd.Series([None] * len(claims), dtype=object)
    linked_found = found.where(stage.fuzzy)
    return pd.DataFrame(
        {
            "exact": stage.exact,
            "match": stage.match,
            "score": stage.score,
            "fuzzy": stage.fuzzy,
            "ambiguous": stage.ambiguous,
            "mismatch": stage.mismatch,
            "found_tok": linked_found.reset_index(drop=True),
        }
    )


# Claim columns a partitioned run adds before the rules stage (:func:`rules_stage`).
LINK_COLUMNS = ("_lk_exact", "_lk_match", "_lk_score", "_lk_fuzzy", "_lk_ambiguous", "_lk_mismatch", "_lk_found_tok")
TAXPAYER_COLUMNS = ("_tp_only_child", "_tp_death_ymd")


def rules_stage(
    claims: pd.DataFrame,
    sources: dict[str, pd.DataFrame | HashedExtract],
    *,
    supplied: frozenset[str],
    policy: Policy | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Partitioned runs, third stage: the claim lines whose subject (linked, else as given) falls in one partition,
    with their link results (:data:`LINK_COLUMNS`) and their taxpayer's facts (:data:`TAXPAYER_COLUMNS`), against
    the extract rows naming a person of that partition.

    Returns (flags of every line but the linked elderly_support ones, the elderly_support lines' state for
    :func:`elderly_stage`), in the order of ``claims``."""
    say = progress or (lambda message: None)
    stage = _prepare(
        claims, sources, policy=policy, say=say, supplied=supplied, extra_tokens=("_lk_found_tok",),
        extra_deaths="_tp_death_ymd",
    )
    del stage.interner, stage.codes
    claims = stage.claims
    stage.exact = claims["_lk_exact"].to_numpy(dtype=bool)
    stage.fuzzy = claims["_lk_fuzzy"].to_numpy(dtype=bool)
    stage.ambiguous = claims["_lk_ambiguous"].to_numpy(dtype=bool)
    stage.mismatch = claims["_lk_mismatch"].to_numpy(dtype=bool)
    stage.match = _objects(claims["_lk_match"])
    stage.score = _float(claims["_lk_score"])
    found = stage.extra_codes["_lk_found_tok"]
    stage.run.subject = np.where(stage.exact, stage.raw_subject, np.where(stage.fuzzy, found, -1))
    _link_flags(stage)
    if stage.run.ev.only_child is not None:
        certified = claims["_tp_only_child"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        only_child = stage.run.ev.only_child.copy()
        only_child[stage.run.taxpayer[stage.run.taxpayer >= 0]] = certified[stage.run.taxpayer >= 0]
        stage.run.ev.only_child = only_child
    return _rules(stage, say, split_elderly=True)


def _rules(stage: _Stage, say: Callable[[str], None], *, split_elderly: bool = False
           ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Duplicates and the deduction rules over linked lines; the flags. With ``split_elderly``, the linked
    elderly_support lines stop before their taxpayer-wide step and come back as a state frame instead of flags."""
    run, claims = stage.run, stage.claims
    n = len(run.year)
    deduction, claimed, year, raw_subject = run.deduction, run.claimed, run.year, stage.raw_subject
    exact, ambiguous = stage.exact, stage.ambiguous
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
        pair = pd.factorize(run.taxpayer[dup_rows] * np.int64(stage.size + 1) + subject_key[dup_rows])[0]
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
    elderly_rows = np.flatnonzero(usable & (deduction == "elderly_support"))
    say(f"rules: elderly_support ({len(elderly_rows)})")
    elderly_state = elderly_subject_step(run, elderly_rows)
    if not split_elderly:
        elderly_taxpayer_step(run, elderly_rows, elderly_state, only_child_supplied="only_child" in run.ev.supplied)
    rows = np.flatnonzero(usable & (deduction == "serious_illness"))
    say(f"rules: serious_illness ({len(rows)})")
    serious_illness(run, rows)

    # Lines without a usable subject.
    open_months = (claimed & ~run.dup).any(axis=1)
    verifiable = stage.verifiable
    unlinked = np.flatnonzero(verifiable & ~usable & ~ambiguous)
    if len(unlinked):
        needed_missing = _needed_source_missing(run, stage.supplied)[unlinked]
        run.flag(unlinked, "SUBJECT_NOT_FOUND", ~needed_missing)
        run.flag(unlinked, "SOURCE_MISSING", needed_missing)
        run.missing[unlinked] = needed_missing
        run.supported[unlinked] = needed_missing & open_months[unlinked]
    no_source = np.flatnonzero(~verifiable)
    run.flag(no_source, "SOURCE_MISSING")
    run.missing[no_source] = True
    run.supported[no_source] = open_months[no_source]

    flags = _flags(claims, run, stage.match, stage.score, stage.fuzzy, ambiguous, stage.mismatch)
    if not split_elderly:
        return flags, None
    keep = np.ones(n, dtype=bool)
    keep[elderly_rows] = False
    state = _elderly_frame(stage, elderly_rows, elderly_state)
    if "_pos" in claims.columns:
        flags.insert(0, "_pos", pd.to_numeric(claims["_pos"]).to_numpy(dtype=np.int64))
    return flags[keep].reset_index(drop=True), state


def _months(values: np.ndarray) -> pa.Array:
    """A (k, 12) array as one Arrow column of 12-element lists (exact: float64 and bool round-trip)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), 12)


def _unmonths(column: pd.Series | pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    array = column if isinstance(column, pa.Array | pa.ChunkedArray) else pa.array(column)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=dtype).reshape(-1, 12)


def _elderly_frame(stage: _Stage, rows: np.ndarray, state: ElderlyState) -> pd.DataFrame:
    """What :func:`elderly_stage` needs of the linked elderly_support lines: everything the flags are made of."""
    run, claims = stage.run, stage.claims
    table = pa.table(
        {
            "claim_id": pa.array(claims["claim_id"].to_numpy(dtype=object)[rows]),
            "taxpayer_id_tok": _arrow_column(claims["taxpayer_id_tok"], rows),
            "tax_year": pa.array(run.year[rows]),
            "reasons": pa.array(run.reasons[rows]),
            "missing": pa.array(run.missing[rows]),
            "supported": pa.array(run.supported[rows]),
            "match": pa.array(stage.match[rows].astype(str)),
            "score": pa.array(stage.score[rows]),
            "fuzzy": pa.array(stage.fuzzy[rows]),
            "mismatch": pa.array(stage.mismatch[rows]),
            **{name: _months(getattr(state, name)) for name in ElderlyState.MONTH_FIELDS},
        }
    )
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    for column in ("_pos", "_line"):
        if column in claims.columns:
            frame.insert(0, column, pd.to_numeric(claims[column]).to_numpy(dtype=np.int64)[rows])
    return frame


def _arrow_column(column: pd.Series, rows: np.ndarray) -> pa.Array:
    taken = take(column, rows)
    if isinstance(taken.dtype, pd.ArrowDtype):
        array = taken.array.__arrow_array__()
        return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pa.array(taken.to_numpy(dtype=object), type=pa.binary(16))


def elderly_stage(state: pd.DataFrame, *, supplied: frozenset[str], policy: Policy | None = None) -> pd.DataFrame:
    """Partitioned runs, last stage: the linked elderly_support lines of the taxpayers of one partition (state
    frames of :func:`rules_stage`, in claims order): one taxpayer's total across parents, and their flags."""
    policy = policy or load_policy()
    k = len(state)
    interner = TokenInterner()
    handle = interner.add(state["taxpayer_id_tok"], name="taxpayer_id_tok")
    interner.build()
    ev = Evidence(size=interner.size, supplied=supplied)
    zeros = np.zeros((k, 12))
    run = Run(
        policy=policy, ev=ev, taxpayer=interner.codes(handle), subject=np.zeros(k, dtype=np.int64),
        year=pd.to_numeric(state["tax_year"]).to_numpy(dtype=np.int64),
        deduction=np.full(k, "elderly_support", dtype=object), relation=np.full(k, None, dtype=object),
        stage=np.full(k, None, dtype=object), share=np.full(k, np.nan), monthly=np.full(k, np.nan),
        annual=np.full(k, np.nan), only_child_declared=np.full(k, None, dtype=object), birth_abs=np.full(k, np.nan),
        claimed=np.zeros((k, 12), dtype=bool), dup=np.zeros((k, 12), dtype=bool),
        reasons=pd.to_numeric(state["reasons"]).to_numpy(dtype=np.int64).copy(),
        missing=state["missing"].to_numpy(dtype=bool).copy(),
        supported=state["supported"].to_numpy(dtype=bool).copy(),
        allowed_months=zeros.copy(), allowed_annual=np.full(k, np.nan), claimed_amount=np.zeros(k),
    )
    elderly = ElderlyState(**{
        name: _unmonths(state[name], bool if name in ElderlyState.BOOL_FIELDS else np.float64)
        for name in ElderlyState.MONTH_FIELDS
    })
    rows = np.arange(k)
    elderly_taxpayer_step(run, rows, elderly, only_child_supplied="only_child" in supplied)
    flags = _flags(
        state, run, _objects(state["match"]), _float(state["score"]), state["fuzzy"].to_numpy(dtype=bool),
        np.zeros(k, dtype=bool), state["mismatch"].to_numpy(dtype=bool),
    )
    if "_pos" in state.columns:
        flags.insert(0, "_pos", pd.to_numeric(state["_pos"]).to_numpy(dtype=np.int64))
    return flags


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
