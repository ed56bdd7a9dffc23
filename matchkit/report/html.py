"""A self-contained HTML report of a flags table: inline CSS, inline SVG charts, no script, no network.

Aggregates only: the report never contains a claim id or any other per-line value. Every text that reaches the
page goes through :func:`html.escape`. The file is written atomically (:mod:`matchkit.io.atomic`: a temporary file
in the target directory, fsynced, then ``os.replace``), so a reader never sees half a report.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from matchkit import __version__
from matchkit.io.atomic import AtomicFile
from matchkit.report.summary import Summary, summarise

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg text{font-size:12px;font-family:system-ui,sans-serif}
.meta td:first-child{color:#666}
"""
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    head = "".join(
        f'<th class="{"n" if i >= numeric_from else ""}">{_e(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if i >= numeric_from else ""}">{_e(c)}</td>' for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_chart(
    series: Mapping[str, Sequence[float]] | pd.Series, *, labels: Sequence[str] | None = None, title: str
) -> str:
    """Horizontal bars; a dict of series gives grouped bars (e.g. claimed and allowed)."""
    groups = (
        {"": list(series.to_numpy(dtype=float))}
        if isinstance(series, pd.Series)
        else {k: list(v) for k, v in series.items()}
    )
    names = list(labels) if labels is not None else [str(i) for i in series.index]  # type: ignore[union-attr]
    if not names:
        return "<p>(no data)</p>"
    peak = max((v for values in groups.values() for v in values), default=0.0) or 1.0
    bar, gap, label_width, chart_width = 16, 8, 190, 360
    per_row = bar * len(groups) + gap
    legend = 20 if len(groups) > 1 else 0
    height = legend + per_row * len(names) + gap
    # inline SVG in HTML5 needs no xmlns (and the report must contain no URL at all)
    opening = (
        f'<svg role="img" width="{label_width + chart_width + 120}" height="{height}" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
    )
    parts = [opening]
    for index, group in enumerate(groups):
        if group and len(groups) > 1:
            x = label_width + index * 110
            parts.append(
                f'<rect x="{x}" y="4" width="12" height="12" fill="{_COLOURS[index % len(_COLOURS)]}"/>'
                f'<text x="{x + 16}" y="14">{_e(group)}</text>'
            )
    for row, name in enumerate(names):
        y0 = legend + gap + row * per_row
        parts.append(
            f'<text x="{label_width - 6}" y="{y0 + bar * len(groups) / 2 + 4}" text-anchor="end">'
            f"{_e(name)}</text>"
        )
        for index, values in enumerate(groups.values()):
            value = values[row]
            width = max(chart_width * value / peak, 0.0)
            y = y0 + index * bar
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{width:.1f}" height="{bar - 2}" '
                f'fill="{_COLOURS[index % len(_COLOURS)]}"/>'
                f'<text x="{label_width + width + 4:.1f}" y="{y + bar - 5}">{_e(_fmt(value))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() and abs(value) < 1e15 else _money(value)


def _meta_block(meta: Mapping[str, object] | None) -> str:
    rows: list[tuple[str, str]] = [("tool version", f"matchkit {__version__}")]
    for key, value in (meta or {}).items():
        if isinstance(value, Mapping):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = "; ".join(str(v) for v in value)
        rows.append((str(key), str(value)))
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def render_report(flags: pd.DataFrame, *, meta: Mapping[str, object] | None = None) -> str:
    summary: Summary = summarise(flags)
    total = max(summary.rows, 1)
    deductions = summary.by_deduction
    sections = [
        "<h2>Run</h2>",
        _meta_block(meta),
        "<h2>Status</h2>",
        _table(
            ["status", "lines", "share"],
            [(s, n, f"{100 * n / total:.1f}%") for s, n in summary.by_status.items()],
        ),
        _bar_chart(summary.by_status, title="claim lines by status"),
        "<h2>Reasons</h2>",
        _table(["reason", "lines"], list(summary.by_reason.items()))
        if len(summary.by_reason)
        else "<p>No reason codes.</p>",
        _bar_chart(summary.by_reason, title="claim lines by reason") if len(summary.by_reason) else "",
        "<h2>Deductions</h2>",
        _table(
            ["deduction", "lines", "claimed", "allowed"],
            [(r.Index, r.lines, _money(r.claimed), _money(r.allowed)) for r in deductions.itertuples()]
            + [("total", summary.rows, _money(summary.claimed_total), _money(summary.allowed_total))],
        ),
        _bar_chart(
            {"claimed": deductions["claimed"].tolist(), "allowed": deductions["allowed"].tolist()},
            labels=[str(d) for d in deductions.index],
            title="amount claimed and allowed by deduction",
        ),
        "<h2>How subjects were matched</h2>",
        _table(
            ["match", "lines", "share"],
            [(m, n, f"{100 * n / total:.1f}%") for m, n in summary.by_match.items()],
        ),
        _bar_chart(summary.by_match, title="claim lines by match method"),
        "<h2>Fuzzy link scores</h2>",
        _bar_chart(summary.fuzzy_score_histogram, title="fuzzy link score histogram")
        if summary.fuzzy_score_histogram.sum()
        else "<p>No fuzzy links.</p>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>matchkit verification report</title><style>{_CSS}</style></head><body>"
        f"<h1>matchkit verification report</h1><p>{_e(summary.rows)} claim lines.</p>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_report(
    flags: pd.DataFrame, path: str | os.PathLike[str], *, meta: dict[str, object] | None = None
) -> None:
    """Write the HTML report for ``flags`` to ``path`` atomically."""
    text = render_report(flags, meta=meta)
    with AtomicFile(path, "report", encoding="utf-8", mode=0o644) as target:
        target.handle.write(text)
