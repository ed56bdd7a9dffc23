"""serious_illness (大病医疗, annual): min(max(x - threshold, 0), cap) per patient-year.

x is the patient's summed in-catalogue out-of-pocket cost for the tax year (medical_insurance rows summed). The
patient is the taxpayer, the spouse (marriage in force on some day of the year) or a minor child (household).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matchkit.verify.context import Run
from matchkit.verify.months import EPS, group_key

# Sources that can show each relation (besides medical_insurance, always needed).
_RELATION_SOURCES = {"self": (), "spouse": ("civil_affairs",), "child": ("household",)}


def serious_illness(run: Run, idx: np.ndarray) -> None:
    ev, ages = run.ev, run.policy.ages
    k = len(idx)
    years = run.year[idx]
    taxpayer, subject = run.taxpayer[idx], run.subject[idx]
    months = np.maximum(run.claimed[idx].sum(axis=1), 1)
    claimed = np.where(np.isnan(run.annual[idx]), run.monthly[idx] * months, run.annual[idx])
    claimed = np.nan_to_num(claimed)
    run.claimed_amount[idx] = claimed
    relation = pd.Series(run.relation[idx], dtype=object)
    is_self = (relation == "self").to_numpy() | (relation.isna().to_numpy() & (subject == taxpayer))
    as_spouse = (relation == "spouse").to_numpy() | (relation.isna().to_numpy() & ~is_self)
    as_child = (relation == "child").to_numpy() | (relation.isna().to_numpy() & ~is_self)

    # Relation, evaluated strictly (a missing source fails) and optimistically (it passes).
    ok_strict = is_self & (subject == taxpayer)
    ok_opt = ok_strict.copy()
    missing = np.zeros(k, dtype=bool)
    age_failed = np.zeros(k, dtype=bool)
    if "civil_affairs" in ev.supplied:
        married = as_spouse & ev.married_in_year(taxpayer, subject, years)
        ok_strict |= married
        ok_opt |= married
    else:
        missing |= as_spouse
        ok_opt |= as_spouse
    birth_year = np.floor(run.birth_abs[idx] / 12)
    minor = birth_year >= years - ages["minor_under"]  # under 18 on some day of the year; NaN birth -> False
    if "household" in ev.supplied:
        parent_of = as_child & ev.in_household(taxpayer, subject)
        ok_strict |= parent_of & minor
        ok_opt |= parent_of & minor
        age_failed = parent_of & ~minor & ~ok_strict
    else:
        missing |= as_child
        ok_opt |= as_child
    relation_failed = ~ok_opt & ~age_failed
    run.flag(idx, "AGE_INELIGIBLE", age_failed)
    run.flag(idx, "RELATION_UNVERIFIED", relation_failed)

    threshold = run.policy.figure_by_year("serious_illness", "threshold", years)
    annual_cap = run.policy.figure_by_year("serious_illness", "annual_cap", years)
    in_force = ~np.isnan(threshold)
    run.flag(idx, "NOT_IN_FORCE", ~in_force)
    duplicate = run.dup[idx].any(axis=1)

    if "medical_insurance" in ev.supplied:
        out_of_pocket = ev.out_of_pocket(subject, years)
        evidence = np.minimum(
            np.maximum(np.round(out_of_pocket - np.nan_to_num(threshold), 2), 0.0), np.nan_to_num(annual_cap)
        )
        eligible = ok_opt & in_force & ~duplicate
        run.flag(idx, "EXPENSE_BELOW_THRESHOLD", eligible & (out_of_pocket <= np.nan_to_num(threshold)))
        run.flag(idx, "AMOUNT_EXCEEDS_EVIDENCE", eligible & (evidence > 0) & (claimed > evidence + EPS))
        evidence_opt = evidence
    else:
        missing[:] = True
        evidence = np.zeros(k)
        evidence_opt = np.full(k, np.inf)
    run.missing[idx] |= missing
    run.flag(idx, "SOURCE_MISSING", missing)

    capped = np.where(ok_strict & ~missing & in_force & ~duplicate, np.minimum(claimed, evidence), 0.0)
    # One patient-year's allowance is granted once: claimants share it in proportion to their capped claims.
    keys = group_key(subject, years)
    group, uniques = pd.factorize(keys)
    totals = np.bincount(group, weights=capped, minlength=len(uniques))[group]
    exceeded = (totals > evidence + EPS) & (capped > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        allowed = np.where(exceeded, capped * evidence / totals, capped)
    run.flag(idx, "SHARE_EXCEEDED", exceeded)
    run.allowed_annual[idx] = allowed
    run.supported[idx] = ok_opt & in_force & ~duplicate & (evidence_opt > 0) & (claimed > 0)
