"""Reason codes (SPEC §5), kept per line as bits of an int64 and rendered in one fixed canonical order."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Canonical order: SPEC §5 list order, then codes matchkit added (new codes only ever go at the end).
REASON_CODES: tuple[str, ...] = (
    "INVALID_SUBJECT_ID",
    "SUBJECT_NOT_FOUND",
    "FUZZY_MATCH",
    "NOT_ENROLLED",
    "STAGE_MISMATCH",
    "AGE_INELIGIBLE",
    "SHARE_EXCEEDED",
    "OVER_CAP",
    "SUBJECT_DECEASED",
    "NOT_ONLY_CHILD",
    "SIBLING_CAP_EXCEEDED",
    "RELATION_UNVERIFIED",
    "EXPENSE_BELOW_THRESHOLD",
    "AMOUNT_EXCEEDS_EVIDENCE",
    "DUPLICATE_CLAIM",
    "SOURCE_MISSING",
    "AMBIGUOUS_MATCH",
    "NOT_IN_FORCE",  # matchkit addition: the deduction did not exist in a claimed month (policy effective date)
    "NAME_MISMATCH",  # SPEC §5 (issue 16): exact ID link whose name disagrees, and no other person found
)
BIT: dict[str, np.int64] = {code: np.int64(1) << np.int64(i) for i, code in enumerate(REASON_CODES)}


def render(bits: np.ndarray) -> pd.Series:
    """Bit masks -> ';'-joined codes in canonical order (computed once per distinct combination)."""
    codes, uniques = pd.factorize(pd.Series(bits, dtype=np.int64), sort=False)
    texts = np.array(
        [";".join(c for c, b in BIT.items() if int(u) & int(b)) for u in uniques] or [""], dtype=object
    )
    return pd.Series(texts[codes] if len(bits) else np.array([], dtype=object), dtype=object)
