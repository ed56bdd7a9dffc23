"""Month-matrix helpers. A monthly line is a row of 12 cells (January..December of its tax year).

Every monthly rule works on dense ``(lines, 12)`` arrays: claimed months, eligible months, amounts. A claimed
period lies inside one tax year (checked at hash time), so 12 columns always suffice, and per-month group sums
(competing claims) are 12 ``bincount`` calls over integer group ids instead of a claim-month explosion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MONTHS = np.arange(12, dtype=np.int64)
EPS = 0.005  # half a fen: amounts are compared at the precision they are reported in


def month_range(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(k, 12) bool: month index m (0 = January) with lo <= m <= hi; lo/hi relative to the tax year, any range."""
    lo = np.asarray(lo, dtype=np.float64)[:, None]
    hi = np.asarray(hi, dtype=np.float64)[:, None]
    return (MONTHS >= lo) & (MONTHS <= hi)


def abs_months(years: np.ndarray) -> np.ndarray:
    """(k, 12) absolute month numbers (year * 12 + month - 1)."""
    return np.asarray(years, dtype=np.int64)[:, None] * 12 + MONTHS


def group_key(codes: np.ndarray, years: np.ndarray) -> np.ndarray:
    """One int64 per (person code, tax year)."""
    return np.asarray(codes, dtype=np.int64) * 10_000 + np.asarray(years, dtype=np.int64)


def group_sum(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-month sum of ``values`` over all rows sharing a key, broadcast back to each row."""
    if len(keys) == 0:
        return np.zeros_like(values, dtype=np.float64)
    group, uniques = pd.factorize(keys)
    out = np.empty(values.shape, dtype=np.float64)
    for month in range(values.shape[1]):
        totals = np.bincount(group, weights=values[:, month], minlength=len(uniques))
        out[:, month] = totals[group]
    return out


def group_sum_into(src_keys: np.ndarray, src_values: np.ndarray, dst_keys: np.ndarray) -> np.ndarray:
    """Per-month sums of ``src_values`` by key, looked up for ``dst_keys`` (0 where a key has no source row)."""
    group, uniques = pd.factorize(np.concatenate([src_keys, dst_keys]))
    src_group, dst_group = group[: len(src_keys)], group[len(src_keys) :]
    out = np.zeros((len(dst_keys), src_values.shape[1]), dtype=np.float64)
    for month in range(src_values.shape[1]):
        totals = np.bincount(src_group, weights=src_values[:, month], minlength=len(uniques))
        out[:, month] = totals[dst_group]
    return out


def share_out(claims: np.ndarray, keys: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Competing claims: where a group's month total exceeds ``pool``, each gets pool * claim / total.

    Returns (amounts, exceeded-month mask per row). ``pool`` is per row-month (the same within a group).
    """
    totals = group_sum(keys, claims)
    exceeded = (totals > pool + EPS) & (claims > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(exceeded, claims * pool / totals, claims)
    return scaled, exceeded
