"""Full, then differences (全额/差额): deltas by stable row id, merged in order, equal to a full seal of the latest."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.jobs.keyless import request_file, seal_file
from matchkit.keyless.answer import answer_file
from matchkit.keyless.common import KeylessError, new_oprf_key
from matchkit.keyless.opener import open_request
from matchkit.keyless.sealed import merge_tables, open_sealed
from tests.test_privacy import sample_file


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("delta")
    with open(sample_file("education"), encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    v1 = rows[:-30]
    v2 = v1[10:] + rows[-30:-15]  # 10 removed, 15 added
    v2[5] = [*v2[5][:5], "2024-06"]  # one changed: an enrolment ended
    v3 = v2[3:] + rows[-15:]  # 3 more removed, 15 more added
    paths = {name: _write(out / f"{name}.csv", header, rows_) for name, rows_ in
             (("v1", v1), ("v2", v2), ("v3", v3))}
    key = new_oprf_key()
    t1 = seal_file("education", paths["v1"], key, out / "t1.parquet", tax_year=2024)
    d2 = seal_file("education", paths["v2"], key, out / "d2.parquet", tax_year=2024, previous=out / "t1.parquet")
    merge_tables(out / "t1.parquet", [out / "d2.parquet"], out / "m2.parquet")
    d3 = seal_file("education", paths["v3"], key, out / "d3.parquet", tax_year=2024, previous=out / "m2.parquet")
    merge_tables(out / "t1.parquet", [out / "d2.parquet", out / "d3.parquet"], out / "m3.parquet")
    seal_file("education", paths["v3"], key, out / "f3.parquet", tax_year=2024)
    return {"out": out, "key": key, "t1": t1, "d2": d2, "d3": d3, "paths": paths}


def test_a_delta_holds_only_the_differences(versions: dict) -> None:
    d2 = versions["d2"]
    assert d2.manifest["table_kind"] == "delta"
    assert d2.rows_added == 16  # 15 added + 1 changed (a changed row is removed and added)
    assert d2.rows_removed == 11  # 10 removed + the changed row's old version
    d3 = versions["d3"]
    assert d3.rows_removed == 3 and 13 <= d3.rows_added <= 15  # some of the sample's new rows are rejects
    previous_rows = len(open_sealed(versions["out"] / "m2.parquet").rows)
    assert previous_rows - d3.rows_removed + d3.rows_added == d3.rows_sealed
    assert d3.rows_in == d3.rows_sealed + d3.rows_rejected  # every row of the latest extract accounted for


def _opened_rows(versions: dict, table: str, name: str) -> list[tuple]:
    out: Path = versions["out"]
    if not (out / "state").exists():
        request_file(sample_file("claims"), out / "request.parquet", out / "state")
        answer_file(out / "request.parquet", versions["key"], out / "answer.parquet")
    open_request(out / "state", {"education": out / "answer.parquet"}, {"education": out / table}, out / name)
    opened = pq.read_table(out / name / "education.parquet").drop(["_line"]).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items())) for row in opened)


def test_merged_deltas_open_the_same_rows_as_a_full_seal_of_the_latest(versions: dict) -> None:
    merged = open_sealed(versions["out"] / "m3.parquet")
    full = open_sealed(versions["out"] / "f3.parquet")
    assert set(merged.rows) == set(full.rows)  # the same stable row ids
    assert len(merged.chain) == 3 and len(full.chain) == 1
    from_merged = _opened_rows(versions, "m3.parquet", "opened_merged")
    from_full = _opened_rows(versions, "f3.parquet", "opened_full")
    assert from_merged == from_full
    assert len(from_full) > 10


def test_merge_refuses_a_gap_a_reordering_another_key_and_another_source(versions: dict, tmp_path: Path) -> None:
    out: Path = versions["out"]
    with pytest.raises(KeylessError, match="gap"):
        merge_tables(out / "t1.parquet", [out / "d3.parquet"], tmp_path / "x.parquet")
    with pytest.raises(KeylessError, match="reordered or applied twice"):
        merge_tables(out / "m3.parquet", [out / "d2.parquet"], tmp_path / "x.parquet")
    with pytest.raises(KeylessError, match="gap"):
        merge_tables(out / "t1.parquet", [out / "d3.parquet", out / "d2.parquet"], tmp_path / "x.parquet")
    with pytest.raises(KeylessError, match="not a delta"):
        merge_tables(out / "t1.parquet", [out / "m2.parquet"], tmp_path / "x.parquet")
    other = new_oprf_key()
    seal_file("education", versions["paths"]["v1"], other, tmp_path / "o1.parquet", tax_year=2024)
    seal_file("education", versions["paths"]["v2"], other, tmp_path / "o2.parquet", tax_year=2024,
              previous=tmp_path / "o1.parquet")
    with pytest.raises(KeylessError, match="key_fingerprint"):
        merge_tables(out / "t1.parquet", [tmp_path / "o2.parquet"], tmp_path / "x.parquet")
    with pytest.raises(KeylessError, match="another agency key"):
        seal_file("education", versions["paths"]["v2"], other, tmp_path / "x.parquet", tax_year=2024,
                  previous=out / "t1.parquet")
    with pytest.raises(KeylessError, match="another source"):
        seal_file("only_child", sample_file("only_child"), versions["key"], tmp_path / "x.parquet", tax_year=2024,
                  previous=out / "t1.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_merge_through_the_cli(versions: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out: Path = versions["out"]
    code = main(["seal", "--merge", str(out / "t1.parquet"), str(out / "d2.parquet"), str(out / "d3.parquet"),
                 "-o", str(tmp_path / "m.parquet")])
    assert code == 0
    assert "chain of 3 seals" in capsys.readouterr().out
    assert main(["seal", "--merge", str(out / "t1.parquet"), str(out / "d3.parquet"), "-o",
                 str(tmp_path / "n.parquet")]) == 1
    assert "gap" in capsys.readouterr().err
