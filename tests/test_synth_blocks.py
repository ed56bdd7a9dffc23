"""synth in blocks (issue #14): a data set is made of independent blocks of families, each seeded from (seed, block
number) and appended to every output file block by block. The output never depends on the scheduler, a one-block
set is what the generator always wrote, IDs stay unique across blocks, and every file is whole (one header, one
byte-order mark, row counts as declared, faults on the right lines)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.synth import generate
from matchkit.synth.dataset import BlockTask, _registry, block_sizes, build_block
from matchkit.synth.gb11643 import is_valid_id18

N_CLAIMS = 900
BLOCK = 300
SEED = 5


def digests(paths: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("blocks-mixed")
    return generate(N_CLAIMS, SEED, out, noise=0.6, formats="mixed", defect_rate=0.3, block_claims=BLOCK)


def test_block_sizes() -> None:
    assert block_sizes(100_000) == [100_000]
    assert block_sizes(100_001) == [50_000, 50_001]
    sizes = block_sizes(10_000_000)
    assert len(sizes) == 100 and set(sizes) == {100_000}
    sizes = block_sizes(1_234_567, 100_000)
    assert sum(sizes) == 1_234_567 and max(sizes) - min(sizes) <= 1 and len(sizes) == 13


def test_same_bytes_in_this_process_and_on_dask_processes(mixed: dict[str, Path], tmp_path: Path) -> None:
    again = generate(N_CLAIMS, SEED, tmp_path / "inline", noise=0.6, formats="mixed", defect_rate=0.3,
                     block_claims=BLOCK)
    assert digests(again) == digests(mixed)
    on_dask = generate(N_CLAIMS, SEED, tmp_path / "dask", noise=0.6, formats="mixed", defect_rate=0.3,
                       block_claims=BLOCK, scheduler="processes", workers=2)
    assert digests(on_dask) == digests(mixed)


def test_no_work_folder_left(mixed: dict[str, Path]) -> None:
    folder = mixed["claims"].parent
    assert not [p for p in folder.iterdir() if p.name.startswith(".synth-blocks-")]


def test_one_header_one_bom_rows_as_declared(mixed: dict[str, Path]) -> None:
    manifest = json.loads(mixed["manifest"].read_text(encoding="utf-8"))
    assert manifest["blocks"]["count"] == 3
    assert manifest["files"]["household"]["format"] == "csv"  # a set of several blocks: household as CSV
    claims = mixed["claims"].read_bytes().decode("gb18030")
    assert claims.count("申报编号") == 1
    education = mixed["education"].read_bytes()
    assert education.startswith(b"\xef\xbb\xbf") and education.count(b"\xef\xbb\xbf") == 1
    for source, info in manifest["files"].items():
        path = mixed[source]
        if info["format"] == "parquet":
            parquet = pq.ParquetFile(path)
            assert parquet.metadata.num_rows == info["rows"], source
            assert parquet.metadata.num_row_groups == 3  # one per block
        else:
            text = path.read_bytes().decode(info["encoding"] or "utf-8")
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=info["encoding"])
            assert len(frame) == info["rows"] == text.count("\n") - 1, source
    truth = pd.read_csv(mixed["truth"], dtype=str, keep_default_na=False)
    assert len(truth) == N_CLAIMS
    assert sorted(truth["claim_id"]) == [f"SB2024{i:09d}" for i in range(1, N_CLAIMS + 1)]
    frame = pd.read_csv(mixed["claims"], dtype=str, keep_default_na=False, encoding="gb18030")
    assert frame.iloc[:, 0].tolist() == truth["claim_id"].tolist()
    assert sum(manifest["defects"].values()) == N_CLAIMS


def test_faults_on_the_lines_named(mixed: dict[str, Path]) -> None:
    """Fault line numbers continue across blocks: each named line really holds a broken value."""
    faults = pd.read_csv(mixed["injected_faults"], dtype={"line": int})
    assert len(faults) > 0
    for fault in faults.itertuples():
        path = mixed["claims"].parent / fault.file
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path).astype(str)
        else:
            raw = path.read_bytes()
            encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                encoding = "gb18030"
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        columns = list(frame.columns)
        from matchkit.synth.reference import CHINESE_HEADERS

        zh = CHINESE_HEADERS.get(path.stem, {})
        column = zh.get(fault.column, fault.column) if zh.get(fault.column) in columns else fault.column
        value = str(frame.iloc[fault.line - 2][column]).strip()
        if fault.column.endswith("_id"):
            assert not is_valid_id18(value), (fault.file, fault.line)
        elif fault.fault == "month_13":
            assert "13" in value[4:], (fault.file, fault.line)
        elif fault.fault == "invalid_date":
            assert value.endswith("02-30"), (fault.file, fault.line)


def test_first_block_is_the_one_block_set_of_its_size(tmp_path: Path) -> None:
    """Block 0 is seeded as a whole set always was: its claim lines are those of a one-block set of its size."""
    many = generate(N_CLAIMS, SEED, tmp_path / "many", noise=0.4, formats="csv", block_claims=BLOCK)
    one = generate(BLOCK, SEED, tmp_path / "one", noise=0.4, formats="csv")
    many_lines = many["claims"].read_text(encoding="utf-8").splitlines()
    one_lines = one["claims"].read_text(encoding="utf-8").splitlines()
    assert many_lines[:BLOCK + 1] == one_lines
    assert many["truth"].read_text().splitlines()[:BLOCK + 1] == one["truth"].read_text().splitlines()
    assert many_lines[BLOCK + 1:BLOCK + 50] != one_lines[1:50]  # the next block is another population


def test_ids_unique_across_blocks(tmp_path: Path) -> None:
    """Without noise every extract shows canonical IDs and names: one ID, one person, across all blocks."""
    paths = generate(N_CLAIMS, SEED, tmp_path, noise=0.0, formats="csv", block_claims=BLOCK)
    household = pd.read_csv(paths["household"], dtype=str, keep_default_na=False)
    pairs = pd.concat([
        household[["parent_id", "parent_name"]].set_axis(["id", "name"], axis=1),
        household[["child_id", "child_name"]].set_axis(["id", "name"], axis=1),
    ]).drop_duplicates()
    assert pairs["id"].is_unique


def test_registry_redraws_ids_an_earlier_block_has(tmp_path: Path) -> None:
    first = np.array([11010519800101001, 11010519800101002, 44052419900505113], dtype=np.int64)
    second = np.array([11010519800101002, 32040219851231120, 44052419900505113], dtype=np.int64)
    paths = []
    for i, keys in enumerate((first, second)):
        path = tmp_path / f"ids-{i}.npy"
        np.save(path, keys)
        paths.append(str(path))
    known_path, fix_paths = _registry(paths, 1, tmp_path)
    known = np.load(known_path)
    fixes = [np.load(p) for p in fix_paths]
    assert len(fixes[0]) == 0  # the earlier block keeps its IDs
    assert sorted(fixes[1][:, 0].tolist()) == [0, 2]
    for person, new in fixes[1].tolist():
        old = int(second[person])
        assert new != old and new // 1000 == old // 1000 and new % 2 == old % 2  # same county, date and sex
    assert len(known) == 6 and len(set(known.tolist())) == 6
    assert set(first.tolist()) | {32040219851231120} | set(fixes[1][:, 1].tolist()) == set(known.tolist())


def test_a_block_built_again_avoids_ids_other_blocks_built(tmp_path: Path) -> None:
    task = BlockTask(index=1, n_claims=400, offset=400, seed=3, tax_year=2024, noise=0.3, defect_rate=0.3,
                     faults=True, families=None, formats="csv", plan=None, work=str(tmp_path), blocks=2)
    first = build_block(task)
    assert first["constructed"]
    taken = tuple(first["constructed"][:3])
    again = build_block(BlockTask(**{**task.__dict__, "forbidden": taken}))
    assert not set(taken) & set(again["constructed"])
    assert again["rebuilt"] and sum(again["rows"].values()) > 0


def test_cli_block_claims_and_scheduler_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--claims", "10", "--out", str(tmp_path), "--block-claims", "5"]) == 2
    assert "--block-claims" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--claims", "10", "--out", str(tmp_path), "--scheduler", "nowhere"])
