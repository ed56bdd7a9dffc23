"""seal streams its input chunk by chunk: the table it writes opens exactly the rows a one-chunk seal opens.

Row ids (with the occurrence numbers of repeated identical rows) and the occurrence numbers of evidence inputs are
counted over the whole input, across chunks; rows and entries are spilled to temporary files beside the output and
written in row-id and tag order at the end (the spill folder is removed)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.jobs.keyless import request_file, seal_file
from matchkit.keyless.answer import answer_file
from matchkit.keyless.common import new_oprf_key, write_oprf_key
from matchkit.keyless.opener import open_request
from matchkit.keyless.sealed import _Counts, open_sealed
from tests.test_privacy import identifying_values, parquet_texts, sample_file


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("stream")
    with open(sample_file("education"), encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    # identical rows far apart (different chunks) and side by side: their occurrence numbers span chunks
    rows = [*rows, rows[0], rows[1], rows[1], rows[len(rows) // 2]]
    extract = out / "education.csv"
    with open(extract, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    key = new_oprf_key()
    write_oprf_key(key, out / "agency.oprf")
    whole = seal_file("education", extract, key, out / "whole.parquet", tax_year=2024)
    chunked = seal_file("education", extract, key, out / "chunked.parquet", tax_year=2024, chunk_rows=7)
    # sealing and answering as tasks of the scheduler layer (Dask's multiprocessing scheduler)
    assert main(["seal", "education", str(extract), "--oprf-key", str(out / "agency.oprf"), "--tax-year", "2024",
                 "-o", str(out / "scheduled.parquet"), "--scheduler", "processes"]) == 0
    request_file(sample_file("claims"), out / "request.parquet", out / "state", tax_year=2024)
    answer_file(out / "request.parquet", key, out / "answer.parquet")
    assert main(["answer", str(out / "request.parquet"), "--oprf-key", str(out / "agency.oprf"), "-o",
                 str(out / "answer_scheduled.parquet"), "--scheduler", "processes"]) == 0
    for name in ("whole", "chunked", "scheduled"):
        open_request(out / "state", {"education": out / "answer.parquet"},
                     {"education": out / f"{name}.parquet"}, out / f"opened_{name}")
    open_request(out / "state", {"education": out / "answer_scheduled.parquet"},
                 {"education": out / "whole.parquet"}, out / "opened_answer_scheduled")
    return {"out": out, "whole": whole, "chunked": chunked, "rows": len(rows)}


def test_a_chunked_seal_opens_the_same_rows(sealed: dict) -> None:
    out = sealed["out"]
    whole = pq.read_table(out / "opened_whole" / "education.parquet")
    chunked = pq.read_table(out / "opened_chunked" / "education.parquet")
    assert whole.num_rows > 0
    assert whole.equals(chunked)


def test_a_chunked_seal_has_the_same_row_ids_and_entries(sealed: dict) -> None:
    out = sealed["out"]
    whole, chunked = open_sealed(out / "whole.parquet"), open_sealed(out / "chunked.parquet")
    assert set(whole.rows) == set(chunked.rows)  # repeated rows numbered across chunks, as in one chunk
    assert len(whole.entry_tags) == len(chunked.entry_tags) == sealed["whole"].entries
    assert sealed["chunked"].rows_sealed == sealed["whole"].rows_sealed
    assert sealed["whole"].rows_in == sealed["rows"]
    # rows in row-id order and entries in tag order in the file, whatever the chunks
    table = pq.read_table(out / "chunked.parquet")
    kinds = table.column("kind").to_pylist()
    row_ids = [r for r, k in zip(table.column("row_id").to_pylist(), kinds) if k == 0]
    tags = [t for t, k in zip(table.column("tag").to_pylist(), kinds) if k == 1]
    assert row_ids == sorted(row_ids) and tags == sorted(tags)


def test_no_spill_is_left_behind(sealed: dict) -> None:
    assert not list(sealed["out"].glob(".matchkit-seal-*"))


def test_counts_over_many_runs() -> None:
    counts = _Counts()
    seen: dict[bytes, int] = {}
    for chunk in range(40):
        keys = [bytes([k % 7, chunk % 3]) * 8 for k in range(chunk % 11 + 1)]
        keys = list(dict.fromkeys(keys))
        before = counts.add(keys, [2] * len(keys))
        assert before == [seen.get(k, 0) for k in keys]
        for k in keys:
            seen[k] = seen.get(k, 0) + 2
    assert counts.occurrences([b"a" * 16, b"b" * 16, b"a" * 16]) == [0, 0, 1]
    assert counts.occurrences([b"a" * 16]) == [2]


def test_sealing_and_answering_on_the_scheduler_open_the_same_rows(sealed: dict) -> None:
    out = sealed["out"]
    whole = pq.read_table(out / "opened_whole" / "education.parquet")
    assert pq.read_table(out / "opened_scheduled" / "education.parquet").equals(whole)
    assert pq.read_table(out / "opened_answer_scheduled" / "education.parquet").equals(whole)
    # the answers themselves are equal element for element: BlindEvaluate is deterministic
    assert pq.read_table(out / "answer_scheduled.parquet").equals(pq.read_table(out / "answer.parquet"))


def test_a_partitioned_table_opens_the_same_rows(sealed: dict, tmp_path: Path) -> None:
    """``seal -o DIR/`` writes one part per bucket; open, merge and --previous read the folder as one table."""
    out = sealed["out"]
    folder = tmp_path / "table"
    assert main(["seal", "education", str(out / "education.csv"), "--oprf-key", str(out / "agency.oprf"),
                 "--tax-year", "2024", "-o", f"{folder}/"]) == 0
    parts = sorted(folder.glob("part-*.parquet"))
    assert len(parts) == 16
    table = open_sealed(folder)
    whole = open_sealed(out / "whole.parquet")
    assert set(table.rows) == set(whole.rows) and len(table.entry_tags) == len(whole.entry_tags)
    open_request(out / "state", {"education": out / "answer.parquet"}, {"education": folder}, tmp_path / "opened")
    assert pq.read_table(tmp_path / "opened" / "education.parquet").equals(
        pq.read_table(out / "opened_whole" / "education.parquet"))
    # a delta against the folder, merged into one file: the same rows again
    assert main(["seal", "education", str(out / "education.csv"), "--oprf-key", str(out / "agency.oprf"),
                 "--tax-year", "2024", "--previous", str(folder), "-o", str(tmp_path / "delta.parquet")]) == 0
    assert open_sealed(tmp_path / "delta.parquet").rows == {}
    # privacy: no raw ID, name or birth date of the extract in any part (as for every keyless artefact)
    raw = identifying_values("education", sample_file("education"))
    pattern = re.compile("|".join(re.escape(v) for v in sorted(raw, key=len, reverse=True)))
    for part in parts:
        text = "\n".join(parquet_texts(part)) + part.read_bytes().decode("latin-1")
        assert not pattern.search(text), part.name
    # a missing part is refused, naming the folder
    parts[3].unlink()
    with pytest.raises(Exception, match="part is missing"):
        open_sealed(folder)


def test_a_seal_whose_content_cache_overflows_opens_the_same_rows(sealed: dict, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache of content values between chunks is bounded: cleared when full, what it held is evaluated again."""
    import matchkit.keyless.sealed as sealed_module
    from matchkit.keyless.common import load_oprf_key

    out = sealed["out"]
    monkeypatch.setattr(sealed_module, "_Z_CACHE", 5)
    small = seal_file("education", out / "education.csv", load_oprf_key(out / "agency.oprf"),
                      tmp_path / "small.parquet", tax_year=2024, chunk_rows=7)
    assert small.manifest["oprf_evaluations"] > sealed["chunked"].manifest["oprf_evaluations"]
    open_request(out / "state", {"education": out / "answer.parquet"}, {"education": tmp_path / "small.parquet"},
                 tmp_path / "opened")
    assert pq.read_table(tmp_path / "opened" / "education.parquet").equals(
        pq.read_table(out / "opened_whole" / "education.parquet"))
