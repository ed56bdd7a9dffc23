"""A short fixed-width summary of a flags table for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from matchkit.report.summary import summarise

TOP_REASONS = 8


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _section(title: str, rows: Sequence[Sequence[str]], widths: tuple[int, ...]) -> list[str]:
    lines = [title]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  " + " ".join(cells).rstrip())
    return lines


def summary_table(flags: pd.DataFrame) -> str:
    """Counts by status, by deduction, top reasons, claimed vs allowed totals and the match-method mix."""
    summary = summarise(flags)
    total = max(summary.rows, 1)
    lines = [f"claim lines: {summary.rows}"]
    lines += _section(
        "status",
        [(s, str(n), f"{100 * n / total:.1f}%") for s, n in summary.by_status.items()],
        (14, 10, 7),
    )
    widths = (28, 7, 14, 14)
    lines += _section(
        "by deduction",
        [("deduction", "lines", "claimed", "allowed")]
        + [
            (str(r.Index), str(r.lines), _money(r.claimed), _money(r.allowed))
            for r in summary.by_deduction.itertuples()
        ],
        widths,
    )
    lines += _section(
        "top reasons",
        [(code, str(n)) for code, n in summary.by_reason.head(TOP_REASONS).items()] or [("(none)", "")],
        (26, 10),
    )
    lines += _section(
        "amounts",
        [("claimed", _money(summary.claimed_total)), ("allowed", _money(summary.allowed_total))],
        (14, 16),
    )
    lines += _section(
        "match",
        [(m, str(n), f"{100 * n / total:.1f}%") for m, n in summary.by_match.items()],
        (14, 10, 7),
    )
    return "\n".join(lines) + "\n"
