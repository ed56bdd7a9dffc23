"""Unsupervised Fellegi–Sunter parameters: u from random pairs, m and the match prior by EM.

The classic recipe (Winkler; what Splink calls "u from random sampling, m by expectation–maximisation"):

- **u** = P(level | non-match). Almost every pair of two random records is a non-match, so the level frequencies
  over a uniform sample of all left x right pairs estimate u directly and stably. u stays fixed during EM, which
  keeps EM from drifting into a "match" class that is merely a common pattern.
- **m** = P(level | match) and **lambda** = P(match) among the *candidate pairs* (blocking concentrates the
  matches there) are estimated by EM under conditional independence of the fields:

  E-step  w_p = lambda prod_f m_f(l_pf) / (lambda prod_f m_f(l_pf) + (1 - lambda) prod_f u_f(l_pf))
  M-step  m_f(l) = sum_p w_p [l_pf = l] / sum_p w_p [l_pf >= 0],  lambda = mean_p w_p

  A missing field (level -1) contributes 1 to both products. EM runs on the distinct level patterns with their
  counts, so an iteration costs O(patterns), not O(pairs).

The result is *usable* only if it separates: :func:`estimate` reports ``converged`` and ``separating`` (for at
least one field the top level's m/u ratio is > 1 and m rises with agreement), and the caller falls back to a plain
similarity threshold when either is false.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_GAIN = 50.0  # nats of log-likelihood a model must gain over "no matches" to be trusted (see estimate)
FLOOR = 1e-6  # no probability is ever exactly 0 or 1: a single unseen level must not veto or force a link


@dataclass(frozen=True)
class EmResult:
    m: tuple[tuple[float, ...], ...]  # per field, per level
    u: tuple[tuple[float, ...], ...]
    prior: float  # P(match) among candidate pairs
    iterations: int
    converged: bool
    separating: bool
    gain: float = 0.0  # log-likelihood gain over "no matches" (nats)


def level_frequencies(levels: np.ndarray, n_levels: Sequence[int]) -> tuple[tuple[float, ...], ...]:
    """Per field, the share of each level among the pairs where the field has one (floored, renormalised)."""
    out = []
    for field, count in enumerate(n_levels):
        column = levels[:, field]
        present = column[column >= 0].astype(np.int64)
        frequencies = np.bincount(present, minlength=count)[:count].astype(np.float64)
        frequencies = np.maximum(frequencies / max(len(present), 1), FLOOR)
        out.append(tuple((frequencies / frequencies.sum()).tolist()))
    return tuple(out)


def distinct_patterns(levels: np.ndarray, n_levels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``levels`` and their counts; rows are packed into one int64 each when they fit (a
    1-D sort is ~20x faster than numpy's row-wise ``unique``)."""
    bases = np.asarray(n_levels, dtype=np.int64) + 1  # level -1 .. n-1 -> digit 0 .. n
    if len(levels) == 0 or float(np.prod(bases.astype(np.float64))) >= 2.0**62:
        return np.unique(levels, axis=0, return_counts=True)
    place = np.concatenate([[1], np.cumprod(bases[:-1])]).astype(np.int64)
    packed = np.empty(len(levels), dtype=np.int64)
    for start in range(0, len(levels), 1 << 22):  # chunks: levels may be int8 and tens of millions of rows
        part = slice(start, start + (1 << 22))
        packed[part] = (levels[part].astype(np.int64) + 1) @ place
    codes, counts = np.unique(packed, return_counts=True)
    patterns = (codes[:, None] // place[None, :]) % bases[None, :] - 1
    return patterns.astype(np.int64), counts


def _initial_m(count: int) -> np.ndarray:
    """A starting m that rises with agreement (most matches agree fully)."""
    m = np.full(count, 0.1 / max(count - 1, 1))
    m[-1] = 0.9
    return m


def estimate(
    levels: np.ndarray,
    n_levels: Sequence[int],
    u: Sequence[Sequence[float]],
    *,
    prior: float = 0.01,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> EmResult:
    """EM for m and lambda over candidate pairs' ``levels`` (pairs x fields, -1 = missing), with ``u`` fixed."""
    if levels.ndim != 2 or levels.shape[1] != len(n_levels):
        raise ValueError("levels must be pairs x fields")
    patterns, counts = distinct_patterns(levels, n_levels)
    return estimate_patterns(patterns, counts, n_levels, u, prior=prior, max_iterations=max_iterations,
                             tolerance=tolerance)


def merge_patterns(parts: Sequence[tuple[np.ndarray, np.ndarray]], n_levels: Sequence[int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct patterns and counts of several parts' :func:`distinct_patterns` together, in the order (and
    with the counts) :func:`distinct_patterns` gives for all their pairs at once: EM over partitions is exact."""
    width = len(n_levels)
    patterns = np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1, width) for p, _ in parts]) \
        if parts else np.zeros((0, width), dtype=np.int64)
    counts = np.concatenate([np.asarray(c, dtype=np.int64) for _, c in parts]) if parts else np.zeros(0, np.int64)
    if not len(patterns):
        return patterns, counts
    distinct, inverse = np.unique(patterns, axis=0, return_inverse=True)
    merged = np.zeros(len(distinct), dtype=np.int64)
    np.add.at(merged, inverse.reshape(-1), counts)
    # the same order as distinct_patterns: re-sort by its packed code when it packs
    bases = np.asarray(n_levels, dtype=np.int64) + 1
    if float(np.prod(bases.astype(np.float64))) < 2.0**62:
        place = np.concatenate([[1], np.cumprod(bases[:-1])]).astype(np.int64)
        order = np.argsort((distinct + 1) @ place, kind="stable")
        distinct, merged = distinct[order], merged[order]
    return distinct, merged


def estimate_patterns(
    patterns: np.ndarray,
    counts: np.ndarray,
    n_levels: Sequence[int],
    u: Sequence[Sequence[float]],
    *,
    prior: float = 0.01,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> EmResult:
    """:func:`estimate` over distinct level patterns and their counts (:func:`distinct_patterns`)."""
    counts = np.asarray(counts).astype(np.float64)
    u_arrays = [np.maximum(np.asarray(u_f, dtype=np.float64), FLOOR) for u_f in u]
    m_arrays = [_initial_m(count) for count in n_levels]
    log_u = np.zeros(len(patterns))
    for field, u_f in enumerate(u_arrays):
        column = patterns[:, field]
        log_u += np.where(column >= 0, np.log(u_f[np.maximum(column, 0)]), 0.0)
    lam = min(max(prior, FLOOR), 1 - FLOOR)
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        log_m = np.zeros(len(patterns))
        for field, m_f in enumerate(m_arrays):
            column = patterns[:, field]
            log_m += np.where(column >= 0, np.log(m_f[np.maximum(column, 0)]), 0.0)
        log_odds = np.log(lam) - np.log1p(-lam) + log_m - log_u
        weight = 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # P(match | pattern)
        matched = weight * counts
        new_m = []
        for field, count in enumerate(n_levels):
            column = patterns[:, field]
            present = column >= 0
            totals = np.bincount(column[present], weights=matched[present], minlength=count)[:count]
            m_f = np.maximum(totals / max(totals.sum(), FLOOR), FLOOR)
            new_m.append(m_f / m_f.sum())
        new_lam = float(min(max(matched.sum() / counts.sum(), FLOOR), 1 - FLOOR))
        change = max(abs(new_lam - lam), *(float(np.abs(a - b).max()) for a, b in zip(new_m, m_arrays)))
        m_arrays, lam = new_m, new_lam
        if change < tolerance:
            converged = True
            break
    log_m = np.zeros(len(patterns))
    for field, m_f in enumerate(m_arrays):
        column = patterns[:, field]
        log_m += np.where(column >= 0, np.log(m_f[np.maximum(column, 0)]), 0.0)
    # Log-likelihood gain of the two-class mixture over "every pair a non-match": EM always finds *some* small
    # class in pure noise (m concentrated on whatever rare pattern a few pairs share), but its gain is of the
    # order of its free parameters, while real matches gain thousands.
    gain = float((counts * np.log1p(lam * np.expm1(np.clip(log_m - log_u, -700, 700)))).sum())
    free_parameters = sum(count - 1 for count in n_levels) + 1
    separating = gain >= max(MIN_GAIN, 5.0 * free_parameters) and any(
        m_f[-1] > 10 * u_f[-1] and m_f[-1] > m_f[0] for m_f, u_f in zip(m_arrays, u_arrays))
    return EmResult(
        m=tuple(tuple(m_f.tolist()) for m_f in m_arrays),
        u=tuple(tuple(u_f.tolist()) for u_f in u_arrays),
        prior=lam,
        iterations=iteration,
        converged=converged,
        separating=bool(separating),
        gain=gain,
    )


_SCALE = 1074  # a float64 is an integer number of 2^-1074 (the smallest subnormal)
_CHUNK = 1 << 24  # at most 2^24 terms per exponent are summed in float64 at once (exact: see exact_sum)
_HIGH = np.int64(~((1 << 26) - 1))  # clears the low 26 bits of the significand


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of finite float64 ``values``, as an integer in units of ``2^-1074``: sums of parts add up
    to the sum of the whole whatever the split and order (:func:`exact_float` rounds it once). Used where a total
    over all candidate pairs must not depend on how the pairs were partitioned (:mod:`matchkit.link.partitioned`).

    Each value ``x`` with binary exponent ``e`` is split without error into ``hi`` (its top 27 significand bits: a
    multiple of ``2^(e-26)`` below ``2^(e+1)``) and ``lo = x - hi`` (a multiple of ``2^(e-52)`` below ``2^(e-26)``);
    per exponent, the float64 sums of up to 2^24 ``hi`` (51 bits) or ``lo`` (50 bits) are exact."""
    total = 0
    values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    for start in range(0, len(values), _CHUNK):
        part = values[start:start + _CHUNK]
        if not len(part):
            continue
        if sys.byteorder == "little":  # the top 16 bits of each value: a quarter of the memory traffic
            exponent = ((part.view(np.uint16)[3::4] >> 4) & 0x7FF).astype(np.intp)
        else:  # pragma: no cover
            exponent = ((part.view(np.int64) >> 52) & 0x7FF).astype(np.intp)
        high = (part.view(np.int64) & _HIGH).view(np.float64)
        low = part - high
        for sums in (np.bincount(exponent, weights=high), np.bincount(exponent, weights=low)):
            for value in sums[sums != 0].tolist():
                numerator, denominator = value.as_integer_ratio()  # denominator: a power of two <= 2^1074
                total += numerator << (_SCALE - denominator.bit_length() + 1)
    return total


def exact_float(total: int) -> float:
    """:func:`exact_sum`'s integer as the nearest float64."""
    from fractions import Fraction

    return float(Fraction(total, 1 << _SCALE))
