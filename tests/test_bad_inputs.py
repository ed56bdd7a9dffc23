"""A corpus of malformed inputs: every one is refused by name (exit 1) or rejected row by row (exit 0), never a
traceback, never a raw value in any message, rejects file or output.

File-level faults (the whole file, key, schema or hashed file cannot be used) exit 1 with a message naming the
file and what is wrong, and leave no output behind. A header-only file (no data rows) is refused too, unless
``--allow-empty`` says it is expected: then 0 rows in = 0 hashed + 0 rejected, exit 0, an empty hashed file with its
manifest. Row-level faults reject that row with its line number,
column and reason, and the run goes on (exit 0).
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.errors import EmptyInputError, IncompatibleFilesError, InputFileError
from matchkit.io.hashed.reader import HashedFile, check_compatible, open_hashed
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.jobs.hash import hash_file
from matchkit.security.keys import load_key, new_key, write_key
from matchkit.security.signing import new_signing_key, write_signing_key
from tests.conftest import make_id

TAXPAYER = make_id("32040219850611004")
CHILD = make_id("32040220150305123")
EDU_HEADER = ["student_id", "student_name", "birth_date", "education_stage", "enrolled_from", "enrolled_to"]
EDU_ROW = [CHILD, "张小明", "2015-03-05", "compulsory", "2021-09", ""]
CLAIMS_HEADER = ["claim_id", "taxpayer_id", "taxpayer_name", "deduction", "tax_year", "period_start", "period_end",
                 "subject_id", "subject_name", "subject_birth_date", "subject_relation", "share", "monthly_amount",
                 "education_stage"]
CLAIMS_ROW = ["C1", TAXPAYER, "张大明", "children_education", "2024", "2024-01", "2024-12", CHILD, "张小明",
              "2015-03-05", "child", "50%", "1000", "compulsory"]
SECRETS = (TAXPAYER, CHILD, "张小明", "张大明", "2015-03-05")


def csv_bytes(header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue().encode(encoding)


def run_cli(args: list[object], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.fixture(scope="module")
def hashed(tmp_path_factory) -> dict[str, Path]:
    """A key and good hashed claims and education files for the verify-side cases."""
    root = tmp_path_factory.mktemp("hashed")
    key_path = write_key(new_key(), root / "shared.key")
    key = load_key(key_path)
    (root / "claims.csv").write_bytes(csv_bytes(CLAIMS_HEADER, [CLAIMS_ROW]))
    (root / "education.csv").write_bytes(csv_bytes(EDU_HEADER, [EDU_ROW]))
    claims = hash_file("claims", root / "claims.csv", key, root / "claims.parquet").output
    education = hash_file("education", root / "education.csv", key, root / "education.parquet").output
    return {"root": root, "key": key_path, "claims": claims, "education": education}


def rewrite_manifest(source: Path, target: Path, **changes: object) -> Path:
    """A consistent hashed file (valid digest) whose manifest says something else."""
    original = open_hashed(source)
    table = original.read()
    writer = HashedFileWriter(target, table.schema)
    writer.write(table)
    writer.close(_RawManifest({**original.manifest.to_json(), **changes}))
    return target


class _RawManifest:
    """Manifest JSON as given, even what this matchkit would never write (a newer format version)."""

    def __init__(self, body: dict[str, object]) -> None:
        self.body = body

    def to_bytes(self) -> bytes:
        return json.dumps(self.body, sort_keys=True).encode()


# --- file-level faults of `matchkit hash` ---------------------------------------------------------------------------

@dataclass
class FileCase:
    """``build(folder) -> (input path, extra CLI args)``; the message must contain ``expected``."""

    name: str
    build: Callable[[Path], tuple[Path, list[object]]]
    expected: str
    source: str = "education"
    named: str | None = None  # the file the message must name (default: the input)
    key: str = "good"


FILE_CASES: list[FileCase] = []


def file_case(name: str, expected: str, **extra: object) -> Callable:
    def register(build: Callable[[Path], tuple[Path, list[object]]]) -> Callable:
        FILE_CASES.append(FileCase(name, build, expected, **extra))  # type: ignore[arg-type]
        return build
    return register


def _write(folder: Path, name: str, body: bytes) -> Path:
    path = folder / name
    path.write_bytes(body)
    return path


def _xlsx(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> Path:
    path = folder / name
    pd.DataFrame(rows, columns=header).to_excel(path, index=False)
    return path


def _parquet(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> Path:
    path = folder / name
    pd.DataFrame(rows, columns=header).to_parquet(path, index=False)
    return path


@file_case("empty_file", "input file is empty")
def _(d): return _write(d, "in.csv", b""), []


@file_case("bom_only", "no header line")
def _(d): return _write(d, "in.csv", b"\xef\xbb\xbf"), []


@file_case("blank_first_line", "no header line")
def _(d): return _write(d, "in.csv", b"\n" + csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("utf16_text", "NUL bytes")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW], "utf-16")), []


@file_case("binary_junk_with_nul", "NUL bytes")
def _(d): return _write(d, "in.csv", bytes(range(256)) * 40), []


@file_case("binary_junk_high_bytes", "neither UTF-8 nor GB18030")
def _(d): return _write(d, "in.csv", b"\xff\xfe\xfa\xfb\x80\x81\x82" * 40), []


@file_case("nul_in_header", "NUL bytes")
def _(d): return _write(d, "in.csv", b"student_id\x00,education_stage,enrolled_from\n1,2,3\n"), []


@file_case("wrong_encoding_forced", "not valid utf-8")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW], "gb18030")), ["--encoding", "utf-8"]


@file_case("mixed_encodings", "neither UTF-8 nor GB18030")
def _(d):
    other = [make_id("32040220160405123"), "李小红", "2016-04-05", "义务教育", "2021-09", ""]
    body = csv_bytes(EDU_HEADER, [EDU_ROW]) + csv_bytes(EDU_HEADER, [other], "gb18030").split(b"\n", 1)[1]
    return _write(d, "in.csv", body), []


@file_case("mixed_encodings_forced", "not valid utf-8")
def _(d):
    body = csv_bytes(EDU_HEADER, [EDU_ROW] * 3000) + "王小二,义务教育\n".encode("gb18030")
    return _write(d, "in.csv", body), ["--encoding", "utf-8"]


@file_case("unknown_encoding_name", "unknown encoding")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), ["--encoding", "klingon"]


@file_case("gigantic_field", "field larger than field limit")
def _(d):
    giant = [CHILD, "张" * 400_000, "2015-03-05", "compulsory", "2021-09", ""]  # > 1 MB of UTF-8 in one cell
    return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW, giant])), []


@file_case("missing_required_column", "missing required column(s) for source 'education': enrolled_from")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER[:4], [EDU_ROW[:4]])), []


@file_case("missing_required_column_xlsx", "missing required column")
def _(d): return _xlsx(d, "in.xlsx", EDU_HEADER[1:], [EDU_ROW[1:]]), []


@file_case("missing_required_column_parquet", "missing required column")
def _(d): return _parquet(d, "in.parquet", EDU_HEADER[1:], [EDU_ROW[1:]]), []


@file_case("no_recognised_column", "missing required column")
def _(d): return _write(d, "in.csv", b"a,b,c\n1,2,3\n"), []


@file_case("duplicated_column_by_alias", "more than once")
def _(d): return _write(d, "in.csv", csv_bytes([*EDU_HEADER, "学生证件号码"], [[*EDU_ROW, CHILD]])), []


@file_case("duplicated_column_by_name", "more than once")
def _(d): return _write(d, "in.csv", csv_bytes([*EDU_HEADER, "enrolled_from"], [[*EDU_ROW, "2021-09"]])), []


@file_case("claims_file_passed_as_extract", "missing required column(s) for source 'education'")
def _(d): return _write(d, "claims.csv", csv_bytes(CLAIMS_HEADER, [CLAIMS_ROW])), []


@file_case("extract_passed_as_claims", "missing required column(s) for source 'claims'", source="claims")
def _(d): return _write(d, "education.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("truncated_xlsx", "not a readable XLSX workbook")
def _(d):
    path = _xlsx(d, "in.xlsx", EDU_HEADER, [EDU_ROW] * 30)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, []


@file_case("corrupt_xlsx", "not a readable XLSX workbook")
def _(d): return _write(d, "in.xlsx", b"PK\x03\x04" + bytes(range(7, 250)) * 12), []


@file_case("xlsx_without_workbook", "not a readable XLSX workbook")
def _(d):
    path = d / "in.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return path, []


@file_case("xlsx_damaged_sheet_xml", "XLSX workbook is corrupt or truncated")
def _(d):
    good = _xlsx(d, "good.xlsx", EDU_HEADER, [EDU_ROW] * 30)
    path = d / "in.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = data[: len(data) // 2]
            target.writestr(item, data)
    return path, []


@file_case("xlsx_empty_sheet", "the first sheet is empty")
def _(d):
    import openpyxl

    path = d / "in.xlsx"
    openpyxl.Workbook().save(path)
    return path, []


@file_case("csv_named_xlsx", "has an .xlsx name but is not an XLSX workbook")
def _(d): return _write(d, "in.xlsx", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("text_named_parquet", "has a .parquet name but is not a Parquet file")
def _(d): return _write(d, "in.parquet", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("truncated_parquet", "not a readable Parquet file")
def _(d):
    path = _parquet(d, "in.parquet", EDU_HEADER, [EDU_ROW] * 30)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, []


@file_case("parquet_missing_footer_tail", "not a readable Parquet file")
def _(d):
    path = _parquet(d, "in.parquet", EDU_HEADER, [EDU_ROW] * 30)
    path.write_bytes(path.read_bytes()[:-3])
    return path, []


@file_case("hashed_file_given_as_raw_input", "already a matchkit hashed file")
def _(d):
    key = load_key(d / "shared.key")
    raw = _write(d, "raw.csv", csv_bytes(EDU_HEADER, [EDU_ROW]))
    return hash_file("education", raw, key, d / "in.parquet").output, []


@file_case("input_not_found", "input file not found")
def _(d): return d / "nowhere.csv", []


@file_case("input_is_a_folder", "not a regular file")
def _(d):
    (d / "folder.csv").mkdir()
    return d / "folder.csv", []


@file_case("malformed_schema_toml", "not valid TOML", source="SCHEMA", named="bad_schema.toml")
def _(d):
    _write(d, "bad_schema.toml", b"[source\nname = ")
    return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("schema_unknown_column_type", "unknown type 'dat'", source="SCHEMA", named="bad_schema.toml")
def _(d):
    _write(d, "bad_schema.toml", b'[source]\nname = "x"\nversion = 1\npurpose = "p"\n'
           b'[[columns]]\nname = "a"\ntype = "dat"\n')
    return _write(d, "in.csv", b"a\n1\n"), []


@file_case("schema_entity_without_column", "no column named 'pid'", source="SCHEMA", named="bad_schema.toml")
def _(d):
    _write(d, "bad_schema.toml", b'[source]\nname = "x"\nversion = 1\npurpose = "p"\n[entities.p]\nid = "pid"\n'
           b'[[columns]]\nname = "a"\ntype = "text"\n')
    return _write(d, "in.csv", b"a\n1\n"), []


@file_case("schema_not_utf8", "not valid TOML", source="SCHEMA", named="bad_schema.toml")
def _(d):
    _write(d, "bad_schema.toml", "[source]\nname = '教育'\n".encode("gb18030"))
    return _write(d, "in.csv", b"a\n1\n"), []


@file_case("schema_file_missing", "schema file not found", source="SCHEMA", named="bad_schema.toml")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("unknown_source_name", "unknown source", source="educaton", named="educaton")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("output_folder_missing", "output folder does not exist", named="missing")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), ["-o", d / "missing" / "o.parquet"]


@file_case("output_is_a_folder", "output is a folder", named="out.parquet")
def _(d):
    (d / "out.parquet").mkdir()
    return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), ["-o", d / "out.parquet"]


@file_case("rejects_folder_missing", "rejects folder does not exist", named="missing")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), ["--rejects", d / "missing" / "r.csv"]


@file_case("key_missing", "key file not found", key="missing", named="missing.key")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("key_world_readable", "readable by group or others", key="world_readable", named="open.key")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("key_truncated", "malformed or truncated", key="truncated", named="cut.key")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("key_is_a_signing_key", "missing format marker", key="signing", named="agency.key")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


@file_case("key_not_given", "MATCHKIT_KEY_FILE", key="none", named="")
def _(d): return _write(d, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW])), []


def _key_argument(folder: Path, kind: str) -> list[object]:
    good = folder / "shared.key"
    if kind == "good":
        return ["--key", good]
    if kind == "none":
        return []
    if kind == "missing":
        return ["--key", folder / "missing.key"]
    if kind == "world_readable":
        path = _write(folder, "open.key", good.read_bytes())
        os.chmod(path, 0o644)
        return ["--key", path]
    if kind == "truncated":
        path = _write(folder, "cut.key", good.read_bytes()[:40])
        os.chmod(path, 0o600)
        return ["--key", path]
    if kind == "signing":
        private, _ = write_signing_key(new_signing_key("agency"), folder / "agency.key")
        return ["--key", private]
    raise AssertionError(kind)


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.name for c in FILE_CASES])
def test_file_level_fault_exits_1_naming_the_file(tmp_path, capsys, case):
    write_key(new_key(), tmp_path / "shared.key")
    source_path, extra = case.build(tmp_path)
    source = str(tmp_path / "bad_schema.toml") if case.source == "SCHEMA" else case.source
    args: list[object] = ["hash", source, source_path, *_key_argument(tmp_path, case.key)]
    if "-o" not in extra:
        args += ["-o", tmp_path / "o.parquet"]
    code, out, err = run_cli([*args, *extra], capsys)
    assert code == 1, (out, err)
    assert "Traceback" not in err and err.startswith("matchkit: error: ")
    assert case.expected in err
    named = Path(source_path).name if case.named is None else case.named
    assert named in err
    for secret in SECRETS:
        assert secret not in out and secret not in err
    assert not (tmp_path / "o.parquet").exists()
    assert leftovers(tmp_path) == []


# --- header-only files: refused unless --allow-empty -----------------------------------------------------------------

def _header_only(tmp_path: Path, fmt: str) -> Path:
    if fmt == "xlsx":
        return _xlsx(tmp_path, "in.xlsx", EDU_HEADER, [])
    if fmt == "parquet":
        source = tmp_path / "in.parquet"
        pd.DataFrame({c: pd.Series([], dtype="string") for c in EDU_HEADER}).to_parquet(source, index=False)
        return source
    return _write(tmp_path, "in.csv", (",".join(EDU_HEADER) + ("\r\n" if fmt == "csv_crlf" else "\n")).encode())


@pytest.mark.parametrize("fmt", ["csv", "csv_crlf", "xlsx", "parquet"])
def test_header_only_file_is_refused_by_name(tmp_path, key_file, capsys, fmt):
    source = _header_only(tmp_path, fmt)
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                              "--rejects", tmp_path / "r.csv"], capsys)
    assert code == 1, (out, err)
    assert err.startswith("matchkit: error: ") and "Traceback" not in err
    assert f"{source}: no data rows" in err and "--allow-empty" in err
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "r.csv").exists()
    assert leftovers(tmp_path) == []


def test_header_only_file_is_refused_by_the_library(tmp_path, key_file):
    source = _header_only(tmp_path, "csv")
    with pytest.raises(EmptyInputError) as info:
        hash_file("education", source, load_key(key_file), tmp_path / "o.parquet")
    assert isinstance(info.value, InputFileError) and info.value.path == str(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "shared.key"]


@pytest.mark.parametrize("fmt", ["csv", "csv_crlf", "xlsx", "parquet"])
def test_header_only_file_with_allow_empty_is_zero_rows(tmp_path, key_file, capsys, fmt):
    source = _header_only(tmp_path, fmt)
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                              "--rejects", tmp_path / "r.csv", "--allow-empty"], capsys)
    assert code == 0, err
    assert "0 rows in = 0 hashed + 0 rejected" in out
    manifest = open_hashed(tmp_path / "o.parquet").manifest.to_json()
    assert (manifest["rows_in"], manifest["rows_hashed"], manifest["rows_rejected"]) == (0, 0, 0)
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 0
    assert (tmp_path / "r.csv").read_text(encoding="utf-8").strip() == "line,column,reason"
    result = hash_file("education", source, load_key(key_file), tmp_path / "lib.parquet", allow_empty=True)
    assert result.rows_in == 0 and open_hashed(result.output).manifest.rows_in == 0


def test_every_row_rejected_is_not_an_empty_input(tmp_path, key_file, capsys):
    """Rows that are all rejected are data rows: the run succeeds and the rejects say why."""
    source = _write(tmp_path, "in.csv", csv_bytes(EDU_HEADER, [["not-an-id", "x", "", "compulsory", "2021-09", ""]]))
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet"], capsys)
    assert code == 0, err
    assert "1 rows in = 0 hashed + 1 rejected" in out


def test_nul_byte_far_down_a_text_file_is_refused_with_its_line(tmp_path, key_file, capsys):
    """NUL bytes in the first MiB mean a binary or UTF-16 file (a case above); a stray NUL further down an otherwise
    good text file is refused too, naming its line, since no NUL belongs in a text CSV."""
    body = csv_bytes(EDU_HEADER, [EDU_ROW] * 20_000) + b"3204\x0002,x,2015-03-05,compulsory,2021-09,\n"
    source = _write(tmp_path, "in.csv", body)
    code, _, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                            "--rejects", tmp_path / "r.csv"], capsys)
    assert code == 1 and "in.csv" in err and "line 20002" in err and "NUL" in err and "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "r.csv").exists()
    assert leftovers(tmp_path) == []


def test_truncated_csv_loses_only_its_last_row(tmp_path, key_file, capsys):
    """A CSV cut off in the middle of a row (here inside a quoted field) is readable: the cut row is a reject."""
    body = csv_bytes(EDU_HEADER, [EDU_ROW, EDU_ROW]) + f'{CHILD},"张小'.encode()
    source = _write(tmp_path, "in.csv", body)
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                              "--rejects", tmp_path / "r.csv"], capsys)
    assert code == 0, err
    assert "3 rows in = 2 hashed + 1 rejected" in out
    assert "4,,wrong_field_count" in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_old_mac_line_endings_are_never_read_as_zero_rows(tmp_path, key_file, capsys):
    """CR-only line ends: read correctly or refused by name, never a silent '0 rows in'."""
    source = _write(tmp_path, "in.csv", csv_bytes(EDU_HEADER, [EDU_ROW, EDU_ROW]).replace(b"\n", b"\r"))
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet"], capsys)
    if code == 0:
        assert "2 rows in = 2 hashed + 0 rejected" in out
    else:
        assert code == 1 and "in.csv" in err and "CR only" in err and "Traceback" not in err


# --- file-level faults of `matchkit verify` -------------------------------------------------------------------------

def _not_ours(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", _parquet(d, "foreign.parquet", EDU_HEADER, [EDU_ROW]), "-o", d / "f.csv"]


def _newer_encoding(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], rewrite_manifest(h["education"], d / "newer.parquet", encoding_version="mk9"),
            "-o", d / "f.csv"]


def _newer_format(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", rewrite_manifest(h["claims"], d / "newer.parquet", format_version=3), "-o", d / "f.csv"]


def _claims_as_extract(d: Path, h: dict[str, Path]) -> list[object]:
    copy = _write(d, "claims2.parquet", h["claims"].read_bytes())
    return ["--claims", h["claims"], copy, "-o", d / "f.csv"]


def _extract_as_claims(d: Path, h: dict[str, Path]) -> list[object]:
    copy = _write(d, "edu.parquet", h["education"].read_bytes())
    return ["--claims", copy, "-o", d / "f.csv"]


def _truncated_hashed(d: Path, h: dict[str, Path]) -> list[object]:
    data = h["education"].read_bytes()
    return ["--claims", h["claims"], _write(d, "cut.parquet", data[: len(data) * 2 // 3]), "-o", d / "f.csv"]


def _altered_page(d: Path, h: dict[str, Path]) -> list[object]:
    data = bytearray(h["education"].read_bytes())
    data[10] ^= 0x01
    return ["--claims", h["claims"], _write(d, "altered.parquet", bytes(data)), "-o", d / "f.csv"]


def _damaged_manifest(d: Path, h: dict[str, Path]) -> list[object]:
    data = h["education"].read_bytes()
    assert data.count(b'"format": "matchkit-hashed"') == 1
    damaged = data.replace(b'"format": "matchkit-hashed"', b'"format"; "matchkit-hashed"')
    return ["--claims", h["claims"], _write(d, "damaged.parquet", damaged), "-o", d / "f.csv"]


def _csv_as_claims(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", _write(d, "claims.csv", csv_bytes(CLAIMS_HEADER, [CLAIMS_ROW])), "-o", d / "f.csv"]


def _empty_hashed(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], _write(d, "empty.parquet", b""), "-o", d / "f.csv"]


def _missing_hashed(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], d / "absent.parquet", "-o", d / "f.csv"]


def _wrong_flags_extension(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], h["education"], "-o", d / "flags.txt"]


def _report_folder_missing(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], "-o", d / "f.csv", "--report", d / "reports" / "r.html"]


def _report_is_a_folder(d: Path, h: dict[str, Path]) -> list[object]:
    (d / "r.html").mkdir()
    return ["--claims", h["claims"], "-o", d / "f.csv", "--report", d / "r.html"]


def _flags_folder_missing(d: Path, h: dict[str, Path]) -> list[object]:
    return ["--claims", h["claims"], "-o", d / "out" / "f.csv"]


def _unused_source(d: Path, h: dict[str, Path]) -> list[object]:
    schema = _write(d, "staff.toml", b'[source]\nname = "staff"\nversion = 1\npurpose = "iit-special-deduction"\n'
                    b'[entities.person]\nid = "person_id"\n[[columns]]\nname = "person_id"\ntype = "id"\n'
                    b"required = true\n")
    raw = _write(d, "staff.csv", f"person_id\n{TAXPAYER}\n".encode())
    out = hash_file(schema, raw, load_key(h["key"]), d / "staff.parquet").output
    return ["--claims", h["claims"], out, "-o", d / "f.csv"]


VERIFY_CASES = [
    ("parquet_not_ours", _not_ours, "foreign.parquet", "no matchkit manifest"),
    ("newer_encoding_version", _newer_encoding, "newer.parquet", "encoding version 'mk9' is not supported"),
    ("newer_file_format", _newer_format, "newer.parquet", "file format version 3 is not supported"),
    ("claims_file_as_extract", _claims_as_extract, "claims2.parquet", "give it with --claims"),
    ("extract_as_claims", _extract_as_claims, "edu.parquet", "not a claims file"),
    ("truncated_hashed_file", _truncated_hashed, "cut.parquet", "not a Parquet file"),
    ("data_page_altered", _altered_page, "altered.parquet", "does not match its digest"),
    ("manifest_damaged", _damaged_manifest, "damaged.parquet", "manifest is damaged"),
    ("raw_csv_as_claims", _csv_as_claims, "claims.csv", "not a Parquet file"),
    ("empty_hashed_file", _empty_hashed, "empty.parquet", "not a Parquet file"),
    ("hashed_file_missing", _missing_hashed, "absent.parquet", "file not found"),
    ("flags_wrong_extension", _wrong_flags_extension, "flags.txt", "must end in .csv, .parquet or .xlsx"),
    ("source_verify_does_not_use", _unused_source, "staff.parquet", "which verify does not use"),
    ("report_folder_missing", _report_folder_missing, "reports", "report folder does not exist"),
    ("report_is_a_folder", _report_is_a_folder, "r.html", "report is a folder"),
    ("flags_folder_missing", _flags_folder_missing, "out", "flags output folder does not exist"),
]


@pytest.mark.parametrize("name, build, named, expected", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_verify_refuses_bad_hashed_files_by_name(tmp_path, hashed, capsys, name, build, named, expected):
    code, out, err = run_cli(["verify", *build(tmp_path, hashed)], capsys)
    assert code == 1, (out, err)
    assert "Traceback" not in err and named in err and expected in err
    assert not (tmp_path / "f.csv").exists() and leftovers(tmp_path) == []


# --- mismatched keys, purposes and encoding versions are refused by name --------------------------------------------

def test_files_hashed_with_different_keys_are_refused_by_name(tmp_path, hashed, capsys):
    other_key = write_key(new_key(), tmp_path / "other.key")
    code, _, err = run_cli(["hash", "education", hashed["root"] / "education.csv", "--key", other_key, "-o",
                            tmp_path / "education.parquet"], capsys)
    assert code == 0
    code, _, err = run_cli(["verify", "--claims", hashed["claims"], tmp_path / "education.parquet", "-o",
                            tmp_path / "f.csv"], capsys)
    claims_key = open_hashed(hashed["claims"]).manifest.key_id
    other_id = load_key(other_key).key_id
    assert code == 1
    assert (f"education.parquet was hashed with key id '{other_id}' but claims.parquet with '{claims_key}'"
            in err)
    assert not (tmp_path / "f.csv").exists()


def test_files_hashed_for_different_purposes_are_refused_by_name(tmp_path, hashed, capsys):
    code, _, _ = run_cli(["hash", "education", hashed["root"] / "education.csv", "--key", hashed["key"], "-o",
                          tmp_path / "education.parquet", "--purpose", "social-assistance"], capsys)
    assert code == 0
    code, _, err = run_cli(["verify", "--claims", hashed["claims"], tmp_path / "education.parquet", "-o",
                            tmp_path / "f.csv"], capsys)
    assert code == 1
    assert ("education.parquet was hashed with purpose 'social-assistance' but claims.parquet with "
            "'iit-special-deduction'" in err)


def test_files_with_different_encoding_versions_are_refused_by_name(tmp_path, hashed, monkeypatch):
    """Even when a future release supports two encoding versions, one run must not mix them."""
    import matchkit.encode

    monkeypatch.setattr(matchkit.encode, "SUPPORTED_ENCODINGS", frozenset({"mk1", "mk2"}))
    newer = rewrite_manifest(hashed["education"], tmp_path / "education.parquet", encoding_version="mk2")
    files = [open_hashed(hashed["claims"]), open_hashed(newer)]
    with pytest.raises(IncompatibleFilesError) as info:
        check_compatible(files)
    assert ("education.parquet was hashed with encoding version 'mk2' but claims.parquet with 'mk1'"
            in str(info.value))
    same = [HashedFile(hashed["claims"], files[0].manifest), HashedFile(hashed["education"], files[0].manifest)]
    check_compatible(same)


# --- row-level faults: the row is rejected with line, column and reason; the run goes on ----------------------------

BAD_ID = make_id("11010519900307291")  # the identities of every bad row: must never surface anywhere
BAD_CHILD = make_id("11010520140719352")
BAD_NAME = "欧阳疾风"
BAD_NAME_2 = "慕容飞雪"
BAD_DATE = "2014-07-19"


def _checksum_broken(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


@dataclass
class RowCase:
    name: str
    source: str
    changes: dict[str, str]
    column: str
    reason: str
    raw_row: Callable[[list[str]], list[str]] | None = None  # rewrites the whole row (field-count faults)
    secrets: tuple[str, ...] = field(default_factory=tuple)


SOURCE_ROWS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    # source: (header, good row, the bad row's identity overrides)
    "claims": (CLAIMS_HEADER, CLAIMS_ROW, {"claim_id": "C2", "taxpayer_id": BAD_ID, "taxpayer_name": BAD_NAME,
                                           "subject_id": BAD_CHILD, "subject_name": BAD_NAME_2,
                                           "subject_birth_date": BAD_DATE}),
    "education": (EDU_HEADER, EDU_ROW, {"student_id": BAD_CHILD, "student_name": BAD_NAME_2,
                                        "birth_date": BAD_DATE}),
    "medical_insurance": (["patient_id", "patient_name", "year", "total_cost", "out_of_pocket"],
                          [TAXPAYER, "张大明", "2024", "30000", "20000"],
                          {"patient_id": BAD_ID, "patient_name": BAD_NAME}),
    "civil_affairs": (["event", "person_id", "person_name", "partner_id", "partner_name", "event_date"],
                      ["marriage", TAXPAYER, "张大明", CHILD, "张小明", "2010-05-01"],
                      {"person_id": BAD_ID, "person_name": BAD_NAME, "partner_id": BAD_CHILD,
                       "partner_name": BAD_NAME_2, "event_date": BAD_DATE}),
}

ROW_CASES = [
    RowCase("taxpayer_id_excel_damage", "claims", {"taxpayer_id": "3.20402E+17"}, "taxpayer_id",
            "invalid_id_excel_damage", secrets=("3.20402E+17",)),
    RowCase("taxpayer_id_bad_checksum", "claims", {"taxpayer_id": _checksum_broken(BAD_ID)}, "taxpayer_id",
            "invalid_id_bad_checksum", secrets=(_checksum_broken(BAD_ID),)),
    RowCase("taxpayer_id_impossible_birth_date", "claims", {"taxpayer_id": make_id("11010519901307291")},
            "taxpayer_id", "invalid_id_bad_date", secrets=(make_id("11010519901307291"),)),
    RowCase("subject_birth_date_impossible", "claims", {"subject_birth_date": "2015-02-30"}, "subject_birth_date",
            "bad_date", secrets=("2015-02-30",)),
    RowCase("subject_birth_date_future", "claims", {"subject_birth_date": "2099-01-01"}, "subject_birth_date",
            "future_date", secrets=("2099-01-01",)),
    RowCase("period_month_13", "claims", {"period_start": "2024-13"}, "period_start", "bad_month"),
    RowCase("amount_negative", "claims", {"monthly_amount": "-1000"}, "monthly_amount", "negative_amount"),
    RowCase("amount_not_numeric", "claims", {"monthly_amount": "一千元整"}, "monthly_amount", "bad_number"),
    RowCase("amount_missing", "claims", {"monthly_amount": ""}, "monthly_amount;annual_amount", "missing_amount"),
    RowCase("deduction_unknown", "claims", {"deduction": "子女养育"}, "deduction", "unknown_code"),
    RowCase("stage_unknown", "claims", {"education_stage": "博士后"}, "education_stage", "unknown_code"),
    RowCase("stage_missing_for_children_education", "claims", {"education_stage": ""}, "education_stage",
            "missing_value"),
    RowCase("relation_unknown", "claims", {"subject_relation": "邻居"}, "subject_relation", "unknown_code"),
    RowCase("share_above_100_percent", "claims", {"share": "150%"}, "share", "share_out_of_range"),
    RowCase("share_bare_number_above_1", "claims", {"share": "50"}, "share", "share_out_of_range"),
    RowCase("period_ends_before_it_starts", "claims", {"period_start": "2024-09", "period_end": "2024-03"},
            "period_end", "period_reversed"),
    RowCase("period_outside_tax_year", "claims", {"period_start": "2023-11"}, "period_start",
            "period_outside_tax_year"),
    RowCase("tax_year_before_2019", "claims", {"tax_year": "2018", "period_start": "2018-01",
                                               "period_end": "2018-12"}, "tax_year", "year_out_of_range"),
    RowCase("tax_year_not_a_number", "claims", {"tax_year": "二〇二四"}, "tax_year", "bad_number"),
    RowCase("taxpayer_name_with_digits", "claims", {"taxpayer_name": "张3"}, "taxpayer_name", "invalid_name",
            secrets=("张3",)),
    RowCase("duplicate_claim_id", "claims", {"claim_id": "C1"}, "claim_id", "duplicate_record_id"),
    RowCase("too_few_fields", "claims", {}, "", "wrong_field_count", raw_row=lambda row: row[:5]),
    RowCase("too_many_fields", "claims", {}, "", "wrong_field_count", raw_row=lambda row: [*row, "extra", "x"]),
    RowCase("student_id_excel_damage", "education", {"student_id": "1.10105E+17"}, "student_id",
            "invalid_id_excel_damage", secrets=("1.10105E+17",)),
    RowCase("student_id_bad_checksum", "education", {"student_id": _checksum_broken(BAD_CHILD)}, "student_id",
            "invalid_id_bad_checksum", secrets=(_checksum_broken(BAD_CHILD),)),
    RowCase("student_id_missing", "education", {"student_id": ""}, "student_id", "missing_value"),
    RowCase("enrolment_month_13", "education", {"enrolled_from": "2021-13"}, "enrolled_from", "bad_month"),
    RowCase("enrolment_reversed", "education", {"enrolled_from": "2022-09", "enrolled_to": "2021-06"},
            "enrolled_to", "period_reversed"),
    RowCase("birth_date_day_first", "education", {"birth_date": "19/07/2014"}, "birth_date", "bad_format",
            secrets=("19/07/2014",)),
    RowCase("birth_date_future", "education", {"birth_date": "2093-07-19"}, "birth_date", "future_date",
            secrets=("2093-07-19",)),
    RowCase("out_of_pocket_negative", "medical_insurance", {"out_of_pocket": "-20000"}, "out_of_pocket",
            "negative_amount"),
    RowCase("medical_year_before_2019", "medical_insurance", {"year": "2017"}, "year", "year_out_of_range"),
    RowCase("event_unknown", "civil_affairs", {"event": "订婚"}, "event", "unknown_code"),
    RowCase("event_date_future", "civil_affairs", {"event_date": "2099-12-31"}, "event_date", "future_date"),
    RowCase("marriage_without_partner", "civil_affairs", {"partner_id": "", "partner_name": ""}, "partner_id",
            "missing_value"),
]


def _artefact_text(path: Path) -> str:
    """Everything a reader of the file could see: its bytes, and for Parquet every decoded value and metadata."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        text += repr(table.to_pylist()) + repr(table.schema.metadata)
    return text


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.name for c in ROW_CASES])
def test_row_level_fault_is_rejected_and_the_run_goes_on(tmp_path, key_file, capsys, case):
    header, good, identity = SOURCE_ROWS[case.source]
    values = dict(zip(header, good))
    values.update(identity)
    values.update(case.changes)
    bad = [values[column] for column in header]
    if case.raw_row:
        bad = case.raw_row(bad)
    source = _write(tmp_path, "in.csv", csv_bytes(header, [good, bad]))
    out_path, rejects_path = tmp_path / "o.parquet", tmp_path / "r.csv"
    code, out, err = run_cli(["hash", case.source, source, "--key", key_file, "-o", out_path, "--rejects",
                              rejects_path], capsys)
    assert code == 0, err
    assert "2 rows in = 1 hashed + 1 rejected" in out and "Traceback" not in err
    rejects = read_rejects(rejects_path)
    assert len(rejects) == 1 and rejects[0]["line"] == "3"
    pairs = list(zip(rejects[0]["column"].split(";"), rejects[0]["reason"].split(";")))
    if ";" in case.column:  # one fault over several columns
        assert rejects[0]["column"] == case.column and rejects[0]["reason"] == case.reason
    else:
        assert (case.column, case.reason) in pairs, rejects[0]
    assert pq.read_table(out_path).num_rows == 1
    exposed = [out, err, _artefact_text(rejects_path), _artefact_text(out_path)]
    for secret in (*[v for k, v in identity.items() if k != "claim_id"], *case.secrets):
        for text in exposed:
            assert secret not in text


def test_excel_mangled_numeric_id_cell_in_xlsx_is_a_row_reject(tmp_path, key_file, capsys):
    source = _xlsx(tmp_path, "in.xlsx", EDU_HEADER, [EDU_ROW, [float(BAD_CHILD[:-1] + "0"), BAD_NAME_2, BAD_DATE,
                                                                "compulsory", "2021-09", ""]])
    code, out, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                              "--rejects", tmp_path / "r.csv"], capsys)
    assert code == 0 and "2 rows in = 1 hashed + 1 rejected" in out, err
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert "3,student_id,invalid_id_excel_damage" in text
    for secret in (BAD_NAME_2, BAD_DATE, BAD_CHILD[:12]):
        assert secret not in text and secret not in out and secret not in _artefact_text(tmp_path / "o.parquet")


def test_damaged_raw_parquet_and_xlsx_never_traceback(tmp_path, key_file, capsys):
    """Bit flips all over a raw XLSX and a raw Parquet input: each run is accepted (the flip hit a value) or
    refused by name; nothing else escapes."""
    import random

    rng = random.Random(6)
    for name, make in (("in.xlsx", _xlsx), ("in.parquet", _parquet)):
        good = make(tmp_path, "good" + Path(name).suffix, EDU_HEADER, [EDU_ROW] * 20).read_bytes()
        for position in rng.sample(range(len(good)), 60):
            body = bytearray(good)
            body[position] ^= 1 << rng.randrange(8)
            target = _write(tmp_path, name, bytes(body))
            code, _, err = run_cli(["hash", "education", target, "--key", key_file, "-o", tmp_path / "o.parquet"],
                                   capsys)
            assert code in (0, 1) and "Traceback" not in err
            if code == 1:
                assert name in err
    assert leftovers(tmp_path) == []


def test_bad_inputs_corpus_is_large_enough():
    assert len(FILE_CASES) + len(VERIFY_CASES) + len(ROW_CASES) >= 40
    assert json.dumps([c.name for c in FILE_CASES])  # names are plain strings, usable as test ids
