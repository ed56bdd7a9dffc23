"""Write speed of the flags workbook and the HTML workbench (issue 15) at scale.

Builds a synthetic flags table of N lines (the SPEC §5 columns; statuses, deductions, reasons and amounts in a
realistic mix; claim ids unique), then times ``matchkit.report.workbook.write_workbook`` (the `.xlsx` flags) and
``matchkit.report.html.write_report`` (the report, worklist capped) on it. With ``--openpyxl-rows M`` it also
times plain openpyxl write-only mode appending M rows of the same 16 columns (one styled cell per amount), the
way the workbook would be written without streaming its rows.

Usage: python benchmarks/bench_workbook.py --lines 1000000 [--openpyxl-rows 50000] [--lang zh] [--keep DIR]
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from matchkit.report.html import write_report
from matchkit.report.workbook import write_workbook

MIX = [  # (status, reasons, weight)
    ("verified", "", 0.60),
    ("partial", "OVER_CAP", 0.08),
    ("partial", "SIBLING_CAP_EXCEEDED", 0.05),
    ("partial", "SHARE_EXCEEDED", 0.03),
    ("rejected", "SUBJECT_NOT_FOUND", 0.04),
    ("rejected", "INVALID_SUBJECT_ID;SUBJECT_NOT_FOUND", 0.01),
    ("rejected", "NOT_ENROLLED", 0.03),
    ("rejected", "AGE_INELIGIBLE", 0.03),
    ("rejected", "EXPENSE_BELOW_THRESHOLD", 0.01),
    ("review", "FUZZY_MATCH", 0.04),
    ("review", "INVALID_SUBJECT_ID;FUZZY_MATCH;OVER_CAP", 0.01),
    ("review", "AMBIGUOUS_MATCH", 0.005),
    ("partial", "DUPLICATE_CLAIM", 0.015),
    ("unverifiable", "SOURCE_MISSING", 0.06),
    ("partial", "NOT_ONLY_CHILD", 0.02),
]
DEDUCTIONS = ["children_education", "elderly_support", "infant_care", "serious_illness", "continuing_education",
              "housing_rent", "housing_loan_interest"]


def synthetic_flags(lines: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = np.array([w for _, _, w in MIX])
    pick = rng.choice(len(MIX), size=lines, p=weights / weights.sum())
    status = np.array([s for s, _, _ in MIX], dtype=object)[pick]
    reasons = np.array([r for _, r, _ in MIX], dtype=object)[pick]
    claimed = rng.integers(1, 37, size=lines) * 1000.0
    allowed = np.where(status == "verified", claimed, np.where(status == "partial", claimed / 3, 0.0)).round(2)
    match = np.where(np.isin(status, ["review"]), "fuzzy", np.where(reasons == "SUBJECT_NOT_FOUND", "none", "exact"))
    score = np.where(match == "fuzzy", rng.uniform(0.6, 1.0, size=lines), np.where(match == "exact", 1.0, 0.0))
    deduction = np.array(DEDUCTIONS, dtype=object)[rng.integers(0, len(DEDUCTIONS), size=lines)]
    months = np.where(deduction == "serious_illness", np.nan, rng.integers(0, 13, size=lines))
    return pd.DataFrame({
        "claim_id": [f"SB2024{i:09d}" for i in range(lines)], "deduction": deduction, "status": status,
        "reasons": reasons, "claimed_amount": claimed, "allowed_amount": allowed,
        "verified_months": pd.array(months, dtype="Float64").astype("Int64"), "match": match,
        "match_score": score.round(2),
    })


def openpyxl_baseline(rows: int, path: Path) -> float:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("flags")
    start = time.perf_counter()
    sheet.append([f"col{i}" for i in range(16)])
    for i in range(rows):
        amounts = []
        for value in (12000.0, 8000.0, 4000.0):
            cell = WriteOnlyCell(sheet, value=value)
            cell.number_format = "#,##0.00"
            amounts.append(cell)
        sheet.append([f"SB2024{i:09d}", "子女教育", "部分核实", "核对多人或重复申报", *amounts, 12, "精确匹配", 1.0,
                      "SIBLING_CAP_EXCEEDED", "兄弟姐妹分摊超过标准", "国发〔2018〕41号 第二十二条",
                      "核实兄弟姐妹之间的分摊约定（书面分摊协议）。", "elderly_support", "partial"])
    workbook.save(path)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--openpyxl-rows", type=int, default=0)
    parser.add_argument("--lang", default="zh", choices=["zh", "en"])
    parser.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_workbook."))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; pandas {pd.__version__}")
    for lines in args.lines:
        flags = synthetic_flags(lines)
        xlsx, report = folder / f"flags_{lines}.xlsx", folder / f"report_{lines}.html"
        start = time.perf_counter()
        write_workbook(flags, xlsx, lang=args.lang)
        xlsx_seconds = time.perf_counter() - start
        start = time.perf_counter()
        write_report(flags, report, lang=args.lang, flags_name=xlsx.name)
        html_seconds = time.perf_counter() - start
        print(f"{lines:>9,} lines: workbook {xlsx_seconds:6.2f} s ({lines / xlsx_seconds:,.0f} rows/s, "
              f"{xlsx.stat().st_size / 1e6:.1f} MB); report {html_seconds:5.2f} s "
              f"({report.stat().st_size / 1e6:.2f} MB)")
        if not args.keep:
            xlsx.unlink()
            report.unlink()
    if args.openpyxl_rows:
        path = folder / "openpyxl_baseline.xlsx"
        seconds = openpyxl_baseline(args.openpyxl_rows, path)
        print(f"openpyxl write-only, one append per row: {args.openpyxl_rows:,} rows {seconds:.2f} s "
              f"({args.openpyxl_rows / seconds:,.0f} rows/s)")
        if not args.keep:
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
