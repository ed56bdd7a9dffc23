"""What tax staff see: the reason catalogue, a console summary, the HTML review workbench and the flags workbook.

Exports load on first use (``matchkit.report.catalogue`` needs only the standard library, so the CLI can read the
language choices without importing pandas).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Summary": "matchkit.report.summary",
    "summarise": "matchkit.report.summary",
    "summary_table": "matchkit.report.console",
    "render_report": "matchkit.report.html",
    "write_report": "matchkit.report.html",
    "write_workbook": "matchkit.report.workbook",
    "load_catalogue": "matchkit.report.catalogue",
}
__all__ = ["Summary", "load_catalogue", "render_report", "summarise", "summary_table", "write_report",
           "write_workbook"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'matchkit.report' has no attribute {name!r}")
