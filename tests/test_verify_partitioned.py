"""`verify --partitions N` (issue #14): the flags of a partitioned run, in this process or on Dask, are the single
run's byte for byte — on the sample data and on a synthetic set with many partitions, every reason code, fuzzy
links whose person lies in another partition, and mistyped IDs that are another person (#16). Spill files never
outlive the run, whether it succeeds or fails."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from matchkit.cli.main import main
from matchkit.jobs import verify_partitioned as vp
from matchkit.jobs.hash import hash_file
from matchkit.jobs.verify import load_hashed_inputs, open_inputs, verify_files
from matchkit.security.keys import SharedKey
from matchkit.synth import generate, write_sample
from matchkit.verify import REASON_CODES, verify_tables

EXTRACTS = ("education", "household", "civil_affairs", "only_child", "medical_insurance")
KEY = SharedKey("mk-test", bytes(range(32)))


def _hash_all(paths: dict[str, Path], out: Path, *, split_household: bool = False) -> tuple[Path, list[Path]]:
    """Hash every source; with ``split_household``, the household extract as two files (two halves)."""
    out.mkdir(parents=True, exist_ok=True)
    for source in ("claims", *EXTRACTS):
        hash_file(source, paths[source], KEY, out / f"{source}.parquet", workers=1)
    extracts = [out / f"{s}.parquet" for s in EXTRACTS]
    if split_household:
        lines = paths["household"].read_text(encoding="utf-8-sig").splitlines(keepends=True)
        half = len(lines) // 2
        halves = []
        for name, body in (("household-a", lines[1:half]), ("household-b", lines[half:])):
            raw = paths["household"].with_name(f"{name}.csv")
            raw.write_text(lines[0] + "".join(body), encoding="utf-8")
            hash_file("household", raw, KEY, out / f"{name}.parquet", workers=1)
            halves.append(out / f"{name}.parquet")
        extracts[EXTRACTS.index("household")] = halves[0]
        extracts.append(halves[1])
    return out / "claims.parquet", extracts


def _spill_folders(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{vp.SPILL_PREFIX}*"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    root = tmp_path_factory.mktemp("sample")
    claims, extracts = _hash_all(write_sample(root / "raw"), root / "hashed")
    single = root / "single.csv"
    verify_files(claims, list(extracts), single, partitions=1)
    return claims, extracts, single


def _not_in_force(claims_csv: Path) -> None:
    """Move a third of the infant_care lines to 2021, before that deduction existed (NOT_IN_FORCE)."""
    with open(claims_csv, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    infant = [row for row in rows if row["deduction"] == "infant_care"]
    for row in infant[::3]:
        row["tax_year"] = "2021"
        row["period_start"] = row["period_start"].replace("2024", "2021")
        row["period_end"] = row["period_end"].replace("2024", "2021")
    with open(claims_csv, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth")
    paths = generate(1500, 7, root / "raw", noise=0.5, formats="csv", defect_rate=0.3)
    _not_in_force(paths["claims"])
    claims, extracts = _hash_all(paths, root / "hashed", split_household=True)  # two files of one source
    frame, sources, _ = load_hashed_inputs(claims, list(extracts))
    truth = pd.read_csv(paths["truth"], dtype=str, keep_default_na=False)
    return claims, extracts, verify_tables(frame, sources), truth


# ---- the sample job ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("partitions", [2, 7, 32])
def test_sample_flags_are_byte_identical_in_process(sample, tmp_path: Path, partitions: int) -> None:
    claims, extracts, single = sample
    out = tmp_path / "flags.csv"
    verify_files(claims, list(extracts), out, partitions=partitions)
    assert out.read_bytes() == single.read_bytes()
    assert _spill_folders(tmp_path) == []


@pytest.mark.parametrize("scheduler", ["processes", "local"])
def test_sample_flags_are_byte_identical_on_dask(sample, tmp_path: Path, scheduler: str) -> None:
    claims, extracts, single = sample
    out = tmp_path / "flags.csv"
    verify_files(claims, list(extracts), out, partitions=4, scheduler=scheduler, workers=2)
    assert out.read_bytes() == single.read_bytes()
    assert _spill_folders(tmp_path) == []


def test_cli_partitions_and_parquet_output(sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims, extracts, single = sample
    args = ["verify", "--claims", str(claims), *map(str, extracts)]
    assert main([*args, "-o", str(tmp_path / "one.parquet"), "--partitions", "1"]) == 0
    assert main([*args, "-o", str(tmp_path / "many.parquet"), "--partitions", "5"]) == 0
    assert main([*args, "-o", str(tmp_path / "many.csv"), "--partitions", "5"]) == 0
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "many.parquet").read_bytes()
    assert (tmp_path / "many.csv").read_bytes() == single.read_bytes()
    assert _spill_folders(tmp_path) == []


def test_cli_rejects_a_bad_partition_count(sample, tmp_path: Path) -> None:
    claims, extracts, _ = sample
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--claims", str(claims), *map(str, extracts), "-o", str(tmp_path / "f.csv"),
              "--partitions", "0"])
    assert exit_info.value.code == 2


# ---- a synthetic set with many partitions ------------------------------------------------------------------------
def test_synth_covers_every_reason_code_and_relinked_ids(synth) -> None:
    _, _, single, truth = synth
    seen = set(single["reasons"].str.split(";").explode()) - {""}
    assert seen == set(REASON_CODES)
    relinked = truth.loc[truth["defect"] == "id_of_another_person", "claim_id"]
    assert len(relinked) > 10
    assert (single.set_index("claim_id").loc[relinked, "match"] == "fuzzy").mean() > 0.8


@pytest.mark.parametrize("partitions", [1, 2, 7, 32])
def test_synth_flags_equal_the_single_run(synth, tmp_path: Path, partitions: int) -> None:
    claims, extracts, single, _ = synth
    claims_file, extract_files = open_inputs(claims, list(extracts))
    stats: dict[str, int] = {}
    flags = vp.verify_partitioned(claims_file, extract_files, partitions=partitions, spill_dir=tmp_path,
                                  stats=stats)
    pd.testing.assert_frame_equal(flags, single)
    assert flags.to_csv(index=False, float_format="%.2f") == single.to_csv(index=False, float_format="%.2f")
    assert stats["queried_lines"] > 0 and stats["candidate_persons"] > 0
    if partitions >= 7:  # fuzzy links to people whose tokens fall in another partition than the line's
        assert stats["moved_lines"] > 0
    assert _spill_folders(tmp_path) == []


def test_synth_flags_equal_on_a_local_cluster(synth, tmp_path: Path) -> None:
    claims, extracts, single, _ = synth
    claims_file, extract_files = open_inputs(claims, list(extracts))
    flags = vp.verify_partitioned(claims_file, extract_files, partitions=7, scheduler="local", workers=2,
                                  spill_dir=tmp_path)
    pd.testing.assert_frame_equal(flags, single)
    assert _spill_folders(tmp_path) == []


def test_spill_files_are_removed_after_a_failure(sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claims, extracts, _ = sample
    seen: list[Path] = []

    def failing(task: vp.Task) -> tuple[int, int]:
        seen.append(Path(task.plan.folder))
        assert any(Path(task.plan.folder).rglob("*.parquet"))  # the spill files were there
        raise RuntimeError("boom")

    monkeypatch.setattr(vp, "rules_task", failing)
    with pytest.raises(RuntimeError, match="boom"):
        verify_files(claims, list(extracts), tmp_path / "flags.csv", partitions=3)
    assert seen and not seen[0].exists()
    assert _spill_folders(tmp_path) == []
    assert not (tmp_path / "flags.csv").exists()


def test_default_partitions_follow_the_input_size() -> None:
    assert vp.default_partitions(80) == 1
    assert vp.default_partitions(vp.LINES_PER_PARTITION) == 1
    assert vp.default_partitions(vp.LINES_PER_PARTITION + 1) == 2
    assert vp.default_partitions(10_000_000) == 10_000_000 // vp.LINES_PER_PARTITION
