"""Encoding in worker processes (matchkit.jobs.encoding) gives exactly what encoding in this process gives, for
every schema and every input format; and worker code never needs pandas (``matchkit.runtime.process.withhold_pandas``).

Also the row checks of the claims and education sources (claim period, amounts, enrolment order), rewritten from
pandas nullable arrays to numpy: equal to the former pandas version on any parsed values, and end to end on the
cases the rewrite touches (a period bound filled from the tax year, a missing tax year, reversed periods, NaN
amounts).
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from matchkit.encode.person import ENCODING_VERSION, Encoder
from matchkit.encode.person_table import Faults, TableEncoder
from matchkit.io.readers import RawReader, resolve_encoding
from matchkit.jobs import encoding as parallel
from matchkit.jobs.encoding import EncodedChunk, encode_chunks, make_table_encoder
from matchkit.jobs.hash import hash_file
from matchkit.runtime.workers import pool_context
from matchkit.schema import load_schema
from matchkit.security.keys import SharedKey
from matchkit.synth import generate
from tests.conftest import make_id

REPO = Path(__file__).resolve().parents[1]
FEBRL = REPO / "matchkit" / "data" / "schemas" / "febrl.toml"
KEY = SharedKey("mk-test", bytes(range(32)))
BUILT_IN = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")
SOURCES = ("febrl", *BUILT_IN)
FORMATS = ("csv", "xlsx", "parquet")
CHUNK_ROWS = 16  # XLSX and Parquet: several chunks even for the smallest input
BLOCKS = 6       # CSV: block_bytes = file size / BLOCKS


def schema_ref(source: str) -> str | Path:
    return FEBRL if source == "febrl" else source


# --- inputs -----------------------------------------------------------------------------------------------------
FEBRL_HEADER = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
                "state", "date_of_birth", "soc_sec_id"]
SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "sul", "vor", "bel", "dan", "fir", "gus", "hal", "jin", "kor"]


def febrl_rows(count: int, seed: int) -> list[list[str]]:
    """FEBRL-like rows with repeats (values come from small pools), blanks, and values that are rejected (a bad
    social security id, a CJK name with a digit, no record id) or kept as invalid (an impossible date, a street
    number with letters)."""
    rng = np.random.default_rng(seed)

    def word(parts: int) -> str:
        return "".join(rng.choice(SYLLABLES, parts))

    given, surnames, streets, suburbs = ([word(3) for _ in range(n)] for n in (40, 60, 80, 12))
    rows = []
    for index in range(count):
        born = datetime.date(1930, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 365 * 70)))
        row = {
            "rec_id": f"rec-{index}-org",
            "given_name": str(rng.choice(given)).capitalize() if rng.random() > 0.05 else "",
            "surname": str(rng.choice(surnames)).upper(),
            "street_number": str(int(rng.integers(1, 60))) if rng.random() > 0.1 else "",
            "address_1": f"{rng.choice(streets)} street",
            "address_2": f"{word(2)} village" if index % 4 == 0 else "",
            "suburb": str(rng.choice(suburbs)),
            "postcode": str(int(rng.integers(2000, 2030))),
            "state": str(rng.choice(["nsw", "vic", "qld", ""])),
            "date_of_birth": born.strftime("%Y%m%d") if index % 2 else born.isoformat(),
            "soc_sec_id": str(int(rng.integers(1_000_000, 1_000_300))),
        }
        if index % 37 == 5:
            row["soc_sec_id"] = "4411#2233"             # invalid id: rejected
        if index % 41 == 7:
            row["given_name"] = "张3"                    # invalid name: rejected
        if index % 43 == 11:
            row["rec_id"] = ""                          # required record id missing: rejected
        if index % 29 == 3:
            row["date_of_birth"] = "19450493"           # not a date: kept as invalid, counted
        if index % 31 == 2:
            row["street_number"] = "12a"                # kept as invalid, counted
        rows.append([row[name] for name in FEBRL_HEADER])
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    return path


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding=resolve_encoding(path), newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


SHORT_NUMBER = re.compile(r"[1-9][0-9]{0,8}")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def xlsx_cell(text: str) -> object:
    """What a spreadsheet would hold: numbers and dates as such, empty cells empty."""
    if not text:
        return None
    if SHORT_NUMBER.fullmatch(text):
        return int(text)
    if ISO_DATE.fullmatch(text):
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            return text
    return text


def write_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append([xlsx_cell(v) for v in row])
    workbook.save(path)
    return path


def write_parquet(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Text columns with empty cells as nulls; a column of short whole numbers as int64 (read back as text)."""
    arrays = []
    for position in range(len(header)):
        column = [row[position] for row in rows]
        present = [v for v in column if v]
        if present and all(SHORT_NUMBER.fullmatch(v) for v in present):
            arrays.append(pa.array([int(v) if v else None for v in column], type=pa.int64()))
        else:
            arrays.append(pa.array([v or None for v in column], type=pa.string()))
    pq.write_table(pa.Table.from_arrays(arrays, names=header), path)
    return path


def with_bad_rows(header: list[str], rows: list[list[str]]) -> list[list[str]]:
    """The rows with copies of some of them spread through the file, made to be rejected: an Excel-damaged ID, a
    missing ID, and for claims a reversed period and no amount."""
    id_column = next(i for i, name in enumerate(header) if name.endswith("_id") and name != "claim_id")
    changes: list[dict[str, str]] = [{header[id_column]: "1.10105E+17"}, {header[id_column]: ""}]
    if header[0] == "claim_id":
        changes += [{"tax_year": "2024", "period_start": "2024-09", "period_end": "2024-03"},
                    {"monthly_amount": "", "annual_amount": ""}]
    out = list(rows)
    for number, change in enumerate(changes):
        position = (number + 1) * len(rows) // (len(changes) + 1)
        values = dict(zip(header, rows[position]))
        values.update(change)
        if header[0] == "claim_id":
            values["claim_id"] += f"-bad{number}"
        out.insert(position + number, [values[name] for name in header])
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every source in every format: FEBRL-like rows, and the synthetic verify sources, with rows to reject."""
    folder = tmp_path_factory.mktemp("parallel")
    synthetic = generate(120, 11, folder / "synth", noise=0.5, formats="csv", defect_rate=0.3)
    paths = {("febrl", "csv"): write_csv(folder / "febrl.csv", FEBRL_HEADER, febrl_rows(300, 5))}
    for source in BUILT_IN:
        header, rows = read_csv(synthetic[source])
        paths[source, "csv"] = write_csv(folder / f"{source}.csv", header, with_bad_rows(header, rows))
    for source in SOURCES:
        header, rows = read_csv(paths[source, "csv"])
        paths[source, "xlsx"] = write_xlsx(folder / f"{source}.xlsx", header, rows)
        paths[source, "parquet"] = write_parquet(folder / f"{source}.parquet", header, rows)
    return paths


# --- a: the worker path equals the in-process path --------------------------------------------------------------
def encode_all(path: Path, source: str, workers: int) -> list[EncodedChunk]:
    schema = load_schema(schema_ref(source))
    reader = RawReader(path, schema, chunk_rows=CHUNK_ROWS)
    reader.block_bytes = max(64, path.stat().st_size // BLOCKS)
    table_encoder = make_table_encoder(schema, Encoder(KEY, schema.purpose, ENCODING_VERSION))
    return list(encode_chunks(reader, table_encoder, KEY, schema.purpose, workers=workers))


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker counts of the process pools ``encode_chunks`` starts."""
    started: list[int] = []

    class Recorded(ProcessPoolExecutor):
        def __init__(self, max_workers: int, **options: Any) -> None:
            started.append(max_workers)
            super().__init__(max_workers, **options)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Recorded)
    return started


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", SOURCES)
def test_workers_give_the_same_tables_and_faults(inputs: dict[tuple[str, str], Path], pools: list[int],
                                                 source: str, fmt: str) -> None:
    path = inputs[source, fmt]
    here = encode_all(path, source, workers=1)
    assert pools == []
    there = encode_all(path, source, workers=2)
    assert pools == [2]  # the worker path was taken

    assert len(here) >= 3 and len(there) == len(here)
    for (rows_here, (table_here, faults_here, notes_here)), (rows_there, (table_there, faults_there, notes_there)) \
            in zip(here, there, strict=True):
        assert rows_there == rows_here
        assert table_there.schema == table_here.schema
        assert table_there.equals(table_here)
        assert faults_there == faults_here
        assert notes_there == notes_here
    hashed = sum(table.num_rows for _, (table, _, _) in here)
    faults = [fault for _, (_, chunk_faults, _) in here for fault in chunk_faults]
    assert sum(rows for rows, _ in here) == hashed + len(faults)
    assert hashed > 0 and faults
    if source == "febrl":
        reasons = {reason for _, _, reason in faults}
        assert {"invalid_id", "invalid_name", "missing_value"} <= reasons
        notes: dict[str, int] = {}
        for _, (_, _, chunk_notes) in here:
            for note, count in chunk_notes.items():
                notes[note] = notes.get(note, 0) + count
        assert notes.get("kept_invalid:date_of_birth", 0) > 0 and notes.get("kept_invalid:street_number", 0) > 0


def test_a_real_worker_has_no_pandas(inputs: dict[tuple[str, str], Path]) -> None:
    """A worker of the real pool (preloaded fork server, ``_init_worker``) encodes without pandas, and cannot
    import it."""
    schema = load_schema(FEBRL)
    reader = RawReader(inputs["febrl", "csv"], schema)
    reader.block_bytes = 4096
    layout = reader.csv_layout()
    units = list(reader.csv_blocks())
    init_args = (schema, KEY, schema.purpose, ENCODING_VERSION, layout)
    with ProcessPoolExecutor(1, mp_context=pool_context(), initializer=parallel._init_worker,
                             initargs=init_args) as pool:
        encoded = [pool.submit(parallel._encode_in_worker, unit).result() for unit in units]
        assert sum(table.num_rows for _, (table, _, _) in encoded) > 0
        assert pool.submit(eval, "'pandas' in __import__('sys').modules").result() is False
        with pytest.raises(ImportError, match="pandas is withheld"):
            pool.submit(exec, "import pandas").result()


# --- b: the code a worker runs never needs pandas ---------------------------------------------------------------
WITHOUT_PANDAS = textwrap.dedent("""
    import json, sys

    from matchkit.runtime.process import withhold_pandas

    withhold_pandas()
    from matchkit.security.keys import SharedKey
    from matchkit.jobs.hash import hash_file

    key = SharedKey("mk-test", bytes(range(32)))
    results = []
    for schema, path, output in json.loads(sys.argv[1]):
        result = hash_file(schema, path, key, output, rejects_path=output + ".rejects.csv", chunk_rows=16,
                           workers=1)
        results.append([result.rows_in, result.rows_hashed, result.rows_rejected])
    try:
        import pandas  # noqa: F401
    except ImportError:
        withheld = True
    else:
        withheld = False
    print(json.dumps({"results": results, "pandas_loaded": "pandas" in sys.modules, "withheld": withheld}))
""")


def test_hashing_every_input_without_pandas(inputs: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    jobs = [(str(schema_ref(source)), str(inputs[source, fmt]), str(tmp_path / f"{source}-{fmt}.parquet"))
            for source in SOURCES for fmt in FORMATS]
    run = subprocess.run([sys.executable, "-c", WITHOUT_PANDAS, json.dumps(jobs)], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["pandas_loaded"] is False
    assert report["withheld"] is True  # pandas is installed: the finder, not its absence, kept it out
    assert len(report["results"]) == len(jobs)
    for (schema, path, _), (rows_in, rows_hashed, rows_rejected) in zip(jobs, report["results"], strict=True):
        assert rows_hashed > 0, path
        assert rows_in == rows_hashed + rows_rejected, path
    # the same hashed rows as this process, which has pandas
    for schema, path, output in jobs[:: len(FORMATS)]:
        here = hash_file(schema, path, KEY, tmp_path / "here.parquet", chunk_rows=16, workers=1)
        assert pq.read_table(output).equals(pq.read_table(here.output)), path


# --- row checks: the numpy rewrite against the former pandas version --------------------------------------------
def pandas_claim_period(clear: dict[str, list[Any]]) -> tuple[dict[tuple[str, str], list[bool]], list[Any],
                                                               list[Any]]:
    """The former (pandas) ``TableEncoder._check_claim_period``: faults, filled period_start and period_end."""
    import pandas as pd

    year = pd.array(clear["tax_year"], dtype="Int64")
    start = pd.array(clear["period_start"], dtype="Int64")
    end = pd.array(clear["period_end"], dtype="Int64")
    start = start.fillna(year * 100 + 1) if start.isna().any() else start
    end = end.fillna(year * 100 + 12) if end.isna().any() else end
    masks = {
        ("period_start", "period_outside_tax_year"): ((start // 100) != year).fillna(False),
        ("period_end", "period_outside_tax_year"): ((end // 100) != year).fillna(False),
        ("period_end", "period_reversed"): (end < start).fillna(False),
    }
    faults = {key: np.asarray(mask, dtype=bool).tolist() for key, mask in masks.items() if np.asarray(mask).any()}
    return (faults, [None if pd.isna(v) else int(v) for v in start], [None if pd.isna(v) else int(v) for v in end])


def pandas_claim_amount(clear: dict[str, list[Any]]) -> dict[tuple[str, str], list[bool]]:
    import pandas as pd

    monthly = pd.array(clear["monthly_amount"], dtype="Float64")
    annual = pd.array(clear["annual_amount"], dtype="Float64")
    neither = np.asarray(monthly.isna() & annual.isna(), dtype=bool)
    return {("monthly_amount;annual_amount", "missing_amount"): neither.tolist()} if neither.any() else {}


def pandas_enrolment_order(clear: dict[str, list[Any]]) -> dict[tuple[str, str], list[bool]]:
    import pandas as pd

    start = pd.array(clear["enrolled_from"], dtype="Int64")
    end = pd.array(clear["enrolled_to"], dtype="Int64")
    reversed_ = np.asarray((end < start).fillna(False), dtype=bool)
    return {("enrolled_to", "period_reversed"): reversed_.tolist()} if reversed_.any() else {}


def fault_masks(faults: Faults) -> dict[tuple[str, str], list[bool]]:
    return {(column, reason): mask.tolist() for mask, column, reason in faults.masks}


_ENCODERS: dict[str, TableEncoder] = {}


def table_encoder(source: str) -> TableEncoder:
    if source not in _ENCODERS:
        schema = load_schema(source)
        _ENCODERS[source] = TableEncoder(schema, Encoder(KEY, schema.purpose, ENCODING_VERSION))
    return _ENCODERS[source]


YEAR = st.one_of(st.none(), st.just(math.nan), st.integers(2019, 2026))
MONTH = st.one_of(st.none(), st.just(math.nan),
                  st.builds(lambda y, m: y * 100 + m, st.integers(2018, 2027), st.integers(1, 12)))
AMOUNT = st.one_of(st.none(), st.just(math.nan), st.floats(0, 1e6), st.just(0.0))


@st.composite
def columns(draw: st.DrawFn, names: dict[str, st.SearchStrategy[Any]]) -> dict[str, list[Any]]:
    rows = draw(st.integers(0, 12))
    return {name: draw(st.lists(values, min_size=rows, max_size=rows)) for name, values in names.items()}


@given(columns({"tax_year": YEAR, "period_start": MONTH, "period_end": MONTH}))
@example({"tax_year": [2024, 2024, 2024, None, 2024, math.nan, None],
          "period_start": [None, 202403, None, 202409, 202409, None, None],
          "period_end": [None, None, 202312, 202403, 202403, 202412, None]})
def test_claim_period_equals_the_pandas_version(clear: dict[str, list[Any]]) -> None:
    clear = {name: list(values) for name, values in clear.items()}  # the check fills the period in place
    expected_faults, expected_start, expected_end = pandas_claim_period(clear)
    faults = Faults(len(clear["tax_year"]))
    table_encoder("claims")._check_claim_period(clear, faults)
    assert fault_masks(faults) == expected_faults
    assert clear["period_start"] == expected_start
    assert clear["period_end"] == expected_end
    assert all(v is None or type(v) is int for v in clear["period_start"] + clear["period_end"])


@given(columns({"monthly_amount": AMOUNT, "annual_amount": AMOUNT}))
@example({"monthly_amount": [math.nan, None, math.nan, 0.0, 1000.0],
          "annual_amount": [None, math.nan, 12000.0, math.nan, None]})
def test_claim_amount_equals_the_pandas_version(clear: dict[str, list[Any]]) -> None:
    size = len(clear["monthly_amount"])
    clear = {name: list(values) for name, values in clear.items()}
    clear.update(deduction=["housing_rent"] * size, education_stage=[None] * size, share=[None] * size)
    expected = pandas_claim_amount(clear)
    faults = Faults(size)
    table_encoder("claims")._check_claim_amount(clear, faults)
    assert fault_masks(faults) == expected
    assert clear["share"] == [1.0] * size


@given(columns({"enrolled_from": MONTH, "enrolled_to": MONTH}))
@example({"enrolled_from": [202209, None, 202209, math.nan], "enrolled_to": [202106, 202106, None, 202106]})
def test_enrolment_order_equals_the_pandas_version(clear: dict[str, list[Any]]) -> None:
    expected = pandas_enrolment_order(clear)
    faults = Faults(len(clear["enrolled_from"]))
    table_encoder("education")._row_checks(clear, {}, faults)
    assert fault_masks(faults) == expected


# --- row checks end to end ----------------------------------------------------------------------------------------
TAXPAYER = make_id("32040219850611004")
CHILD = make_id("32040220150305123")
CLAIMS_HEADER = ["claim_id", "taxpayer_id", "deduction", "tax_year", "period_start", "period_end", "subject_id",
                 "subject_name", "subject_birth_date", "subject_relation", "monthly_amount", "annual_amount",
                 "education_stage"]
# claim id -> (tax_year, period_start, period_end, monthly_amount, annual_amount)
PERIOD_CASES: dict[str, tuple[str, str, str, str, str]] = {
    "C01": ("2024", "2024-03", "", "1000", ""),           # end filled: December of the tax year
    "C02": ("2024", "", "2024-06", "1000", ""),           # start filled: January of the tax year
    "C03": ("2024", "", "", "1000", ""),                  # both filled
    "C04": ("", "2024-01", "2024-12", "1000", ""),        # no tax year: missing, no period fault
    "C05": ("", "2024-09", "2024-03", "1000", ""),        # no tax year, reversed
    "C06": ("", "", "", "1000", ""),                      # no tax year, no period
    "C07": ("2024", "2024-09", "2024-03", "1000", ""),    # reversed
    "C08": ("2024", "", "2023-12", "1000", ""),           # before the filled start, outside the year
    "C09": ("2024", "2025-02", "", "1000", ""),           # after the filled end, outside the year
    "C10": ("2024", "2024-01", "2024-12", "NaN", ""),     # NaN amount, and no other amount
    "C11": ("2024", "2024-01", "2024-12", "nan", "12000"),
    "C12": ("2024", "2024-01", "2024-12", "", "12000"),   # annual amount only
}
EXPECTED_REJECTS = {  # claim id -> (column, reason) as in the rejects file: one row's faults joined by ";"
    "C04": ("tax_year", "missing_value"),
    "C05": ("tax_year;period_end", "missing_value;period_reversed"),
    "C06": ("tax_year", "missing_value"),
    "C07": ("period_end", "period_reversed"),
    "C08": ("period_end;period_end", "period_outside_tax_year;period_reversed"),
    "C09": ("period_start;period_end", "period_outside_tax_year;period_reversed"),
    # "nan" is a null marker written in a cell: a fault of its own; with no annual amount, no amount at all
    "C10": ("monthly_amount;monthly_amount;annual_amount", "empty;missing_amount"),
    "C11": ("monthly_amount", "empty"),
}
EXPECTED_PERIODS = {"C01": (202403, 202412), "C02": (202401, 202406), "C03": (202401, 202412),
                    "C12": (202401, 202412)}


def claims_rows() -> Iterator[list[str]]:
    for claim_id, (year, start, end, monthly, annual) in PERIOD_CASES.items():
        yield [claim_id, TAXPAYER, "children_education", year, start, end, CHILD, "张小明", "2015-03-05", "child",
               monthly, annual, "compulsory"]


def claims_parquet(path: Path) -> Path:
    """The same claims with the amounts as float columns: NaN and null cells, as a Parquet writer would leave them."""
    rows = list(claims_rows())
    arrays = []
    for position, name in enumerate(CLAIMS_HEADER):
        column = [row[position] for row in rows]
        if name.endswith("_amount"):
            arrays.append(pa.array([float(v) if v else None for v in column], type=pa.float64()))
        else:
            arrays.append(pa.array(column, type=pa.string()))
    pq.write_table(pa.Table.from_arrays(arrays, names=CLAIMS_HEADER), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_claim_period_and_amount_rows(tmp_path: Path, fmt: str) -> None:
    source = (write_csv(tmp_path / "claims.csv", CLAIMS_HEADER, list(claims_rows())) if fmt == "csv"
              else claims_parquet(tmp_path / "claims.parquet"))
    result = hash_file("claims", source, KEY, tmp_path / "out.parquet", rejects_path=tmp_path / "rejects.csv",
                       workers=1)
    claim_ids = list(PERIOD_CASES)
    with open(tmp_path / "rejects.csv", encoding="utf-8") as handle:
        rejects = {claim_ids[int(row["line"]) - 2]: (row["column"], row["reason"]) for row in csv.DictReader(handle)}
    assert rejects == EXPECTED_REJECTS
    table = pq.read_table(result.output).to_pylist()
    periods = {row["claim_id"]: (row["period_start"], row["period_end"]) for row in table}
    assert periods == EXPECTED_PERIODS
    assert result.rows_in == len(PERIOD_CASES) and result.rows_rejected == len(EXPECTED_REJECTS)


KEEP_FREED = """
import resource, sys
import numpy as np
from matchkit.runtime.process import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for mebibytes in range(1, 31):  # ever larger temporaries, as a fresh worker meets them
    block = np.ones(mebibytes << 20, dtype=np.uint8)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_reuses_freed_blocks() -> None:
    """After ``keep_freed_memory`` a freed block under 32 MiB stays in the heap and the next, larger one reuses its
    pages; by default a fresh process hands each such block back to the kernel (glibc's moving mmap threshold
    starts at 128 KiB), and every new one faults its pages in again."""
    def faults(mode: str) -> int:
        # 4 KiB pages only: transparent huge pages, when the machine has some free, would blur the count
        environment = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}
        done = subprocess.run([sys.executable, "-c", KEEP_FREED, mode], capture_output=True, text=True, check=True,
                              cwd=REPO, timeout=60, env=environment)
        return int(done.stdout.strip())

    default, kept = faults("default"), faults("keep")
    assert default > 50_000  # ~465 MiB faulted in, page by page
    assert kept * 5 < default  # ~30 MiB: the heap grows to the largest block and is reused
