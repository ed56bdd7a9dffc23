"""Flags as an Excel workbook (``verify -o FLAGS.xlsx``): what tax staff open, in Chinese by default.

Sheets: a summary (totals, status, review groups, deductions, reasons with their policy basis, match methods, run
information), the flags (one row per claim line: Chinese reason texts beside the English codes, amounts as numbers
with two decimals, an Excel table with autofilter, frozen header) and the reason catalogue. Beyond Excel's
1,048,576 rows a sheet, the flags are split over several sheets, each its own table.

How it is written: openpyxl (write-only mode) builds the whole workbook — styles, summary, catalogue, and each
flags sheet with its header row, widths, frozen pane and table. The flags rows themselves are then streamed into
those sheets as SpreadsheetML (inline strings, the number styles openpyxl registered), built a column at a time
from the distinct values: openpyxl writes ~3,000 rows/s on this project's machine, which is five minutes for a
million lines; the streamed rows go ~50x faster (benchmarks/RESULTS.md). The skeleton stays in memory (it holds
no flags row); the workbook is written through the one atomic writer (:class:`matchkit.io.atomic.AtomicFile`), mode
0600 as the CSV and Parquet flags.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from matchkit import __version__
from matchkit.io.atomic import AtomicFile
from matchkit.report.catalogue import DEFAULT_LANGUAGE, Catalogue, check_language, load_catalogue
from matchkit.report.explain import Explained, combo_texts, explain

EXCEL_MAX_ROWS = 1_048_576  # rows of one worksheet, header included
CHUNK_ROWS = 65_536
MONEY = "#,##0.00"
SCORE = "0.00"
INTEGER = "0"

# The flags columns in sheet order: (label key, kind, width).
COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("col.claim_id", "text", 20),
    ("col.deduction", "text", 18),
    ("col.status", "text", 12),
    ("col.group", "text", 20),
    ("col.claimed", "money", 15),
    ("col.allowed", "money", 15),
    ("col.at_stake", "money", 15),
    ("col.months", "integer", 10),
    ("col.match", "text", 10),
    ("col.score", "score", 10),
    ("col.reason_codes", "text", 30),
    ("col.reasons", "text", 40),
    ("col.basis", "text", 30),
    ("col.check", "text", 50),
    ("col.deduction_code", "text", 22),
    ("col.status_code", "text", 13),
)
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(index))


_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(texts: list[str]) -> list[str]:
    """XML text content of each cell (no control characters Excel cannot hold); one regex pass when all clean."""
    if not _SPECIAL.search("\n".join(texts)):
        return texts
    return [_ILLEGAL_XML.sub("", t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for t in texts]


def _cell_bytes(texts: list[str]) -> list[bytes]:
    """One inline-string ``<c>`` per text, UTF-8 encoded; an empty text is an empty cell."""
    return [
        (b"<c/>" if not raw else
         f'<c t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'.encode() if raw != raw.strip() else
         f'<c t="inlineStr"><is><t>{text}</t></is></c>'.encode())
        for raw, text in zip(texts, _escape(texts))
    ]


def _text_column(values: np.ndarray, mapping: Any = str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes per line, cell per code)`` of a column with few distinct values (mapped to their texts)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
    return codes, np.array(_cell_bytes([mapping(u) for u in uniques]) + [b"<c/>"], dtype=object)


def _number_column(values: np.ndarray, style: int, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes per line, cell per code)`` of a numeric column; a blank (NaN) is an empty cell."""
    codes, uniques = pd.factorize(np.round(values, decimals), sort=False, use_na_sentinel=True)
    head = f'<c s="{style}"><v>'
    shown = [(head + (str(int(u)) if decimals == 0 else repr(float(u))) + "</v></c>").encode() for u in uniques]
    return codes, np.array(shown + [b"<c/>"], dtype=object)  # code -1 (NaN) takes the last: an empty cell


class _Columns:
    """The flags columns of one language: each as a code per line and one ready-made cell per code (built once
    for the whole table), except the claim ids, which are all distinct and built a chunk at a time."""

    def __init__(self, explained: Explained, catalogue: Catalogue, lang: str, styles: Mapping[str, int]) -> None:
        e, c = explained, catalogue
        self.claim_id = e.claim_id
        per_combo = combo_texts(e, c, lang)

        def by_combo(key: str) -> tuple[np.ndarray, np.ndarray]:
            return e.combo, np.array(_cell_bytes(per_combo[key]) + [b"<c/>"], dtype=object)

        self.columns: list[tuple[np.ndarray, np.ndarray] | None] = [
            None,  # claim id
            _text_column(e.deduction, lambda d: c.deduction(str(d), lang)),
            _text_column(e.status, lambda s: c.status(str(s), lang)),
            _text_column(e.group, lambda g: c.groups[g].text(lang) if g in c.groups else ""),
            _number_column(e.claimed, styles["money"], 2),
            _number_column(e.allowed, styles["money"], 2),
            _number_column(e.at_stake, styles["money"], 2),
            _number_column(e.months, styles["integer"], 0),
            _text_column(e.match, lambda m: c.match(str(m), lang)),
            _number_column(e.score, styles["score"], 2),
            by_combo("codes"),
            by_combo("reasons"),
            by_combo("basis"),
            by_combo("check"),
            _text_column(e.deduction),
            _text_column(e.status),
        ]

    def cells(self, start: int, stop: int) -> list[np.ndarray]:
        out = []
        for column in self.columns:
            if column is None:
                out.append(np.array(_cell_bytes([str(v) for v in self.claim_id[start:stop]]), dtype=object))
            else:
                codes, cells = column
                out.append(cells[codes[start:stop]])
        return out


def _rows_xml(columns: _Columns, start: int, stop: int, first_row: int) -> bytes:
    """SpreadsheetML rows for lines ``start:stop``: one join over a (rows, cells) grid of ready-made cells."""
    cells = columns.cells(start, stop)
    grid = np.empty((stop - start, len(cells) + 2), dtype=object)
    grid[:, 0] = [b'<row r="%d">' % r for r in range(first_row, first_row + stop - start)]
    for index, column in enumerate(cells, 1):
        grid[:, index] = column
    grid[:, -1] = b"</row>"
    return b"".join(grid.ravel().tolist())


def write_workbook(flags: pd.DataFrame, path: str | os.PathLike[str], *, lang: str = DEFAULT_LANGUAGE,
                   meta: Mapping[str, Any] | None = None, rows_per_sheet: int = EXCEL_MAX_ROWS - 1,
                   catalogue: Catalogue | None = None) -> Path:
    """Write the flags workbook to ``path`` atomically; returns the path."""
    lang = check_language(lang)
    catalogue = catalogue or load_catalogue()
    explained = explain(flags, catalogue)
    skeleton = io.BytesIO()  # summary, catalogue, styles and the flags sheets' heads: small, no flags row
    sheets = _write_skeleton(explained, catalogue, lang, skeleton, meta or {}, rows_per_sheet)
    with AtomicFile(path, "flags output") as target:  # mode 0600, as the CSV and Parquet flags
        _fill(skeleton, target.handle, sheets, explained, catalogue, lang)
    return target.path


class _Sheet:
    def __init__(self, part: str, start: int, stop: int, styles: dict[str, int]) -> None:
        self.part, self.start, self.stop, self.styles = part, start, stop, styles


def _write_skeleton(explained: Explained, catalogue: Catalogue, lang: str, path: Path | IO[bytes],
                    meta: Mapping[str, Any],
                    rows_per_sheet: int) -> list[_Sheet]:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.filters import AutoFilter
    from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

    label = lambda key: catalogue.label(key, lang)
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    wrap = Alignment(wrap_text=True, vertical="top")

    def cell(sheet: Any, value: Any, *, fmt: str | None = None, strong: bool = False, wrapped: bool = False) -> Any:
        c = WriteOnlyCell(sheet, value=value)
        if fmt:
            c.number_format = fmt
        if strong:
            c.font = bold
            c.fill = header_fill
        if wrapped:
            c.alignment = wrap
        return c

    n = len(explained)
    count = max(1, math.ceil(n / rows_per_sheet))
    summary = workbook.create_sheet(label("sheet.summary"))
    _summary_sheet(summary, cell, explained, catalogue, lang, meta, count)

    headers = [label(key) for key, _, _ in COLUMNS]
    sheets: list[tuple[Any, int, int]] = []
    styles: dict[str, int] = {}
    for index in range(count):
        name = label("sheet.flags") + (f" {index + 1}" if count > 1 else "")
        sheet = workbook.create_sheet(name)
        sheet.freeze_panes = "B2"
        for position, (_, _, width) in enumerate(COLUMNS, 1):
            sheet.column_dimensions[_column_letter(position)].width = width
        sheet.append([cell(sheet, h, strong=True) for h in headers])
        start, stop = index * rows_per_sheet, min(n, (index + 1) * rows_per_sheet)
        last_row = max(stop - start + 1, 2)  # a table needs a body row, even an empty one
        table = Table(displayName=f"flags_{index + 1}", ref=f"A1:{_column_letter(len(COLUMNS))}{last_row}")
        table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
        table.tableColumns = [TableColumn(id=i, name=h) for i, h in enumerate(headers, 1)]
        table.autoFilter = AutoFilter(ref=table.ref)
        with warnings.catch_warnings():  # openpyxl warns that write-only tables need their columns: given above
            warnings.simplefilter("ignore", UserWarning)
            sheet.add_table(table)
        if not styles:  # the styles the streamed cells use, registered with the workbook's style table
            styles = {kind: int(cell(sheet, 0, fmt=fmt).style_id)
                      for kind, fmt in (("money", MONEY), ("score", SCORE), ("integer", INTEGER))}
        sheets.append((sheet, start, stop))

    reasons = workbook.create_sheet(label("sheet.reasons"))
    _catalogue_sheet(reasons, cell, catalogue, lang)
    workbook.save(path)
    return [_Sheet(str(sheet.path).lstrip("/"), start, stop, styles) for sheet, start, stop in sheets]


def _fill(skeleton: Path | IO[bytes], target: Path | IO[bytes], sheets: Sequence[_Sheet], explained: Explained, catalogue: Catalogue,
          lang: str) -> None:
    """Copy the skeleton into ``target``, streaming the flags rows into each flags sheet."""
    by_part = {sheet.part: sheet for sheet in sheets}
    columns = _Columns(explained, catalogue, lang, sheets[0].styles)
    with zipfile.ZipFile(skeleton) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED,
                                                                 compresslevel=1) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            sheet = by_part.get(info.filename)
            if sheet is None:
                out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
                continue
            text = data.decode("utf-8")
            cut = text.index("</sheetData>")
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            # zlib level 1: ~4x faster than the default for ~10% more bytes (``compress_level`` from 3.13 on)
            setattr(entry, "compress_level" if hasattr(entry, "compress_level") else "_compresslevel", 1)
            with out.open(entry, "w", force_zip64=True) as stream:
                stream.write(text[:cut].encode("utf-8"))
                # zlib and the CRC release the GIL: one thread compresses a chunk while the next is built
                with ThreadPoolExecutor(max_workers=1) as writer:
                    pending: Future[Any] | None = None
                    for begin in range(sheet.start, sheet.stop, CHUNK_ROWS):
                        end = min(begin + CHUNK_ROWS, sheet.stop)
                        chunk = _rows_xml(columns, begin, end, first_row=begin - sheet.start + 2)
                        if pending is not None:
                            pending.result()
                        pending = writer.submit(stream.write, chunk)
                    if pending is not None:
                        pending.result()
                stream.write(text[cut:].encode("utf-8"))


def _summary_sheet(sheet: Any, cell: Any, explained: Explained, catalogue: Catalogue, lang: str,
                   meta: Mapping[str, Any], flag_sheets: int) -> None:
    label = lambda key: catalogue.label(key, lang)
    for position, width in enumerate((34, 16, 18, 18, 18, 60), 1):
        sheet.column_dimensions[_column_letter(position)].width = width
    e = explained
    total = len(e)
    blank = [None]

    def heading(text: str) -> None:
        sheet.append(blank)
        sheet.append([cell(sheet, text, strong=True)])

    def header(*names: str) -> None:
        sheet.append([cell(sheet, name, strong=True) for name in names])

    sheet.append([cell(sheet, label("workbook.title"), strong=True)])
    sheet.append([label("report.privacy")])
    to_review = int((e.status != "verified").sum())
    claimed, allowed = float(np.nansum(e.claimed)), float(np.nansum(e.allowed))
    at_stake = float(np.nansum(e.at_stake[e.status != "verified"]))
    heading(label("section.overview"))
    sheet.append([label("summary.lines"), cell(sheet, total, fmt=INTEGER)])
    sheet.append([label("summary.to_review"), cell(sheet, to_review, fmt=INTEGER)])
    sheet.append([label("summary.claimed"), cell(sheet, round(claimed, 2), fmt=MONEY)])
    sheet.append([label("summary.allowed"), cell(sheet, round(allowed, 2), fmt=MONEY)])
    sheet.append([label("summary.at_stake"), cell(sheet, round(at_stake, 2), fmt=MONEY)])
    sheet.append([label("at_stake.note")])
    if flag_sheets > 1:
        sheet.append([label("workbook.split").format(sheets=flag_sheets)])

    def counts(values: np.ndarray) -> pd.Series:
        return pd.Series(values, dtype=object).value_counts(sort=False)

    heading(label("section.status"))
    header(label("col.status"), label("col.lines"), label("col.share"), label("col.status_code"))
    status_counts = counts(e.status)
    for status in [s for s in catalogue.statuses if s in status_counts.index] + sorted(
            s for s in status_counts.index if s not in catalogue.statuses):
        n = int(status_counts[status])
        sheet.append([catalogue.status(status, lang), cell(sheet, n, fmt=INTEGER),
                      cell(sheet, n / max(total, 1), fmt="0.0%"), status])

    heading(label("section.groups"))
    header(label("col.group"), label("col.lines"), label("col.at_stake"), "", "", label("col.action"))
    open_lines = e.group != ""
    group_frame = pd.DataFrame({"group": e.group[open_lines], "at_stake": e.at_stake[open_lines]})
    per_group = group_frame.groupby("group").agg(lines=("at_stake", "size"), at_stake=("at_stake", "sum"))
    for group in catalogue.group_order():
        if group in per_group.index:
            row = per_group.loc[group]
            sheet.append([catalogue.groups[group].text(lang), cell(sheet, int(row["lines"]), fmt=INTEGER),
                          cell(sheet, round(float(row["at_stake"]), 2), fmt=MONEY), None, None,
                          catalogue.groups[group].text(lang, "action")])
    if not len(per_group):
        sheet.append([label("worklist.empty")])

    heading(label("section.deductions"))
    header(label("col.deduction"), label("col.lines"), label("col.claimed"), label("col.allowed"),
           label("col.at_stake"), label("col.deduction_code"))
    frame = pd.DataFrame({"deduction": e.deduction, "claimed": np.nan_to_num(e.claimed),
                          "allowed": np.nan_to_num(e.allowed),
                          "at_stake": np.where(e.status != "verified", e.at_stake, 0.0)})
    for deduction, row in frame.groupby("deduction", sort=True).agg(
            lines=("claimed", "size"), claimed=("claimed", "sum"), allowed=("allowed", "sum"),
            at_stake=("at_stake", "sum")).iterrows():
        sheet.append([catalogue.deduction(str(deduction), lang), cell(sheet, int(row["lines"]), fmt=INTEGER),
                      cell(sheet, round(float(row["claimed"]), 2), fmt=MONEY),
                      cell(sheet, round(float(row["allowed"]), 2), fmt=MONEY),
                      cell(sheet, round(float(row["at_stake"]), 2), fmt=MONEY), str(deduction)])
    sheet.append([cell(sheet, label("total"), strong=True), cell(sheet, total, fmt=INTEGER),
                  cell(sheet, round(claimed, 2), fmt=MONEY), cell(sheet, round(allowed, 2), fmt=MONEY),
                  cell(sheet, round(at_stake, 2), fmt=MONEY)])

    heading(label("section.reasons"))
    header(label("col.reason"), label("col.lines"), label("col.code"), label("col.basis"), label("col.group"),
           label("col.evidence"))
    per_code: dict[str, int] = {}
    combo_counts = np.bincount(e.combo, minlength=len(e.combos)) if len(e.combo) else np.zeros(0, dtype=int)
    for combo, n in zip(e.combos, combo_counts):
        for code in combo:
            per_code[code] = per_code.get(code, 0) + int(n)
    for code, n in sorted(per_code.items(), key=lambda item: (-item[1], item[0])):
        entry = catalogue.reasons.get(code)
        group = str(entry.attrs["group"]) if entry else ""
        sheet.append([catalogue.reason(code, lang), cell(sheet, n, fmt=INTEGER), code, catalogue.basis(code),
                      catalogue.groups[group].text(lang) if group else "",
                      catalogue.reason(code, lang, "evidence")])
    if not per_code:
        sheet.append([label("no_reasons")])

    heading(label("section.match"))
    header(label("col.match"), label("col.lines"), label("col.share"))
    match_counts = counts(e.match)
    for match in [m for m in catalogue.matches if m in match_counts.index] + sorted(
            m for m in match_counts.index if m not in catalogue.matches):
        n = int(match_counts[match])
        sheet.append([catalogue.match(match, lang), cell(sheet, n, fmt=INTEGER),
                      cell(sheet, n / max(total, 1), fmt="0.0%")])

    heading(label("section.run"))
    sheet.append([label("run.tool"), f"matchkit {__version__}"])
    for key, name in (("key_id", "run.key_id"), ("encoding_version", "run.encoding"), ("purpose", "run.purpose")):
        if meta.get(key):
            sheet.append([label(name), str(meta[key])])
    inputs = meta.get("inputs") or []
    if inputs:
        sheet.append(blank)
        header(label("col.file"), label("col.source"), label("col.rows"), label("col.signer"), "",
               label("col.digest"))
        for described in inputs:
            rows = described.get("rows")
            sheet.append([str(described.get("name", "")), str(described.get("source", "")),
                          cell(sheet, int(rows), fmt=INTEGER) if isinstance(rows, int) else None,
                          str(described.get("signer", "")), None, str(described.get("digest", ""))])


def _catalogue_sheet(sheet: Any, cell: Any, catalogue: Catalogue, lang: str) -> None:
    label = lambda key: catalogue.label(key, lang)
    widths = (24, 22, 22, 50, 50, 30, 45)
    for position, width in enumerate(widths, 1):
        sheet.column_dimensions[_column_letter(position)].width = width
    sheet.freeze_panes = "B2"
    sheet.append([cell(sheet, label(key), strong=True) for key in
                  ("col.code", "col.reason", "col.group", "col.evidence", "col.rule", "col.basis", "col.check")])
    for group in catalogue.group_order():
        for code, entry in catalogue.reasons.items():
            if entry.attrs["group"] != group:
                continue
            sheet.append([code, entry.text(lang), catalogue.groups[group].text(lang),
                          cell(sheet, entry.text(lang, "evidence"), wrapped=True),
                          cell(sheet, entry.text(lang, "rule"), wrapped=True), str(entry.attrs["basis"]),
                          cell(sheet, entry.text(lang, "check"), wrapped=True)])
    sheet.append([None])
    sheet.append([cell(sheet, label("col.status_code"), strong=True), cell(sheet, label("col.status"), strong=True),
                  None, cell(sheet, label("col.meaning"), strong=True)])
    for status, entry in catalogue.statuses.items():
        sheet.append([status, entry.text(lang), None, cell(sheet, entry.text(lang, "meaning"), wrapped=True)])
