"""Partitioned hashed datasets (`matchkit hash ... -o DIR/`, SPEC §8): the same rows as a single file, every
reader accepts a directory, every fault in a dataset is refused by directory and part, signing covers the index
and every part, and hashing on a Dask scheduler writes the same parts as hashing here."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.errors import IncompatibleFilesError, ManifestError, MatchkitError
from matchkit.io.hashed.dataset import INDEX_NAME, HashedDataset, open_dataset
from matchkit.io.hashed.reader import HashedFile, check_compatible, check_signature, open_hashed
from matchkit.jobs.hash import hash_file
from matchkit.security.audit import DATASET_INDEX_NAME
from matchkit.security.keys import load_key, new_key, write_key
from matchkit.security.signing import load_signing_key, load_trust_dir, new_signing_key, write_signing_key
from tests.test_link_job import FEBRL, toy  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SOURCES = {"claims": "claims.csv", "education": "education.csv", "household": "household.xlsx",
           "civil_affairs": "civil_affairs.csv", "only_child": "only_child.csv",
           "medical_insurance": "medical_insurance.parquet"}


def run_cli(args: list[object]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in args])
    return code, stdout.getvalue(), stderr.getvalue()


def refused(args: list[object], *needles: str) -> str:
    """The command exits 1 with a message holding every needle, and no traceback."""
    code, out, err = run_cli(args)
    assert code == 1, (out, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def manifest_without_time(hashed: HashedFile | HashedDataset) -> dict:
    body = hashed.manifest.to_json()
    body.pop("created")
    return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every sample source hashed three ways: one file, a dataset of several parts, a dataset on a Dask scheduler
    (the multiprocessing one; ``local`` has its own test)."""
    root = tmp_path_factory.mktemp("datasets")
    key = write_key(new_key(), root / "shared.key")
    paths: dict = {"root": root, "key": key}
    for source, name in SOURCES.items():
        code, _, err = run_cli(["hash", source, SAMPLE / name, "--key", key, "-o", root / f"{source}.parquet",
                                "--rejects", root / f"{source}.rejects.csv"])
        assert code == 0, err
        code, out, err = run_cli(["hash", source, SAMPLE / name, "--key", key, "-o", f"{root / source}/",
                                  "--rejects", root / f"{source}.ds.rejects.csv", "--partitions", "3"])
        assert code == 0, err
        assert "parts)" in out
    for source in ("claims", "medical_insurance"):
        code, _, err = run_cli(["hash", source, SAMPLE / SOURCES[source], "--key", key, "-o",
                                f"{root / source}_dask/", "--rejects", root / f"{source}.dask.rejects.csv",
                                "--partitions", "3", "--scheduler", "processes"])
        assert code == 0, err
    return paths


# ---- the same rows -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", list(SOURCES))
def test_dataset_rows_equal_the_single_file(world, source):
    root = world["root"]
    single = open_hashed(root / f"{source}.parquet")
    dataset = open_hashed(root / source)
    assert isinstance(dataset, HashedDataset) and isinstance(single, HashedFile)
    table = single.read()
    assert dataset.read().equals(table)
    for name in table.column_names:  # byte for byte, column by column
        assert dataset.read([name]).column(0).combine_chunks().equals(table.column(name).combine_chunks()), name
    assert pa.concat_tables(part.read() for part in dataset.parts).equals(table)
    assert pa.Table.from_batches(list(dataset.iter_batches(["_line"], batch_rows=7))).equals(
        single.read(["_line"]))
    assert pads.dataset(root / source, format="parquet").to_table().equals(table)  # plain pyarrow reads it
    assert manifest_without_time(dataset) == manifest_without_time(single)
    assert dataset.manifest.rows_in == sum(p.manifest.rows_in for p in dataset.parts)
    assert (root / f"{source}.rejects.csv").read_bytes() == (root / f"{source}.ds.rejects.csv").read_bytes()
    if source not in ("household", "only_child"):  # an XLSX is cut in chunks of 50,000 rows; only_child is tiny
        assert len(dataset.parts) >= 2


def test_index_lists_parts_digests_and_counts(world):
    directory = world["root"] / "claims"
    dataset = open_hashed(directory)
    index = pq.read_table(directory / INDEX_NAME).to_pylist()
    assert [row["name"] for row in index] == [p.path.name for p in dataset.parts]
    assert [row["digest"] for row in index] == [p.digest for p in dataset.parts]
    assert [row["rows_hashed"] for row in index] == [p.manifest.rows_hashed for p in dataset.parts]
    body = json.loads(pq.read_metadata(directory / INDEX_NAME).metadata[b"matchkit.dataset"])
    assert body["part_count"] == len(dataset.parts)
    assert body["manifest"]["rows_hashed"] == dataset.manifest.rows_hashed
    assert sorted(p.name for p in directory.iterdir()) == sorted([INDEX_NAME, *(r["name"] for r in index)])
    assert DATASET_INDEX_NAME == INDEX_NAME


@pytest.mark.parametrize("source", ["claims", "medical_insurance"])
def test_scheduler_run_writes_the_same_parts(world, source):
    root = world["root"]
    here, there = open_hashed(root / source), open_hashed(root / f"{source}_dask")
    assert len(here.parts) == len(there.parts) >= 2
    for mine, theirs in zip(here.parts, there.parts):
        assert mine.read().equals(theirs.read())
        assert manifest_without_time(mine) == manifest_without_time(theirs)
        assert pq.read_metadata(mine.path).num_row_groups == pq.read_metadata(theirs.path).num_row_groups
    assert (root / f"{source}.rejects.csv").read_bytes() == (root / f"{source}.dask.rejects.csv").read_bytes()


def test_local_cluster_run(world, tmp_path):
    code, _, err = run_cli(["hash", "education", SAMPLE / "education.csv", "--key", world["key"], "-o",
                            f"{tmp_path / 'edu'}/", "--partitions", "2", "--scheduler", "local"])
    assert code == 0, err
    assert open_hashed(tmp_path / "edu").read().equals(open_hashed(world["root"] / "education.parquet").read())


def test_key_never_travels_in_a_task(world, tmp_path, monkeypatch):
    """Tasks are pickled into the Dask graph: they hold the key file's path and public fingerprint, never the
    secret (nor any raw value: only paths, byte ranges and their digests)."""
    import matchkit.jobs.hash_dataset as job
    from matchkit.runtime.cluster import Runner

    pickled: list[bytes] = []

    class Recording(Runner):
        def imap(self, fn, items):  # type: ignore[no-untyped-def]
            for item in items:
                pickled.append(pickle.dumps(item))
                yield fn(pickle.loads(pickled[-1]))

    @contextlib.contextmanager
    def recording_runner(scheduler, workers=None):  # type: ignore[no-untyped-def]
        yield Recording()

    monkeypatch.setattr(job, "open_runner", recording_runner)
    key = load_key(world["key"])
    hash_file("claims", SAMPLE / "claims.csv", key, f"{tmp_path / 'c'}/", partitions=2, scheduler="processes")
    assert len(pickled) >= 2
    raw = (SAMPLE / "claims.csv").read_bytes()
    for blob in pickled:
        assert key.secret not in blob
        assert raw[200:240] not in blob  # no data
    assert open_hashed(tmp_path / "c").read().equals(open_hashed(world["root"] / "claims.parquet").read())


def test_repeated_record_ids_across_parts_are_rejected_as_in_one_file(toy, tmp_path):  # noqa: F811
    """The right toy file repeats its first record id in its last row: a different part when cut in four."""
    folder, key = toy["folder"], toy["key"]
    single = open_hashed(folder / "right.parquet")
    for scheduler in (None, "processes"):
        out = tmp_path / f"right-{scheduler}"
        args = ["hash", FEBRL, folder / "right.csv", "--key", key, "-o", f"{out}/", "--partitions", "4",
                "--rejects", tmp_path / f"{scheduler}.csv"]
        code, _, err = run_cli(args + (["--scheduler", scheduler] if scheduler else []))
        assert code == 0, err
        dataset = open_hashed(out)
        assert len(dataset.parts) >= 2
        assert dataset.read().equals(single.read())
        assert manifest_without_time(dataset) == manifest_without_time(single)
        assert (tmp_path / f"{scheduler}.csv").read_bytes() == (folder / "right.rejects.csv").read_bytes()
        assert "duplicate_record_id" in (tmp_path / f"{scheduler}.csv").read_text()


# ---- every reader accepts a directory --------------------------------------------------------------------------------

def test_verify_reads_datasets(world, tmp_path):
    root = world["root"]
    extracts = [s for s in SOURCES if s != "claims"]
    code, _, err = run_cli(["verify", "--claims", root / "claims.parquet",
                            *(root / f"{s}.parquet" for s in extracts), "-o", tmp_path / "files.csv"])
    assert code == 0, err
    code, _, err = run_cli(["verify", "--claims", root / "claims", *(root / s for s in extracts), "-o",
                              tmp_path / "dirs.csv"])
    assert code == 0, err
    assert (tmp_path / "files.csv").read_bytes() == (tmp_path / "dirs.csv").read_bytes()
    mixed = ["verify", "--claims", root / "claims_dask", root / "education", root / "household.parquet",
             *(root / s for s in extracts[2:]), "-o", tmp_path / "mixed.csv"]
    code, _, err = run_cli(mixed)
    assert code == 0, err
    assert (tmp_path / "files.csv").read_bytes() == (tmp_path / "mixed.csv").read_bytes()


def test_verify_loader_reads_lazily_from_parts(world):
    from matchkit.jobs.verify import load_hashed_inputs

    root = world["root"]
    claims, sources, files = load_hashed_inputs(root / "claims", [root / "education", root / "household"])
    single_claims, single_sources, _ = load_hashed_inputs(root / "claims.parquet",
                                                          [root / "education.parquet", root / "household.parquet"])
    pd.testing.assert_frame_equal(claims, single_claims)
    extract, single = sources["education"], single_sources["education"]
    pd.testing.assert_frame_equal(extract.frame, single.frame)
    columns = ["student_name_fz", "student_id_near"]
    lazy = pd.concat(list(extract.encodings.batches(columns)), ignore_index=True)
    reference = pd.concat(list(single.encodings.batches(columns)), ignore_index=True)
    pd.testing.assert_frame_equal(lazy, reference)
    assert isinstance(files[0], HashedDataset)


def test_link_dedupe_and_recordlinkage_read_datasets(toy, tmp_path):  # noqa: F811
    folder, key = toy["folder"], toy["key"]
    for side in ("left", "right"):
        code, _, err = run_cli(["hash", FEBRL, folder / f"{side}.csv", "--key", key, "-o", f"{tmp_path / side}/",
                                "--partitions", "3"])
        assert code == 0, err
    for name, left, right in (("files", folder / "left.parquet", folder / "right.parquet"),
                              ("dirs", tmp_path / "left", tmp_path / "right")):
        code, _, err = run_cli(["link", left, right, "-o", tmp_path / f"{name}.csv", "--one-to-one"])
        assert code == 0, err
        code, _, err = run_cli(["dedupe", right, "-o", tmp_path / f"{name}.clusters.csv"])
        assert code == 0, err
    assert (tmp_path / "files.csv").read_bytes() == (tmp_path / "dirs.csv").read_bytes()
    assert (tmp_path / "files.clusters.csv").read_bytes() == (tmp_path / "dirs.clusters.csv").read_bytes()
    from matchkit.recordlinkage import read_hashed

    pd.testing.assert_frame_equal(read_hashed(tmp_path / "left"), read_hashed(folder / "left.parquet"))


def test_check_compatible_names_the_dataset(world, tmp_path):
    other_key = load_key(write_key(new_key(), tmp_path / "other.key"))
    hash_file("education", SAMPLE / "education.csv", other_key, f"{tmp_path / 'edu'}/", partitions=2)
    with pytest.raises(IncompatibleFilesError, match="edu was hashed with key id"):
        check_compatible([open_hashed(world["root"] / "claims"), open_hashed(tmp_path / "edu")])


# ---- faults ----------------------------------------------------------------------------------------------------------

def fresh_copy(world: dict, tmp_path: Path, source: str = "education") -> Path:
    target = tmp_path / source
    shutil.copytree(world["root"] / source, target)
    return target


def verify_args(world: dict, extract: Path, tmp_path: Path) -> list[object]:
    return ["verify", "--claims", world["root"] / "claims.parquet", extract, "-o", tmp_path / "f.csv"]


def _missing(d: Path) -> str:
    (d / "part-00001.parquet").unlink()
    return "part part-00001.parquet listed in the dataset index is missing"


def _extra(d: Path) -> str:
    shutil.copy(d / "part-00000.parquet", d / "part-00009.parquet")
    return "holds 'part-00009.parquet', which the dataset index does not list"


def _reordered(d: Path) -> str:
    first, second = d / "part-00000.parquet", d / "part-00001.parquet"
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)
    return "part part-00000.parquet is not the part the dataset index lists"


def _truncated(d: Path) -> str:
    part = d / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:-100])
    return "part-00001.parquet: dataset part is not a readable Parquet file"


def _altered(d: Path) -> str:
    part = d / "part-00002.parquet"
    data = bytearray(part.read_bytes())
    data[40] ^= 0x01
    part.write_bytes(bytes(data))
    return "part-00002.parquet: content does not match its digest"


def _index_altered(d: Path) -> str:
    index = d / INDEX_NAME
    data = bytearray(index.read_bytes())
    data[30] ^= 0x01
    index.write_bytes(bytes(data))
    return "dataset index does not match its digest"


def _index_missing(d: Path) -> str:
    (d / INDEX_NAME).unlink()
    return "is a directory with no dataset index"


def _from_another_run(d: Path) -> str:
    other = d.parent / "other"
    hash_file("education", SAMPLE / "education.csv", load_key(d.parent.parent / "shared.key")
              if (d.parent.parent / "shared.key").exists() else new_key(), f"{other}/", partitions=3)
    shutil.copy(other / "part-00001.parquet", d / "part-00001.parquet")
    return "part part-00001.parquet is not the part the dataset index lists"


FAULTS = {"missing": _missing, "extra": _extra, "reordered": _reordered, "truncated": _truncated,
          "altered": _altered, "index_altered": _index_altered, "index_missing": _index_missing,
          "from_another_run": _from_another_run}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faulty_dataset_is_refused_by_directory_and_part(world, tmp_path, fault):
    directory = fresh_copy(world, tmp_path)
    assert len(open_hashed(directory).parts) >= 3
    message = FAULTS[fault](directory)
    with pytest.raises(ManifestError) as caught:
        open_hashed(directory)
    assert str(directory) in str(caught.value) and message in str(caught.value)
    refused(verify_args(world, directory, tmp_path), str(directory), message)


def test_output_directory_rules(world, tmp_path):
    key = world["key"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused(["hash", "education", SAMPLE / "education.csv", "--key", key, "-o", f"{busy}/"],
            "not empty and holds no matchkit dataset")
    assert (busy / "notes.txt").read_text() == "mine"
    refused(["hash", "education", SAMPLE / "education.csv", "--key", key, "-o", tmp_path / "x.parquet",
             "--partitions", "2"], "give -o a directory")
    target = tmp_path / "again"
    for partitions, output in (("4", f"{target}/"), ("2", target)):  # an existing dataset is replaced as a whole
        code, _, err = run_cli(["hash", "education", SAMPLE / "education.csv", "--key", key, "-o", output,
                                "--partitions", partitions])
        assert code == 0, err
    assert len(open_hashed(target).parts) == 2
    header_only = tmp_path / "empty.csv"
    header_only.write_text((SAMPLE / "only_child.csv").read_text(encoding="utf-8").splitlines()[0] + "\n",
                           encoding="utf-8")
    refused(["hash", "only_child", header_only, "--key", key, "-o", f"{tmp_path / 'none'}/"], "no data rows")
    assert not (tmp_path / "none").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".partial", ".old"))]  # nothing left behind
    code, _, err = run_cli(["hash", "only_child", header_only, "--key", key, "-o", f"{tmp_path / 'none'}/",
                            "--allow-empty"])
    assert code == 0, err
    assert open_hashed(tmp_path / "none").read().num_rows == 0


# ---- signing and the audit log -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed(world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("signed")
    trust = root / "trust"
    trust.mkdir()
    keys = {}
    for name in ("agency", "rogue"):
        private, public = write_signing_key(new_signing_key(f"{name} bureau"), root / f"{name}.key")
        keys[name] = private
        if name == "agency":
            shutil.copy(public, trust / public.name)
    for source in ("claims", "education"):
        code, out, err = run_cli(["hash", source, SAMPLE / SOURCES[source], "--key", world["key"], "-o",
                                  f"{root / source}/", "--partitions", "3", "--sign", keys["agency"]])
        assert code == 0 and "signed by" in out, err
    code, _, err = run_cli(["hash", "education", SAMPLE / "education.csv", "--key", world["key"], "-o",
                            f"{root / 'edu_dask'}/", "--partitions", "2", "--sign", keys["agency"],
                            "--scheduler", "processes"])
    assert code == 0, err
    return {"root": root, "trust": trust, **keys}


def test_signed_dataset_passes_verify_trust(world, signed, tmp_path):
    root = signed["root"]
    store = load_trust_dir(signed["trust"])
    assert check_signature(root / "education", store).signer == "agency bureau"
    assert check_signature(root / "edu_dask", store).signer == "agency bureau"
    code, out, err = run_cli(["verify", "--claims", root / "claims", root / "education", "-o", tmp_path / "f.csv",
                              "--trust", signed["trust"]])
    assert code == 0, err
    assert "signature OK" in out


def test_unsigned_dataset_refused_with_trust(world, signed, tmp_path):
    refused(["verify", "--claims", world["root"] / "claims", world["root"] / "education", "-o", tmp_path / "f.csv",
             "--trust", signed["trust"]], "claims/_matchkit_dataset.parquet: file is not signed")


def test_part_resigned_by_another_key_is_refused(world, signed, tmp_path):
    """A part swapped for one signed by another key fails both ways: its digest is not the index's, and a
    trusted-but-different signer is named."""
    directory = tmp_path / "education"
    shutil.copytree(signed["root"] / "education", directory)
    rogue = load_signing_key(signed["rogue"])
    other = tmp_path / "rogue_run"
    hash_file("education", SAMPLE / "education.csv", load_key(world["key"]), f"{other}/", partitions=3,
              signing_key=rogue)
    shutil.copy(other / "part-00000.parquet", directory / "part-00000.parquet")
    err = refused(["verify", "--claims", signed["root"] / "claims", directory, "-o", tmp_path / "f.csv", "--trust",
                   signed["trust"]], str(directory))
    assert "part-00000.parquet" in err


def test_audit_log_records_the_directory_with_the_index_digest(world, tmp_path):
    import hashlib

    log = tmp_path / "audit.log"
    code, _, err = run_cli(["hash", "education", SAMPLE / "education.csv", "--key", world["key"], "-o",
                            f"{tmp_path / 'edu'}/", "--partitions", "2", "--audit-log", log])
    assert code == 0, err
    entry = json.loads(log.read_text().splitlines()[-1])
    output = entry["outputs"][0]
    index_digest = hashlib.sha256((tmp_path / "edu" / INDEX_NAME).read_bytes()).hexdigest()
    assert output["name"] == "edu" and output["sha256"] == index_digest and output["index"] == INDEX_NAME
    assert entry["parts"] == 2 and entry["status"] == "ok"
    code, _, err = run_cli(["verify", "--claims", world["root"] / "claims", tmp_path / "edu", "-o",
                            tmp_path / "f.csv", "--audit-log", log])
    assert code == 0, err
    logged = json.loads(log.read_text().splitlines()[-1])["inputs"]
    assert logged[1]["name"] == "edu" and logged[1]["sha256"] == index_digest


# ---- privacy -------------------------------------------------------------------------------------------------------

def test_no_raw_identifier_in_a_dataset(world):
    from tests.test_privacy import identifying_values, parquet_texts, sample_file

    secrets = set()
    for source in SOURCES:
        secrets |= identifying_values(source, sample_file(source))
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
    scanned = 0
    for directory in [world["root"] / s for s in SOURCES] + [world["root"] / "claims_dask"]:
        for path in directory.iterdir():
            for text in ["\n".join(parquet_texts(path)), path.read_bytes().decode("latin-1")]:
                assert not pattern.search(text), path
            scanned += 1
    assert scanned > 10


def test_open_dataset_without_digest_checks(world):
    dataset = open_dataset(world["root"] / "claims", check_digest=False)
    assert dataset.digest is None and dataset.read().num_rows == dataset.manifest.rows_hashed


def test_a_dataset_is_not_a_raw_input(world, tmp_path):
    with pytest.raises(MatchkitError):
        hash_file("claims", world["root"] / "claims", load_key(world["key"]), tmp_path / "x.parquet")


@pytest.mark.parametrize("scheduler", [None, "processes"])
def test_a_run_that_fails_midway_leaves_nothing(world, tmp_path, scheduler):
    """A fault found in a late block (bytes that are not UTF-8), after earlier parts were written: exit 1 naming
    the input and line, and no dataset, no temp directory, no rejects file left behind."""
    lines = (SAMPLE / "only_child.csv").read_bytes().splitlines(keepends=True)
    source = tmp_path / "late_fault.csv"
    source.write_bytes(b"".join([lines[0], *lines[1:] * 40, b"\xff\xfe broken\n"]))
    args = ["hash", "only_child", source, "--key", world["key"], "--encoding", "utf-8", "-o",
            f"{tmp_path / 'out'}/", "--partitions", "6", "--rejects", tmp_path / "r.csv"]
    refused(args + (["--scheduler", scheduler] if scheduler else []), "late_fault.csv", "not valid")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late_fault.csv"]
