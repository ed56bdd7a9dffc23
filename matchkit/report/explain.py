"""Flags explained: each line's texts from the reason catalogue, its review group and the amount at stake.

Shared by the workbook and the HTML workbench. Work is done once per distinct value (a million lines carry a few
dozen distinct reason combinations), so explaining a million lines costs a few column passes, not a million
catalogue look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from matchkit.report.catalogue import Catalogue, split_codes

TEXT_SEPARATOR = {"zh": "；", "en": "; "}  # between short texts (reason names, policy bases)
SENTENCE_SEPARATOR = {"zh": "", "en": " "}  # between whole sentences (checks end in 。 or .)


@dataclass(frozen=True)
class Explained:
    """Per-line columns (numpy arrays, claims order) plus the distinct reason combinations they index."""

    claim_id: np.ndarray  # str
    deduction: np.ndarray  # canonical code
    status: np.ndarray  # canonical word
    match: np.ndarray  # exact / fuzzy / none
    claimed: np.ndarray  # float, NaN when blank
    allowed: np.ndarray
    at_stake: np.ndarray  # claimed - allowed; the whole claim for a line under review
    months: np.ndarray  # float, NaN when blank (serious illness)
    score: np.ndarray  # float, NaN when blank
    combo: np.ndarray  # int index into combos
    combos: list[tuple[str, ...]]  # distinct reason-code tuples (canonical order as in the flags)
    group: np.ndarray  # review group per line ('' for verified lines)

    def __len__(self) -> int:
        return len(self.claim_id)


def _text(flags: pd.DataFrame, column: str) -> np.ndarray:
    if column not in flags.columns:
        return np.full(len(flags), "", dtype=object)
    values = flags[column].to_numpy(dtype=object, na_value="")
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    blank = pd.isna(values)
    return np.array(["" if missing else str(v) for v, missing in zip(values, blank)], dtype=object)


def _number(flags: pd.DataFrame, column: str) -> np.ndarray:
    if column not in flags.columns:
        return np.full(len(flags), np.nan)
    return pd.to_numeric(flags[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def explain(flags: pd.DataFrame, catalogue: Catalogue) -> Explained:
    """The per-line columns the workbook and the worklist show (no text yet: texts are chosen per language)."""
    status = _text(flags, "status")
    reasons = _text(flags, "reasons")
    codes_of_line, uniques = pd.factorize(pd.Series(reasons, dtype=object), sort=False)
    combos = [tuple(split_codes(u)) for u in uniques]
    key_of_combo = {combo: i for i, combo in enumerate(dict.fromkeys(combos))}
    remap = np.array([key_of_combo[c] for c in combos] or [0], dtype=np.int64)
    combo = remap[codes_of_line] if len(reasons) else np.zeros(0, dtype=np.int64)
    combos = list(key_of_combo)
    group_of_combo = np.array([catalogue.group_of(c) for c in combos] or [""], dtype=object)
    group = group_of_combo[combo] if len(combo) else np.zeros(0, dtype=object)
    group = np.where(status == "verified", "", group).astype(object)
    claimed = _number(flags, "claimed_amount")
    allowed = _number(flags, "allowed_amount")
    difference = np.nan_to_num(claimed) - np.nan_to_num(allowed)
    at_stake = np.round(np.where(status == "review", np.nan_to_num(claimed), difference), 2)
    return Explained(
        claim_id=_text(flags, "claim_id"), deduction=_text(flags, "deduction"), status=status,
        match=_text(flags, "match"), claimed=claimed, allowed=allowed, at_stake=at_stake,
        months=_number(flags, "verified_months"), score=_number(flags, "match_score"),
        combo=combo, combos=combos, group=group,
    )


def combo_texts(explained: Explained, catalogue: Catalogue, lang: str) -> dict[str, list[str]]:
    """Per distinct combination: codes, reason texts, policy bases and checks, joined for one cell."""
    sep = TEXT_SEPARATOR[lang]
    out: dict[str, list[str]] = {"codes": [], "reasons": [], "basis": [], "check": []}
    for combo in explained.combos:
        out["codes"].append(";".join(combo))
        out["reasons"].append(sep.join(catalogue.reason(c, lang) for c in combo))
        bases: dict[str, None] = {}
        for code in combo:
            for part in catalogue.basis(code).split("；"):
                if part.strip():
                    bases.setdefault(part.strip())
        out["basis"].append(sep.join(bases))
        out["check"].append(SENTENCE_SEPARATOR[lang].join(dict.fromkeys(catalogue.reason(c, lang, "check") for c in combo if
                                                   catalogue.reason(c, lang, "check"))))
    return out
