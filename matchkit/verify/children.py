"""children_education (子女教育) and infant_care (婴幼儿照护): per child, per month, shares of one standard.

Both: household relation taxpayer = parent, subject = child; per month allowed = min(claimed, standard x share);
the capped claims of all claimants for one child-month share one standard in proportion (SHARE_EXCEEDED).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matchkit.verify.context import Checks, Run, over
from matchkit.verify.months import abs_months, group_key, group_sum_into, month_range, share_out


def _share_rule(run: Run, idx: np.ndarray, checks: Checks, deduction: str, std: np.ndarray) -> np.ndarray:
    share = np.where(np.isnan(run.share[idx]) | (run.share[idx] <= 0), 1.0, run.share[idx])
    cap = np.nan_to_num(std) * share[:, None]
    claimed = run.claimed_monthly(idx, cap)
    run.flag(idx, "OVER_CAP", (checks.base & ~np.isnan(std) & over(claimed, cap)).any(axis=1))
    capped = np.where(checks.strict, np.minimum(claimed, cap), 0.0)
    keys = group_key(run.subject[idx], run.year[idx])
    allowed, exceeded = share_out(capped, keys, np.nan_to_num(std))
    run.flag(idx, "SHARE_EXCEEDED", exceeded.any(axis=1))
    checks.finish(allowed, claimed)
    run.claimed_amount[idx] = claimed.sum(axis=1)
    return allowed


def infant_care(run: Run, idx: np.ndarray) -> None:
    ages = run.policy.ages
    checks = Checks(run, idx, run.claimed[idx] & ~run.dup[idx])
    months = abs_months(run.year[idx])
    std = run.policy.figure_by_month("infant_care", "monthly", months)
    checks.require(~np.isnan(std), "NOT_IN_FORCE")
    checks.require(
        run.ev.in_household(run.taxpayer[idx], run.subject[idx]), "RELATION_UNVERIFIED", "household"
    )
    birth_rel = run.birth_abs[idx] - run.year[idx] * 12
    window = month_range(birth_rel, birth_rel + 12 * ages["infant_care_until"] - 1)  # NaN birth -> no month
    checks.require(window, "AGE_INELIGIBLE")
    _share_rule(run, idx, checks, "infant_care", std)


def children_education(run: Run, idx: np.ndarray, infant_months: tuple[np.ndarray, np.ndarray]) -> None:
    """``infant_months``: (child-year keys, (k, 12) months) already allowed as infant care, which excludes them."""
    ages, ev = run.policy.ages, run.ev
    checks = Checks(run, idx, run.claimed[idx] & ~run.dup[idx])
    months = abs_months(run.year[idx])
    year_start = run.year[idx] * 12
    std = run.policy.figure_by_month("children_education", "monthly", months)
    checks.require(~np.isnan(std), "NOT_IN_FORCE")
    checks.require(ev.in_household(run.taxpayer[idx], run.subject[idx]), "RELATION_UNVERIFIED", "household")

    stage = run.stage[idx]
    preschool = stage == "preschool"
    unknown_stage = pd.isna(stage).astype(bool)
    enrolled_stage = ~preschool & ~unknown_stage

    # Preschool window (SPEC §5): from the month the child turns 3 to the month before the first compulsory spell;
    # only a child with no compulsory spell falls back to the month before age 6 (a child who starts school at 7
    # keeps preschool months after the 6th birthday).
    birth = run.birth_abs[idx]
    first_school = np.full(len(idx), np.inf)
    if ev.first_compulsory is not None:
        linked = run.subject[idx]
        first_school = np.where(linked >= 0, ev.first_compulsory[np.maximum(linked, 0)], np.inf).astype(
            np.float64
        )
        first_school[first_school >= 10**9] = np.inf
    preschool_end = np.where(np.isfinite(first_school), first_school - 1, birth + 12 * ages["preschool_until"] - 1)
    pre_window = month_range(birth + 12 * ages["preschool_from"] - year_start, preschool_end - year_start)

    any_spell = np.zeros(checks.base.shape, dtype=bool)
    same_spell = np.zeros(checks.base.shape, dtype=bool)
    needs_education = enrolled_stage | unknown_stage
    if ev.spells is not None and needs_education.any():
        rows = np.flatnonzero(needs_education)
        lines = _spell_masks(run, idx[rows], ev.spells)
        any_spell[rows], same_spell[rows] = lines

    if preschool.any():
        ok = pre_window[preschool]
        checks.strict[preschool] &= ok
        checks.optimistic[preschool] &= ok
        run.flag(idx[preschool], "AGE_INELIGIBLE", (checks.base[preschool] & ~ok).any(axis=1))
    if needs_education.any():
        rows = needs_education
        if "education" not in ev.supplied:
            checks.source_missing(rows)
        else:
            base = checks.base[rows]
            ok = np.where(unknown_stage[rows, None], any_spell[rows] | pre_window[rows], same_spell[rows])
            run.flag(idx[rows], "NOT_ENROLLED", (base & ~any_spell[rows] & ~ok).any(axis=1))
            run.flag(idx[rows], "STAGE_MISMATCH", (base & any_spell[rows] & ~ok).any(axis=1))
            checks.strict[rows] &= ok
            checks.optimistic[rows] &= ok

    # Never the same child-month under both deductions: infant care months come off.
    infant_keys, infant_allowed = infant_months
    if len(infant_keys):
        taken = group_sum_into(infant_keys, infant_allowed, group_key(run.subject[idx], run.year[idx])) > 0
        checks.require(~taken, "AGE_INELIGIBLE")
    _share_rule(run, idx, checks, "children_education", std)


def _spell_masks(run: Run, lines: np.ndarray, spells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(any-stage, same-stage) (k, 12) enrolment masks for the claim lines ``lines`` (line x spell join)."""
    k = len(lines)
    frame = pd.DataFrame({"row": np.arange(k), "code": run.subject[lines]})
    joined = frame.merge(spells, on="code", how="inner")
    if joined.empty:
        return np.zeros((k, 12), dtype=bool), np.zeros((k, 12), dtype=bool)
    row = joined["row"].to_numpy()
    start = run.year[lines][row] * 12
    lo = joined["from_abs"].to_numpy() - start
    hi = np.minimum(joined["to_abs"].to_numpy(), start + 11) - start
    mask = month_range(lo, hi)
    same = joined["stage"].to_numpy(dtype=object) == run.stage[lines][row]
    any_spell = np.zeros((k, 12), dtype=bool)
    same_spell = np.zeros((k, 12), dtype=bool)
    np.logical_or.at(any_spell, row, mask)
    np.logical_or.at(same_spell, row[same], mask[same])
    return any_spell, same_spell
