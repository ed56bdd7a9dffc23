"""elderly_support (赡养老人): the taxpayer supports a parent aged 60+.

Order of the month-by-month computation (each step documented in docs/RULES.md):
eligibility (relation, age, death, in force) -> individual cap (standard for a certified only child, else the
per-sibling cap) -> siblings of one parent share one standard -> one taxpayer's total across parents is capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from matchkit.verify.context import Checks, Run, over, truthy
from matchkit.verify.months import EPS, abs_months, group_key, group_sum, month_range, share_out


@dataclass
class ElderlyState:
    """The (k, 12) month arrays of elderly_support lines between the step keyed by the subject (the parent: the
    siblings' shared standard) and the step keyed by the taxpayer (one total across parents)."""

    MONTH_FIELDS: ClassVar[tuple[str, ...]] = (
        "claimed", "strict", "optimistic", "sibling_cap", "personal_cap", "allowed",
    )
    BOOL_FIELDS: ClassVar[tuple[str, ...]] = ("strict", "optimistic")

    claimed: np.ndarray
    strict: np.ndarray
    optimistic: np.ndarray
    sibling_cap: np.ndarray
    personal_cap: np.ndarray
    allowed: np.ndarray  # after the siblings of one parent shared one standard


def elderly_support(run: Run, idx: np.ndarray) -> None:
    state = elderly_subject_step(run, idx)
    elderly_taxpayer_step(run, idx, state, only_child_supplied="only_child" in run.ev.supplied)


def elderly_subject_step(run: Run, idx: np.ndarray) -> ElderlyState:
    """Everything keyed by the line or its subject (the parent): eligibility, individual cap, siblings' share.
    The taxpayer's only-child certificate is ``run.ev.only_child[taxpayer]`` (a fact about the taxpayer)."""
    ev, ages = run.ev, run.policy.ages
    checks = Checks(run, idx, run.claimed[idx] & ~run.dup[idx])
    months = abs_months(run.year[idx])
    std = run.policy.figure_by_month("elderly_support", "monthly", months)
    sibling_cap = run.policy.figure_by_month("elderly_support", "per_sibling_cap", months)
    in_force = ~np.isnan(std)
    checks.require(in_force, "NOT_IN_FORCE")
    std, sibling_cap = np.nan_to_num(std), np.nan_to_num(sibling_cap)
    # household: the subject is the parent, the taxpayer the child
    checks.require(ev.in_household(run.subject[idx], run.taxpayer[idx]), "RELATION_UNVERIFIED", "household")
    birth_rel = run.birth_abs[idx] - run.year[idx] * 12
    checks.require(
        month_range(birth_rel + 12 * ages["elderly_from"], np.full(len(idx), 11)), "AGE_INELIGIBLE"
    )
    if "civil_affairs" in ev.supplied:
        assert ev.death_year is not None
        died_before = (
            ev.death_year[run.subject[idx]] < run.year[idx]
        )  # death in the tax year counts to December
        checks.require(~died_before, "SUBJECT_DECEASED")
    else:
        checks.require(None, None, "civil_affairs")

    declared_only = truthy(run.only_child_declared[idx])
    claimed = run.claimed_monthly(idx, np.where(declared_only[:, None], std, sibling_cap))
    run.flag(idx, "OVER_CAP", (checks.base & in_force & over(claimed, std)).any(axis=1))

    if "only_child" in ev.supplied:
        assert ev.only_child is not None
        certified = ev.only_child[run.taxpayer[idx]]
        run.flag(
            idx,
            "NOT_ONLY_CHILD",
            (~certified[:, None] & checks.base & in_force & over(claimed, sibling_cap)).any(axis=1),
        )
    else:
        certified = np.zeros(len(idx), dtype=bool)
    personal_cap = np.where(certified[:, None], std, sibling_cap)

    capped = np.where(checks.strict, np.minimum(claimed, personal_cap), 0.0)
    allowed, siblings_over = share_out(capped, group_key(run.subject[idx], run.year[idx]), std)
    run.flag(idx, "SIBLING_CAP_EXCEEDED", siblings_over.any(axis=1))
    return ElderlyState(claimed, checks.strict, checks.optimistic, sibling_cap, personal_cap, allowed)


def elderly_taxpayer_step(run: Run, idx: np.ndarray, state: ElderlyState, *, only_child_supplied: bool) -> None:
    """Everything keyed by the taxpayer: without the only_child extract, the lines whose taxpayer's month total
    across parents exceeds the per-sibling cap need it (SOURCE_MISSING); one taxpayer's total is capped; the
    line's allowed months. ``idx`` holds every linked elderly_support line of each of its taxpayers, in claims
    order (the order the month totals are summed in)."""
    taxpayer_keys = group_key(run.taxpayer[idx], run.year[idx])
    if not only_child_supplied:
        # Only-child evidence is needed where the taxpayer's month total across parents exceeds the per-sibling
        # cap.
        taxpayer_total = group_sum(taxpayer_keys, np.where(state.optimistic, state.claimed, 0.0))
        needs_certificate = state.optimistic & (taxpayer_total > state.sibling_cap + EPS)
        lines_needing = needs_certificate.any(axis=1)
        if lines_needing.any():
            run.missing[idx[lines_needing]] = True
            run.flag(idx, "SOURCE_MISSING", lines_needing)
    allowed, taxpayer_over = share_out(state.allowed, taxpayer_keys, state.personal_cap)
    run.flag(idx, "OVER_CAP", taxpayer_over.any(axis=1))
    run.allowed_months[idx] = np.where(state.strict, allowed, 0.0)
    run.supported[idx] = (state.optimistic & (state.claimed > 0)).any(axis=1)
    run.claimed_amount[idx] = state.claimed.sum(axis=1)
