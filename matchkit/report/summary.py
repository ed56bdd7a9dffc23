"""Aggregates of a flags table shared by the console and HTML reports (aggregates only: no claim ids)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STATUS_ORDER = ("verified", "partial", "rejected", "review", "unverifiable")
MATCH_ORDER = ("exact", "fuzzy", "none")
SCORE_BINS = 10


@dataclass(frozen=True)
class Summary:
    rows: int
    by_status: pd.Series  # status -> count
    by_deduction: pd.DataFrame  # deduction -> lines, claimed, allowed
    by_reason: pd.Series  # reason code -> lines carrying it, most frequent first
    by_match: pd.Series  # match method -> count
    claimed_total: float
    allowed_total: float
    fuzzy_score_histogram: pd.Series  # bin label -> count, scores of fuzzy links


def _ordered_counts(values: pd.Series, order: tuple[str, ...]) -> pd.Series:
    counts = values.fillna("").astype(str).value_counts()
    known = [k for k in order if k in counts.index]
    rest = sorted(k for k in counts.index if k not in order)
    return counts.reindex(known + rest).astype(np.int64)


def summarise(flags: pd.DataFrame) -> Summary:
    claimed = pd.to_numeric(flags.get("claimed_amount", pd.Series(dtype=float)), errors="coerce").fillna(0.0)
    allowed = pd.to_numeric(flags.get("allowed_amount", pd.Series(dtype=float)), errors="coerce").fillna(0.0)
    status = flags.get("status", pd.Series(dtype=object))
    deduction = flags.get("deduction", pd.Series(dtype=object)).fillna("").astype(str)
    by_deduction = (
        pd.DataFrame({"deduction": deduction, "claimed": claimed, "allowed": allowed})
        .groupby("deduction", sort=True)
        .agg(lines=("claimed", "size"), claimed=("claimed", "sum"), allowed=("allowed", "sum"))
    )
    reasons = flags.get("reasons", pd.Series(dtype=object))
    combo_of_line, combos = pd.factorize(reasons.to_numpy(dtype=object, na_value=""), sort=False)
    per_code: dict[str, int] = {}
    for combo, lines in zip(combos, np.bincount(combo_of_line[combo_of_line >= 0], minlength=len(combos))):
        for code in {c.strip() for c in str(combo).split(";")} - {""}:  # a code once a line
            per_code[code] = per_code.get(code, 0) + int(lines)
    by_reason = pd.Series(per_code, dtype=np.int64).sort_index().sort_values(ascending=False, kind="mergesort")
    match = flags.get("match", pd.Series(dtype=object))
    scores = pd.to_numeric(flags.get("match_score", pd.Series(dtype=float)), errors="coerce")
    fuzzy_scores = (
        scores[(match.astype(str) == "fuzzy").to_numpy()].dropna().clip(0, 1) if len(match) else scores
    )
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    counts, _ = np.histogram(fuzzy_scores.to_numpy(dtype=float), bins=edges)
    labels = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(SCORE_BINS)]
    return Summary(
        rows=len(flags),
        by_status=_ordered_counts(status, STATUS_ORDER),
        by_deduction=by_deduction,
        by_reason=by_reason,
        by_match=_ordered_counts(match, MATCH_ORDER),
        claimed_total=float(claimed.sum()),
        allowed_total=float(allowed.sum()),
        fuzzy_score_histogram=pd.Series(counts.astype(np.int64), index=labels),
    )
