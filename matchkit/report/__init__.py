"""Reports over a flags table: a console summary and a self-contained HTML file (aggregates only)."""

from __future__ import annotations

from matchkit.report.console import summary_table
from matchkit.report.html import render_report, write_report
from matchkit.report.summary import Summary, summarise

__all__ = ["Summary", "render_report", "summarise", "summary_table", "write_report"]
