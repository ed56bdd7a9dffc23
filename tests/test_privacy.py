"""Privacy is the product: no raw ID number, name or birth date in anything matchkit writes.

Runs the README's main job on every bundled sample file (key → hash every source → verify → flags and report) and
scans every artefact — hashed Parquet (raw bytes *and* every decoded cell and the footer metadata), rejects, flags
(CSV, and the Excel workbook part by part, in Chinese and English), the HTML reports, stdout and stderr (also of a
run on a terminal, with its progress bar) — for every identifying value of the inputs, raw and normalised.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.normalize.dates import parse_date
from matchkit.normalize.ids import normalize_id
from matchkit.normalize.names import normalize_name
from matchkit.schema import load_schema

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SOURCES = ["education", "household", "civil_affairs", "only_child", "medical_insurance", "claims"]


def sample_file(source: str) -> Path:
    matches = [p for p in SAMPLE.glob(f"{source}.*") if p.suffix in (".csv", ".xlsx", ".parquet")]
    assert matches, f"no sample file for {source}"
    return matches[0]


def read_raw(path: Path) -> pd.DataFrame:
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=str)
    if path.suffix == ".parquet":
        return pd.read_parquet(path).astype(str)
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, dtype=str, encoding=encoding, keep_default_na=False)
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"cannot decode {path}")


def identifying_values(source: str, path: Path) -> set[str]:
    """Every raw and normalised ID, name and birth date of a sample input, in the spellings a leak would take."""
    schema = load_schema(source)
    headers = schema.header_map()
    frame = read_raw(path)
    frame.columns = [headers.get(str(c).strip().casefold(), str(c)) for c in frame.columns]
    found: set[str] = set()
    for entity in schema.entities:
        for role, column in (("id", entity.id), ("name", entity.person_name), ("date", entity.birth_date)):
            if not column or column not in frame:
                continue
            for raw in frame[column].dropna().astype(str):
                raw = raw.strip()
                if not raw or raw.lower() == "nan":
                    continue
                if role == "id":
                    found.add(raw)
                    result = normalize_id(raw)
                    if result.value:
                        found.add(result.value)
                        found.add(result.value[:17])
                        if len(result.value) == 18:
                            born = result.value[6:14]
                            found.update(_date_spellings(born))
                elif role == "name":
                    if len(raw) >= 2:
                        found.add(raw)
                    normalised = normalize_name(raw)
                    if normalised and len(normalised) >= 2:
                        found.add(normalised)
                else:
                    found.add(raw)
                    parsed, _ = parse_date(raw)
                    if parsed:
                        found.update(_date_spellings(parsed.strftime("%Y%m%d")))
    return {value for value in found if len(value) >= 2}


def _date_spellings(yyyymmdd: str) -> set[str]:
    try:
        day = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return set()
    return {day.strftime("%Y%m%d"), day.isoformat(), day.strftime("%Y/%m/%d"), f"{day.year}年{day.month}月{day.day}日"}


def parquet_texts(path: Path) -> list[str]:
    """Every decoded text/binary cell and the footer metadata of a Parquet file (compressed pages hide raw bytes).

    Clear date attributes (``event_date``) are left out: they are allowed in clear, and in a small population a
    registration date can equal somebody's birth date by coincidence.
    """
    texts: list[str] = []
    parquet = pq.ParquetFile(path)
    for key, value in (parquet.metadata.metadata or {}).items():
        texts.append(key.decode("utf-8", "replace"))
        texts.append(value.decode("utf-8", "replace"))
    table = parquet.read()
    for column in table.columns:
        for value in column.to_pylist():
            if isinstance(value, bytes):
                texts.append(value.decode("latin-1"))
            elif isinstance(value, str):
                texts.append(value)
    return texts


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("sample_run")
    capture: list[str] = []
    import contextlib
    import io

    def run(args: list[str]) -> int:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
        capture.extend([stdout.getvalue(), stderr.getvalue()])
        return code

    assert run(["key", "new", "-o", str(out / "shared.key")]) == 0
    for source in SOURCES:
        code = run(["hash", source, str(sample_file(source)), "--key", str(out / "shared.key"), "-o",
                    str(out / f"{source}.parquet"), "--rejects", str(out / f"{source}.rejects.csv")])
        assert code == 0, capture[-1]
    extracts = [str(out / f"{s}.parquet") for s in SOURCES if s != "claims"]
    assert run(["verify", "--claims", str(out / "claims.parquet"), *extracts, "-o", str(out / "flags.csv"),
                "--report", str(out / "report.html")]) == 0, capture[-1]
    assert run(["verify", "--claims", str(out / "claims.parquet"), *extracts, "-o", str(out / "flags.xlsx")]) == 0
    assert run(["verify", "--claims", str(out / "claims.parquet"), *extracts, "-o", str(out / "flags_en.xlsx"),
                "--report", str(out / "report_en.html"), "--lang", "en"]) == 0, capture[-1]
    return {"out": out, "console": capture}


def xlsx_texts(path: Path) -> dict[str, str]:
    """Every part of a workbook, decompressed (the zip container hides the raw bytes)."""
    with zipfile.ZipFile(path) as archive:
        return {f"{path.name}:{name}": archive.read(name).decode("utf-8", "replace") for name in archive.namelist()}


def test_sample_job_produces_flags_for_every_claim(sample_run):
    flags = pd.read_csv(sample_run["out"] / "flags.csv", dtype=str, encoding="utf-8-sig")
    claims = read_raw(sample_file("claims"))
    assert len(flags) > 0
    rejected_claims = pd.read_csv(sample_run["out"] / "claims.rejects.csv")
    assert len(flags) + len(rejected_claims) == len(claims)
    assert set(flags["status"]) >= {"verified", "rejected"}


def test_no_raw_identifier_in_any_artefact(sample_run):
    out: Path = sample_run["out"]
    secrets = set()
    for source in SOURCES:
        secrets |= identifying_values(source, sample_file(source))
    assert len(secrets) > 100  # the scan really has something to look for
    artefacts: dict[str, str] = {}
    for path in sorted(out.iterdir()):
        if path.name == "shared.key":
            continue
        if path.suffix == ".parquet":
            artefacts[path.name] = "\n".join(parquet_texts(path))
            artefacts[path.name + " (bytes)"] = path.read_bytes().decode("latin-1")
        elif path.suffix == ".xlsx":
            artefacts.update(xlsx_texts(path))
            artefacts[path.name] = "\n".join(pd.read_excel(path, sheet_name=None, dtype=str, header=None)
                                             .__getitem__(sheet).fillna("").to_csv()
                                             for sheet in pd.ExcelFile(path).sheet_names)
        else:
            artefacts[path.name] = path.read_bytes().decode("utf-8", "replace")
    artefacts["console"] = "\n".join(sample_run["console"])
    assert {"flags.csv", "flags.xlsx", "flags_en.xlsx", "report.html", "report_en.html", "claims.parquet",
            "education.rejects.csv", "flags.xlsx:xl/worksheets/sheet2.xml"} <= set(artefacts)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
    leaks = {name: sorted(set(pattern.findall(text)))[:5] for name, text in artefacts.items() if pattern.search(text)}
    assert leaks == {}


def test_scan_would_catch_a_leak(sample_run, tmp_path):
    """The scan is not vacuous: a file that does contain a raw ID and a name is caught."""
    claims = read_raw(sample_file("claims"))
    secrets = identifying_values("claims", sample_file("claims"))
    planted = next(v for v in secrets if re.fullmatch(r"[0-9]{17}[0-9X]", v))
    text = f"claim,{planted},{claims.iloc[0, 0]}"
    pattern = re.compile("|".join(re.escape(s) for s in secrets))
    assert pattern.search(text)


class _Terminal(io.StringIO):
    """Standard error as an interactive terminal, where `matchkit verify` draws its progress bar."""

    def isatty(self) -> bool:
        return True


def test_verify_on_a_terminal_shows_its_stages_and_no_value(sample_run, monkeypatch):
    """On a terminal verify names each stage in a tqdm bar (tested against None, never for truth) and still
    writes its outputs; what the bar shows holds no identifying value."""
    out: Path = sample_run["out"]
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    extracts = [str(out / f"{s}.parquet") for s in SOURCES if s != "claims"]
    code = main(["verify", "--claims", str(out / "claims.parquet"), *extracts, "-o", str(out / "tty_flags.xlsx"),
                 "--report", str(out / "tty_report.html")])
    shown = terminal.getvalue()
    assert code == 0, shown
    for stage in ("verify: reading hashed files", "linking subjects", "writing tty_flags.xlsx",
                  "writing tty_report.html"):
        assert stage in shown, stage
    secrets = set()
    for source in SOURCES:
        secrets |= identifying_values(source, sample_file(source))
    assert not [s for s in secrets if s in shown]
    assert (out / "tty_flags.xlsx").stat().st_size > 0 and (out / "tty_report.html").stat().st_size > 0
    for name in ("tty_flags.xlsx", "tty_report.html"):
        (out / name).unlink()  # the artefact scan above sees the same outputs already


def test_workbook_and_worklist_hold_the_flags_of_the_sample_job(sample_run):
    """End to end: the workbook holds exactly the CSV flags (Chinese by default, English with --lang en), and the
    page's worklist holds every line of the sample job that is not verified."""
    import json

    out: Path = sample_run["out"]
    flags = pd.read_csv(out / "flags.csv", dtype={"claim_id": str}, encoding="utf-8-sig")
    book = pd.read_excel(out / "flags.xlsx", sheet_name="核验明细", dtype={"申报编号": str})
    assert book["申报编号"].tolist() == flags["claim_id"].tolist()
    assert book["核验结果代码"].tolist() == flags["status"].tolist()
    assert book["原因代码"].fillna("").tolist() == flags["reasons"].fillna("").tolist()
    assert book["核定金额（元）"].round(2).tolist() == flags["allowed_amount"].round(2).tolist()
    english = pd.read_excel(out / "flags_en.xlsx", sheet_name="Flags", dtype={"Claim ID": str})
    assert english["Claim ID"].tolist() == flags["claim_id"].tolist() and "Suggested check" in english.columns
    page = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="worklist-data">(.*?)</script>', page, re.DOTALL).group(1))
    assert sorted(row[0] for row in data["rows"]) == sorted(flags.loc[flags["status"] != "verified", "claim_id"])
    assert "flags.csv" in data["flags"]


def test_run_table_lists_the_whole_file_digest_verify_checked(sample_run):
    """The run table of the page and the workbook names each input by the whole-file digest (format 2) that
    ``open_hashed`` recomputed, so staff can match the report to the files it was made from."""
    from matchkit.io.hashed.reader import open_hashed

    out: Path = sample_run["out"]
    page = (out / "report.html").read_text(encoding="utf-8")
    book = "".join(xlsx_texts(out / "flags.xlsx").values())
    for source in SOURCES:
        digest = open_hashed(out / f"{source}.parquet").digest
        assert digest is not None and len(digest) == 64
        assert digest in page and digest in book
