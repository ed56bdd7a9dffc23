"""Per-run state shared by the rules: one array (or one 12-month row) per claim line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matchkit.verify.evidence import Evidence
from matchkit.verify.months import EPS
from matchkit.verify.policy import Policy
from matchkit.verify.reasons import BIT


@dataclass
class Run:
    policy: Policy
    ev: Evidence
    taxpayer: np.ndarray  # person codes
    subject: np.ndarray  # linked person code (exact or fuzzy), -1 when not linked
    year: np.ndarray  # int64
    deduction: np.ndarray  # object codes
    relation: np.ndarray  # object: self/spouse/child/parent/None
    stage: np.ndarray  # object
    share: np.ndarray  # float64, 1.0 when absent
    monthly: np.ndarray  # float64, NaN when absent
    annual: np.ndarray  # float64, NaN when absent
    only_child_declared: np.ndarray  # object: the claim's own only_child column (True/False/NA)
    birth_abs: np.ndarray  # float64 absolute birth month (year*12 + month-1), NaN when unknown
    claimed: np.ndarray  # (n, 12) bool: claimed months
    dup: np.ndarray  # (n, 12) bool: months an earlier duplicate line already claims
    # outputs
    reasons: np.ndarray  # int64 bit masks
    missing: np.ndarray  # bool: a source the line needs was not supplied
    supported: np.ndarray  # bool: the checks that ran support something (missing sources assumed to pass)
    allowed_months: np.ndarray  # (n, 12) float64, evidence-supported amount per month (missing sources fail)
    allowed_annual: np.ndarray  # float64, annual deductions
    claimed_amount: np.ndarray  # float64

    @property
    def n_months(self) -> np.ndarray:
        return self.claimed.sum(axis=1)

    def flag(self, idx: np.ndarray, code: str, where: Any = None) -> None:
        rows = idx if where is None else idx[np.asarray(where, dtype=bool)]
        self.reasons[rows] |= BIT[code]

    def claimed_monthly(self, idx: np.ndarray, default: np.ndarray) -> np.ndarray:
        """(k, 12) claimed yuan per month: the monthly amount, else annual / months, else ``default``."""
        claimed = self.claimed[idx]
        months = np.maximum(claimed.sum(axis=1), 1)
        per_month = np.where(np.isnan(self.monthly[idx]), self.annual[idx] / months, self.monthly[idx])
        amounts = np.where(np.isnan(per_month)[:, None], default, per_month[:, None])
        return np.where(claimed, np.nan_to_num(amounts), 0.0)


class Checks:
    """Combines one line-set's checks month by month, twice: strictly (a check whose source was not supplied
    fails: that is what the evidence supports) and optimistically (it passes: used to tell `rejected`, where
    the checks that ran support nothing, from `unverifiable`)."""

    def __init__(self, run: Run, idx: np.ndarray, base: np.ndarray) -> None:
        self.run, self.idx, self.base = run, idx, base
        self.strict = base.copy()
        self.optimistic = base.copy()

    def require(
        self, ok: np.ndarray | None, code: str | None, source: str | tuple[str, ...] | None = None
    ) -> None:
        sources = (source,) if isinstance(source, str) else (source or ())
        if any(s not in self.run.ev.supplied for s in sources):
            self.source_missing()
            return
        assert ok is not None
        ok = ok if ok.ndim == 2 else np.broadcast_to(ok[:, None], self.base.shape)
        if code is not None:
            self.run.flag(self.idx, code, (self.base & ~ok).any(axis=1))
        self.strict &= ok
        self.optimistic &= ok

    def source_missing(self, where: np.ndarray | None = None) -> None:
        rows = np.ones(len(self.idx), dtype=bool) if where is None else where
        self.run.missing[self.idx[rows]] = True
        self.run.flag(self.idx, "SOURCE_MISSING", rows)
        self.strict[rows] = False

    def finish(self, allowed: np.ndarray, claimed: np.ndarray) -> None:
        self.run.allowed_months[self.idx] = np.where(self.strict, allowed, 0.0)
        self.run.supported[self.idx] = (self.optimistic & (claimed > 0)).any(axis=1)


def truthy(values: np.ndarray) -> np.ndarray:
    """True for True/1 in an object column (None/NA/False -> False), without a Python loop over rows."""
    series = pd.Series(values, dtype=object)
    return (series.isin([True, 1]) & series.notna()).to_numpy(dtype=bool)


def over(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a > b + EPS
