"""Two flags files of the same claims (before and after a change to verify) against the synthetic truth.

Prints the status counts of each, every line whose outcome (status, reasons, allowed amount, match) changed, grouped
by the truth's defect and scenario with the before -> after transition, and for the issue-16 cases (a subject ID
mistyped into another real person's ID) how many are linked to the right person: `match=fuzzy`, `FUZZY_MATCH` and
the status and allowed amount the truth expects for the person the claim names.

Usage: python benchmarks/compare_flags.py TRUTH.csv BEFORE_FLAGS.csv AFTER_FLAGS.csv
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OUTCOME = ("status", "reasons", "allowed_amount", "match")
OTHER_ID_DEFECT = "id_of_another_person"


def _read(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def right_person(truth: pd.DataFrame, flags: pd.DataFrame) -> np.ndarray:
    """Per truth line: linked to the right person (fuzzy link, FUZZY_MATCH, the expected status and amount)."""
    joined = truth.merge(flags, on="claim_id", how="left").fillna("")
    expected = pd.to_numeric(joined["expected_allowed_amount"], errors="coerce").to_numpy(dtype=float)
    got = pd.to_numeric(joined["allowed_amount"], errors="coerce").to_numpy(dtype=float)
    return (
        (joined["match"] == "fuzzy").to_numpy()
        & joined["reasons"].str.contains("FUZZY_MATCH", regex=False).to_numpy()
        & (joined["status"] == joined["expected_status"]).to_numpy()
        & (np.abs(expected - got) < 0.005)
    )


def compare(truth_path: str | Path, before_path: str | Path, after_path: str | Path) -> dict[str, Any]:
    truth = _read(truth_path)
    before = _read(before_path).set_index("claim_id").loc[truth["claim_id"]].reset_index()
    after = _read(after_path).set_index("claim_id").loc[truth["claim_id"]].reset_index()
    changed = np.zeros(len(truth), dtype=bool)
    for column in OUTCOME:
        changed |= before[column].to_numpy() != after[column].to_numpy()
    moved = pd.DataFrame(
        {
            "defect": truth["defect"],
            "scenario": truth["scenario"],
            "before": before["status"] + " " + before["reasons"].replace("", "-") + " " + before["match"],
            "after": after["status"] + " " + after["reasons"].replace("", "-") + " " + after["match"],
        }
    )[changed]
    transitions = (
        moved.groupby(["defect", "scenario", "before", "after"]).size().rename("lines").reset_index()
        if len(moved)
        else pd.DataFrame(columns=["defect", "scenario", "before", "after", "lines"])
    )
    other = (truth["defect"] == OTHER_ID_DEFECT).to_numpy()
    status_ok = {
        name: int((flags["status"].to_numpy() == truth["expected_status"].to_numpy()).sum())
        for name, flags in (("before", before), ("after", after))
    }
    return {
        "lines": len(truth),
        "status_before": before["status"].value_counts().to_dict(),
        "status_after": after["status"].value_counts().to_dict(),
        "status_agree": status_ok,
        "changed": int(changed.sum()),
        "changed_outside_issue_16": int((changed & ~truth["defect"].isin([OTHER_ID_DEFECT, "subject_name_typo",
                                                                           "source_missing"])).sum()),
        "transitions": transitions,
        "other_id_lines": int(other.sum()),
        "other_id_right_before": int((right_person(truth, before) & other).sum()),
        "other_id_right_after": int((right_person(truth, after) & other).sum()),
    }


def format_comparison(result: dict[str, Any]) -> str:
    statuses = ("verified", "partial", "rejected", "review", "unverifiable")
    lines = [f"{'status':<14} {'before':>10} {'after':>10}"]
    for status in statuses:
        lines.append(f"{status:<14} {result['status_before'].get(status, 0):>10,} "
                     f"{result['status_after'].get(status, 0):>10,}")
    lines.append(f"status agrees with truth: before {result['status_agree']['before']:,} / {result['lines']:,}, "
                 f"after {result['status_agree']['after']:,} / {result['lines']:,}")
    lines.append(f"lines whose outcome changed: {result['changed']:,} (outside the issue-16 cases and the "
                 f"continuing-education lines: {result['changed_outside_issue_16']:,})")
    lines.append(f"ID of another real person: {result['other_id_lines']:,} lines; linked to the right person "
                 f"before {result['other_id_right_before']:,}, after {result['other_id_right_after']:,}")
    if len(result["transitions"]):
        lines.append("changed lines by defect / scenario (status reasons match):")
        for row in result["transitions"].itertuples(index=False):
            lines.append(f"  {row.defect} / {row.scenario}: {row.before}  ->  {row.after}: {row.lines:,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("truth")
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args(argv)
    print(f"command: {' '.join([sys.executable, *sys.argv])}" if argv is None else f"compare({argv!r})")
    print(format_comparison(compare(args.truth, args.before, args.after)))


if __name__ == "__main__":
    main()
