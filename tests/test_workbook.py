"""The flags workbook (verify -o FLAGS.xlsx): Chinese headers, codes beside texts, money as numbers with two
decimals, an Excel table with autofilter and frozen header, a summary and a reason sheet, split past Excel's rows."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pandas as pd
import pytest

from matchkit.report.catalogue import load_catalogue
from matchkit.report.workbook import COLUMNS, EXCEL_MAX_ROWS, write_workbook


@pytest.fixture
def flags() -> pd.DataFrame:
    return pd.DataFrame({
        "claim_id": ["SB-0001", "SB-0002", "SB-0003", "SB-0004", "SB-0005"],
        "deduction": ["children_education", "elderly_support", "serious_illness", "infant_care", "housing_rent"],
        "status": ["verified", "partial", "review", "rejected", "unverifiable"],
        "reasons": ["", "SIBLING_CAP_EXCEEDED;NOT_ONLY_CHILD", "FUZZY_MATCH", "AGE_INELIGIBLE", "SOURCE_MISSING"],
        "claimed_amount": [24000.0, 36000.0, 68000.0, 12000.0, 13200.0],
        "allowed_amount": [24000.0, 18000.5, 63983.15, 0.0, 0.0],
        "verified_months": pd.array([12, 12, None, 0, 0], dtype="Int64"),
        "match": ["exact", "exact", "fuzzy", "exact", "none"],
        "match_score": [1.0, 1.0, 0.87, 1.0, 0.0],
    })


def _flag_rows(path: Path, sheet: int = 1) -> list[tuple]:
    book = openpyxl.load_workbook(path)
    return list(book.worksheets[sheet].iter_rows(values_only=True))


def test_workbook_in_chinese(flags, tmp_path) -> None:
    catalogue = load_catalogue()
    path = write_workbook(flags, tmp_path / "flags.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["汇总", "核验明细", "原因说明"]
    sheet = book["核验明细"]
    header = [c.value for c in sheet[1]]
    assert header == [catalogue.label(key, "zh") for key, _, _ in COLUMNS]
    assert header[:3] == ["申报编号", "扣除项目", "核验结果"]
    rows = {row[0]: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert list(rows) == list(flags["claim_id"])  # claims order, every line
    partial = rows["SB-0002"]
    assert partial["扣除项目"] == "赡养老人" and partial["核验结果"] == "部分核实"
    # the English codes in their own column, right beside the Chinese reason texts
    assert header.index("原因说明") == header.index("原因代码") + 1
    assert partial["原因代码"] == "SIBLING_CAP_EXCEEDED;NOT_ONLY_CHILD"
    assert partial["原因说明"] == "兄弟姐妹分摊超过标准；未证实为独生子女"
    assert "国发〔2018〕41号 第二十二条" in partial["政策依据"] and "国发〔2023〕13号" in partial["政策依据"]
    assert partial["处理分组"] == catalogue.groups["competing"].text("zh")
    assert partial["建议核查"].startswith(catalogue.reason("SIBLING_CAP_EXCEEDED", "zh", "check"))
    assert partial["扣除项目代码"] == "elderly_support" and partial["核验结果代码"] == "partial"
    assert rows["SB-0001"]["原因代码"] is None and rows["SB-0001"]["处理分组"] is None
    assert rows["SB-0003"]["核实月数"] is None and rows["SB-0003"]["匹配得分"] == 0.87
    # amounts are numbers with a two-decimal number format; at stake is the whole claim for a line under review
    assert partial["核定金额（元）"] == 18000.5 and partial["涉及金额（元）"] == 17999.5
    assert rows["SB-0003"]["涉及金额（元）"] == 68000.0
    money_cell = sheet.cell(row=3, column=header.index("核定金额（元）") + 1)
    assert money_cell.data_type == "n" and money_cell.number_format == "#,##0.00"
    # a filterable Excel table over every row, frozen header
    table = sheet.tables["flags_1"]
    assert table.ref == "A1:P6" and table.autoFilter.ref == "A1:P6"
    assert [c.name for c in table.tableColumns] == header
    assert sheet.freeze_panes == "B2"


def test_summary_and_reason_sheets(flags, tmp_path) -> None:
    catalogue = load_catalogue()
    path = write_workbook(flags, tmp_path / "flags.xlsx", meta={
        "key_id": "mk-abc", "inputs": [{"name": "claims.parquet", "source": "claims", "rows": 5, "digest": "f" * 64}]})
    book = openpyxl.load_workbook(path)
    summary = [[c for c in row if c is not None] for row in book["汇总"].iter_rows(values_only=True)]
    flat = [value for row in summary for value in row]
    assert ["申报行数", 5] in summary and ["待处理行数", 4] in summary
    assert ["申报金额合计", 153200.0] in summary and ["核定金额合计", 105983.65] in summary
    assert ["部分核实", 1, 0.2, "partial"] in summary
    for code in ("SIBLING_CAP_EXCEEDED", "NOT_ONLY_CHILD", "FUZZY_MATCH", "AGE_INELIGIBLE", "SOURCE_MISSING"):
        assert code in flat
    assert catalogue.groups["identity"].text("zh") in flat and "mk-abc" in flat and "f" * 64 in flat
    codes = [row[0] for row in book["原因说明"].iter_rows(min_row=2, values_only=True)]
    assert set(catalogue.reasons) <= set(codes)


def test_workbook_in_english(flags, tmp_path) -> None:
    path = write_workbook(flags, tmp_path / "flags.xlsx", lang="en")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Flags", "Reasons"]
    header = [c.value for c in book["Flags"][1]]
    assert header[:4] == ["Claim ID", "Deduction", "Status", "Review group"]
    row = dict(zip(header, [c.value for c in book["Flags"][3]]))
    assert row["Reasons"] == "Siblings above the standard; Only child not certified"
    assert row["Deduction"] == "Elderly support" and row["Status"] == "partial"


def test_flags_split_over_sheets_past_the_row_limit(flags, tmp_path) -> None:
    """Excel holds 1,048,576 rows a sheet; more lines go on to further sheets, each its own table."""
    assert EXCEL_MAX_ROWS == 1_048_576
    path = write_workbook(flags, tmp_path / "flags.xlsx", rows_per_sheet=2)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["汇总", "核验明细 1", "核验明细 2", "核验明细 3", "原因说明"]
    ids = []
    for index, name in enumerate(book.sheetnames[1:4], 1):
        sheet = book[name]
        assert sheet.cell(1, 1).value == "申报编号" and sheet.freeze_panes == "B2"
        assert list(sheet.tables) == [f"flags_{index}"]
        ids += [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert ids == list(flags["claim_id"])
    assert book["核验明细 3"].tables["flags_3"].ref == "A1:P2"
    assert any("3 个工作表" in str(c) for row in book["汇总"].iter_rows(values_only=True) for c in row if c)


def test_workbook_is_well_formed_and_round_trips(flags, tmp_path) -> None:
    hostile = flags.assign(claim_id=["A&B", "<x>", " padded ", "bell\x07", "普通"])
    path = write_workbook(hostile, tmp_path / "flags.xlsx")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        for name in archive.namelist():
            if name.endswith((".xml", ".rels")):
                ElementTree.fromstring(archive.read(name))  # every part parses
    frame = pd.read_excel(path, sheet_name=1, dtype={"申报编号": str})
    assert frame["申报编号"].tolist() == ["A&B", "<x>", " padded ", "bell", "普通"]
    assert frame["申报金额（元）"].tolist() == hostile["claimed_amount"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.xlsx"]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # as the CSV and Parquet flags


def test_workbook_of_no_lines(tmp_path) -> None:
    empty = pd.DataFrame(columns=["claim_id", "deduction", "status", "reasons", "claimed_amount",
                                  "allowed_amount", "verified_months", "match", "match_score"])
    path = write_workbook(empty, tmp_path / "flags.xlsx")
    rows = _flag_rows(path)
    assert len(rows) == 1 and rows[0][0] == "申报编号"


def test_a_failed_workbook_leaves_the_old_file_and_no_temporary(flags, tmp_path, monkeypatch) -> None:
    """Written through the one atomic writer: a failure while the rows stream in keeps the previous file whole and
    leaves no temporary (nor any scratch skeleton) beside it."""
    from matchkit.errors import OutputFileError
    from matchkit.report import workbook

    path = tmp_path / "flags.xlsx"
    path.write_bytes(b"previous flags")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(workbook, "_rows_xml", broken)
    with pytest.raises(OutputFileError, match="cannot write the flags output") as caught:
        write_workbook(flags, path)
    assert isinstance(caught.value.__cause__, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.xlsx"]
    assert path.read_bytes() == b"previous flags"
