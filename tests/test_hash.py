"""The agency hashing job: formats, line numbers, rejects, accounting, atomic output, exit codes."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.io.hashed.reader import open_hashed
from matchkit.jobs.hash import hash_file
from matchkit.security.keys import load_key
from tests.conftest import make_id

REPO = Path(__file__).resolve().parents[1]

CHILD = make_id("32040220150305123")
PARENT = make_id("32040219850611004")
HEADER_ZH = ["学生证件号码", "学生姓名", "出生日期", "教育阶段", "入学年月", "离校年月"]
GOOD_ROWS = [
    [CHILD, "张小明", "2015-03-05", "义务教育", "2021-09", ""],
    [PARENT, "欧阳·娜娜", "19850611", "higher", "202009", "202406"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tokens_of(path: Path) -> list[bytes]:
    return pq.read_table(path, columns=["student_id_tok"]).column(0).to_pylist()


@pytest.mark.parametrize("fmt", ["utf-8", "utf-8-sig", "gb18030", "xlsx", "parquet"])
def test_every_reader_gives_the_same_tokens(tmp_path, key_file, fmt):
    """Contract test over every input format: same rows, same tokens, same line numbers."""
    key = load_key(key_file)
    reference = hash_file("education", write_csv(tmp_path / "ref.csv", HEADER_ZH, GOOD_ROWS), key,
                          tmp_path / "ref.parquet")
    frame = pd.DataFrame(GOOD_ROWS, columns=HEADER_ZH)
    if fmt == "xlsx":
        source = tmp_path / "in.xlsx"
        frame.to_excel(source, index=False)
    elif fmt == "parquet":
        source = tmp_path / "in.parquet"
        frame.to_parquet(source, index=False)
    else:
        source = write_csv(tmp_path / "in.csv", HEADER_ZH, GOOD_ROWS, fmt)
    result = hash_file("education", source, key, tmp_path / "out.parquet")
    assert result.rows_in == result.rows_hashed == 2
    assert tokens_of(tmp_path / "out.parquet") == tokens_of(reference.output)
    lines = pq.read_table(tmp_path / "out.parquet", columns=["_line"]).column(0).to_pylist()
    assert lines == [2, 3]


def test_rejects_carry_line_column_reason_and_accounting_holds(tmp_path, key_file):
    rows = [
        GOOD_ROWS[0],
        ["1.10105E+17", "李四", "2015-01-01", "义务教育", "2021-09", ""],          # line 3: Excel damage
        [CHILD[:-1] + ("0" if CHILD[-1] != "0" else "1"), "王五", "", "高中", "2021-09", ""],  # 4: checksum
        [CHILD, "张小明", "2015-02-30", "义务教育", "2021-13", ""],               # 5: two faults
        [CHILD, "张小明"],                                                        # 6: too few fields
        [CHILD, "张小明", "2015-03-05", "大学", "2021-09", "2020-01"],             # 7: stage, reversed
    ]
    source = write_csv(tmp_path / "in.csv", HEADER_ZH, rows)
    (tmp_path / "in.csv").write_text(source.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    result = hash_file("education", source, load_key(key_file), tmp_path / "o.parquet",
                       rejects_path=tmp_path / "r.csv")
    assert (result.rows_in, result.rows_hashed, result.rows_rejected) == (6, 1, 5)
    rejects = {int(r["line"]): r for r in read_rejects(tmp_path / "r.csv")}
    assert rejects[3] == {"line": "3", "column": "student_id", "reason": "invalid_id_excel_damage"}
    assert rejects[4]["reason"] == "invalid_id_bad_checksum"
    assert rejects[5]["column"].split(";") == ["enrolled_from", "birth_date"]
    assert set(rejects[5]["reason"].split(";")) == {"bad_month", "bad_date"}
    assert rejects[6]["reason"] == "wrong_field_count"
    assert "unknown_code" in rejects[7]["reason"]
    manifest = open_hashed(tmp_path / "o.parquet").manifest.to_json()
    assert manifest["rows_in"] == 6 and manifest["rows_rejected"] == 5


def test_duplicate_claim_id_is_a_row_reject(tmp_path, key_file):
    header = ["申报编号", "纳税人证件号码", "扣除项目", "所属年度", "被扣除人证件号码", "与纳税人关系", "月扣除金额",
              "受教育阶段"]
    rows = [["C1", PARENT, "子女教育", "2024", CHILD, "子女", "2000", "义务教育"],
            ["C1", PARENT, "子女教育", "2024", CHILD, "子女", "2000", "义务教育"],
            ["C2", PARENT, "子女教育", "2018", CHILD, "子女", "2000", "义务教育"]]
    source = write_csv(tmp_path / "claims.csv", header, rows, "gb18030")
    result = hash_file("claims", source, load_key(key_file), tmp_path / "c.parquet", rejects_path=tmp_path / "r.csv")
    assert result.rows_hashed == 1
    reasons = {r["line"]: r["reason"] for r in read_rejects(tmp_path / "r.csv")}
    assert reasons["3"] == "duplicate_record_id"
    assert "year_out_of_range" in reasons["4"]
    table = pq.read_table(tmp_path / "c.parquet").to_pandas()
    assert table.loc[0, "period_start"] == 202401 and table.loc[0, "period_end"] == 202412
    assert table.loc[0, "share"] == 1.0


def test_claim_invalid_subject_id_is_carried_through(tmp_path, key_file):
    header = ["claim_id", "taxpayer_id", "deduction", "tax_year", "subject_id", "subject_name", "subject_birth_date",
              "subject_relation", "monthly_amount", "education_stage"]
    bad_subject = CHILD[:-1] + ("0" if CHILD[-1] != "0" else "1")
    rows = [["C1", PARENT, "children_education", "2024", bad_subject, "张小明", "2015-03-05", "child", "2000",
             "compulsory"]]
    source = write_csv(tmp_path / "claims.csv", header, rows)
    hash_file("claims", source, load_key(key_file), tmp_path / "c.parquet")
    row = pq.read_table(tmp_path / "c.parquet").to_pylist()[0]
    assert row["subject_id_valid"] is False and row["subject_id_tok"] is None
    assert len(row["subject_id_near"]) == 4 and len(row["subject_name_fz"]) >= 2
    assert row["subject_birth_ym"] == 201503 and row["subject_id_birth_ym"] is None


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        ("学生证件号码,学生姓名\n".encode("gb18030") + b"x,y\n", "missing required column"),
        (b"student_id,student_id,education_stage,enrolled_from\n", "more than once"),
        (b"\x00\x01\x02junk\xff\xfe" * 50, "NUL bytes"),
        (b"\xff\xfe\xfa\xfb\x80\x81\x82" * 10, "neither UTF-8 nor GB18030"),
    ],
)
def test_bad_files_exit_1_naming_the_file(tmp_path, key_file, capsys, content, expected):
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    code, _, err = run_cli(["hash", "education", str(source), "--key", str(key_file), "-o",
                            str(tmp_path / "o.parquet")], capsys)
    assert code == 1
    assert "bad.csv" in err and expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists()


def test_corrupt_xlsx_and_parquet_and_unknown_source(tmp_path, key_file, capsys):
    for name in ("bad.xlsx", "bad.parquet"):
        (tmp_path / name).write_bytes(b"PK\x03\x04garbage" if name.endswith("xlsx") else b"PAR1garbage")
        code, _, err = run_cli(["hash", "education", str(tmp_path / name), "--key", str(key_file), "-o",
                                str(tmp_path / "o.parquet")], capsys)
        assert code == 1 and name in err
    code, _, err = run_cli(["hash", "educaton", str(tmp_path / "bad.xlsx"), "--key", str(key_file), "-o",
                            str(tmp_path / "o.parquet")], capsys)
    assert code == 1 and "unknown source" in err


def test_mixed_encoding_after_sniff_window_is_refused(tmp_path, key_file, capsys):
    good = ",".join(GOOD_ROWS[0]) + "\n"
    body = ",".join(HEADER_ZH).encode() + b"\n" + good.encode() * 60000 + good.encode("gb18030")
    (tmp_path / "mixed.csv").write_bytes(body)
    code, _, err = run_cli(["hash", "education", str(tmp_path / "mixed.csv"), "--key", str(key_file), "-o",
                            str(tmp_path / "o.parquet")], capsys)
    assert code == 1 and "not valid utf-8" in err and "mixed.csv" in err
    assert not (tmp_path / "o.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_key_problems_exit_1(tmp_path, key_file, capsys):
    source = write_csv(tmp_path / "in.csv", HEADER_ZH, GOOD_ROWS)
    os.chmod(key_file, 0o644)
    code, _, err = run_cli(["hash", "education", str(source), "--key", str(key_file), "-o", str(tmp_path / "o")],
                           capsys)
    assert code == 1 and "readable by group or others" in err
    code, _, err = run_cli(["hash", "education", str(source), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "MATCHKIT_KEY_FILE" in err


def test_key_env_var_and_usage_error(tmp_path, key_file, capsys, monkeypatch):
    source = write_csv(tmp_path / "in.csv", HEADER_ZH, GOOD_ROWS)
    monkeypatch.setenv("MATCHKIT_KEY_FILE", str(key_file))
    code, out, _ = run_cli(["hash", "education", str(source), "-o", str(tmp_path / "o.parquet")], capsys)
    assert code == 0 and "2 rows in = 2 hashed + 0 rejected" in out
    with pytest.raises(SystemExit) as info:
        main(["hash", "education"])
    assert info.value.code == 2


def test_key_info_never_prints_secret(tmp_path, key_file, capsys):
    code, out, _ = run_cli(["key", "info", str(key_file)], capsys)
    secret = load_key(key_file).secret
    import base64

    assert code == 0 and load_key(key_file).key_id in out and load_key(key_file).fingerprint in out
    assert base64.b64encode(secret).decode() not in out and secret.hex() not in out


class _Terminal(io.StringIO):
    """Standard error as an interactive terminal, where `matchkit hash` draws a progress bar."""

    def isatty(self) -> bool:
        return True


def test_hash_on_a_terminal_draws_a_progress_bar(tmp_path, key_file, monkeypatch):
    """On a terminal the command shows a tqdm bar (its truth value is undefined before it knows a total, so the
    command must test it against None) and still hashes every row; the bar shows counts, never a value."""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    source = REPO / "sample_data" / "education.csv"
    code = main(["hash", "education", str(source), "--key", str(key_file), "-o", str(tmp_path / "edu.parquet")])
    assert code == 0, terminal.getvalue()
    assert "hashing" in terminal.getvalue()
    assert open_hashed(tmp_path / "edu.parquet").manifest.rows_in == 157
