"""Crash safety: a `hash` or `verify` killed with SIGKILL mid-run leaves no file under the output name, and the
`.partial` temp it may leave behind is refused by name, never accepted as a hashed file."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from matchkit.errors import ManifestError
from matchkit.io.hashed.reader import open_hashed
from matchkit.jobs.hash import hash_file
from matchkit.security.keys import load_key, new_key, write_key
from tests.conftest import REPO, make_id

ROWS = 300_000
CLAIMS_ROWS = 50_000


def _ids(prefix: str, count: int) -> list[str]:
    return [make_id(f"{prefix}{i % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}") for i in range(count)]


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crash")
    key = write_key(new_key(), root / "shared.key")
    students = _ids("3204022015", 5000)
    with open(root / "education.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "student_name", "birth_date", "education_stage", "enrolled_from",
                         "enrolled_to"])
        for i in range(ROWS):
            writer.writerow([students[i % 5000], "张小明" if i % 2 else "欧阳娜娜", "", "compulsory", "2021-09", ""])
    taxpayers = _ids("3204021980", 5000)
    with open(root / "claims.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["claim_id", "taxpayer_id", "deduction", "tax_year", "subject_id", "subject_name",
                         "subject_relation", "monthly_amount", "education_stage"])
        for i in range(CLAIMS_ROWS):
            writer.writerow([f"C{i}", taxpayers[i % 5000], "children_education", "2024", students[(i * 7) % 5000],
                             "张小明", "child", "2000", "compulsory"])
    claims = hash_file("claims", root / "claims.csv", load_key(key), root / "claims.parquet").output
    return {"root": root, "key": key, "education_csv": root / "education.csv", "claims": claims}


def _matchkit(*args: object) -> list[str]:
    return [sys.executable, "-m", "matchkit", *[str(a) for a in args]]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MATCHKIT_KEY_FILE", None)
    env.pop("MATCHKIT_AUDIT_LOG", None)
    env.pop("MATCHKIT_TRUST_DIR", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def _partials(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.partial"))


def _run_and_kill(command: list[str], cwd: Path, ready: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Start ``command``; SIGKILL it as soon as ``ready()``. True when killed mid-run, False if it ended first."""
    process = subprocess.Popen(command, cwd=cwd, env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    killed = False
    try:
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(process.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.001)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        try:  # worker processes it started (same session, process group = its pid) die with it
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed and process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("moment", ["while_encoding", "while_writing"])
def test_killed_hash_leaves_no_output_and_an_unacceptable_partial(tmp_path, big, moment):
    output = tmp_path / "education.parquet"

    def ready() -> bool:
        partials = _partials(tmp_path, output.name)
        if not partials:
            return False
        if moment == "while_encoding":
            return True  # the temp file exists: reading and encoding are under way
        try:
            return partials[0].stat().st_size > 4  # row groups are being written
        except FileNotFoundError:
            return False

    killed = _run_and_kill(_matchkit("hash", "education", big["education_csv"], "--key", big["key"], "-o",
                                     output, "--rejects", tmp_path / "rejects.csv"), tmp_path, ready)
    if not killed:
        pytest.skip("the run finished before it could be killed (machine too fast for this input)")
    assert not output.exists()
    assert not (tmp_path / "rejects.csv").exists()
    for partial in _partials(tmp_path, output.name):
        with pytest.raises(ManifestError) as info:
            open_hashed(partial)
        assert partial.name in str(info.value)
        result = subprocess.run(_matchkit("verify", "--claims", big["claims"], partial, "-o", tmp_path / "f.csv"),
                                cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 1
        assert partial.name in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "f.csv").exists()


def test_killed_verify_leaves_no_flags_file(tmp_path, big):
    flags = tmp_path / "flags.csv"

    def ready() -> bool:
        partials = _partials(tmp_path, flags.name)
        try:
            return bool(partials) and partials[0].stat().st_size > 0  # the flags are being written
        except FileNotFoundError:
            return False

    killed = _run_and_kill(_matchkit("verify", "--claims", big["claims"], "-o", flags), tmp_path, ready)
    if not killed:
        pytest.skip("the run finished before it could be killed (machine too fast for this input)")
    assert not flags.exists()


def test_hash_interrupted_in_process_cleans_up(tmp_path, big):
    """An exception mid-run (here from the progress callback, as Ctrl-C would raise) removes the temp files."""
    def interrupt(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hash_file("education", big["education_csv"], load_key(big["key"]), tmp_path / "o.parquet",
                  rejects_path=tmp_path / "r.csv", progress=interrupt, workers=1, chunk_rows=50_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
