"""Faults while writing: a full disk (a real tiny tmpfs, or a file-size limit where mounting is not allowed) or a
missing folder under any output option is exit 1 with a message naming the file, never a traceback, and nothing
partial is left: no ``.partial`` temp, no output of a run that failed, no half line in an audit log."""

from __future__ import annotations

import contextlib
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas  # noqa: F401 - loaded before any in-process `hash`, whose lean_process() would withhold it
import pytest

from matchkit.cli.main import main
from matchkit.security.keys import new_key, write_key
from tests.conftest import REPO, make_id

SAMPLE = REPO / "sample_data"
FEBRL = REPO / "matchkit" / "data" / "schemas" / "febrl.toml"
FEBRL_HEADER = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
                "state", "date_of_birth", "soc_sec_id"]


def run_cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(code: int, err: str, named: Path, reason: str = "No space left on device") -> bool:
    return (code == 1 and err.startswith("matchkit: error: ") and str(named) in err and reason in err
            and "Traceback" not in err)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 64 KiB tmpfs, nearly filled by ``filler``: anything larger than a few KiB written to it fails with ENOSPC.
    Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests that need it are skipped."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux")
    folder = tmp_path_factory.mktemp("full") / "disk"
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def disk(full_disk: Path) -> Iterator[Path]:
    """The tiny filesystem with 4 KiB left: room for a small file's first page, not for any real output."""
    filler = full_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as handle:
        handle.write(b"\0" * (60 * 1024))
    yield full_disk
    for path in full_disk.iterdir():
        path.unlink()


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample job's hashed files (claims and every extract), on an ordinary disk."""
    folder = tmp_path_factory.mktemp("hashed")
    key = write_key(new_key(), folder / "shared.key")
    out: dict[str, Path] = {"key": key}
    for source in ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance"):
        raw = next(p for p in SAMPLE.glob(f"{source}.*") if p.suffix in (".csv", ".xlsx", ".parquet"))
        assert main(["hash", source, str(raw), "--key", str(key), "-o", str(folder / f"{source}.parquet")]) == 0
        out[source] = folder / f"{source}.parquet"
    rows = [[f"r{i}", f"given{i % 7}", f"surname{i}", str(i), f"{i} main street", "", "town", "2600", "act",
             f"19{50 + i % 40:02d}0{1 + i % 9}1{i % 9}", f"{100000000 + i}"] for i in range(40)]
    with open(folder / "people.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([FEBRL_HEADER, *rows])
    for side in ("left", "right"):
        assert main(["hash", str(FEBRL), str(folder / "people.csv"), "--key", str(key), "-o",
                     str(folder / f"{side}.parquet")]) == 0
        out[side] = folder / f"{side}.parquet"
    return out


def verify_args(hashed: dict[str, Path]) -> list[object]:
    return ["verify", "--claims", hashed["claims"], hashed["education"], hashed["household"],
            hashed["civil_affairs"], hashed["only_child"], hashed["medical_insurance"]]


def education_csv(folder: Path, rows: int) -> Path:
    """Education rows, distinct valid IDs on every other line and invalid ones between, so both the hashed output
    and the rejects file grow."""
    path = folder / "education.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "student_name", "birth_date", "education_stage", "enrolled_from",
                         "enrolled_to"])
        for i in range(rows):
            good = make_id(f"3204022015{i % 12 + 1:02d}{i // 12 % 28 + 1:02d}{i // 336 % 1000:03d}")
            writer.writerow([good if i % 2 else f"9999{i:014d}", "张小明", "2015-03-05", "compulsory", "2021-09", ""])
    return path


# --- a full disk ----------------------------------------------------------------------------------------------------

def test_hash_output_on_a_full_disk(tmp_path, disk, hashed, capsys):
    source = education_csv(tmp_path, 20_000)
    output = disk / "education.parquet"
    code, _, err = run_cli(["hash", "education", source, "--key", hashed["key"], "-o", output,
                            "--rejects", tmp_path / "rejects.csv"], capsys)
    assert refused(code, err, output), err
    assert files_in(disk) == ["filler"]
    assert files_in(tmp_path) == ["education.csv"]  # the rejects of a failed run are not published either


def test_hash_rejects_on_a_full_disk(tmp_path, disk, hashed, capsys):
    source = education_csv(tmp_path, 20_000)
    rejects = disk / "rejects.csv"
    code, _, err = run_cli(["hash", "education", source, "--key", hashed["key"], "-o", tmp_path / "o.parquet",
                            "--rejects", rejects], capsys)
    assert refused(code, err, rejects), err
    assert files_in(disk) == ["filler"]
    assert files_in(tmp_path) == ["education.csv"]


def test_verify_report_on_a_full_disk(tmp_path, disk, hashed, capsys):
    report = disk / "report.html"
    code, _, err = run_cli([*verify_args(hashed), "-o", tmp_path / "flags.csv", "--report", report], capsys)
    assert refused(code, err, report), err
    assert files_in(disk) == ["filler"]
    assert files_in(tmp_path) == []  # the flags of a run whose report failed are taken back


@pytest.mark.parametrize("name", ["flags.csv", "flags.parquet"])
def test_verify_flags_on_a_full_disk(tmp_path, disk, hashed, capsys, name):
    flags = disk / name
    code, _, err = run_cli([*verify_args(hashed), "-o", flags, "--report", tmp_path / "report.html"], capsys)
    assert refused(code, err, flags), err
    assert files_in(disk) == ["filler"]
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("where", ["pairs", "candidates", "stats"])
def test_link_outputs_on_a_full_disk(tmp_path, disk, hashed, capsys, where):
    paths = {name: tmp_path / f"{name}.{'json' if name == 'stats' else 'csv'}"
             for name in ("pairs", "candidates", "stats")}
    paths[where] = disk / paths[where].name
    if where == "stats":  # stats are small: leave no room at all
        with contextlib.suppress(OSError), open(disk / "filler2", "wb") as handle:
            handle.write(b"\0" * 8192)
    code, _, err = run_cli(["link", hashed["left"], hashed["right"], "-o", paths["pairs"], "--method", "threshold",
                            "--candidates", paths["candidates"], "--stats", paths["stats"]], capsys)
    assert refused(code, err, paths[where]), err
    assert [n for n in files_in(disk) if not n.startswith("filler")] == []
    assert files_in(tmp_path) == []  # none of the run's outputs


def test_audit_log_that_cannot_grow_keeps_no_half_line(tmp_path, hashed, capsys):
    """The append of a line that does not fit (here a file-size limit just past the log's end, so the first part
    of the line is written and the rest refused) takes back what was written: the chain stays checkable."""
    from matchkit.security.audit import AuditLog, AuditLogError

    log = tmp_path / "audit.log"
    for run in range(2):
        assert main(["hash", "education", str(SAMPLE / "education.csv"), "--key", str(hashed["key"]), "-o",
                     str(tmp_path / f"{run}.parquet"), "--audit-log", str(log)]) == 0
    before = log.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, hard))
    try:
        with pytest.raises(AuditLogError) as info:
            AuditLog(log).append({"command": "hash", "outcome": "ok", "padding": "x" * 500})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(log) in str(info.value) and "cannot write the audit log (File too large)" in str(info.value)
    assert log.read_bytes() == before
    capsys.readouterr()
    assert main(["audit", "check", str(log)]) == 0


def test_key_file_on_a_full_disk(disk, capsys):
    with contextlib.suppress(OSError), open(disk / "filler2", "wb") as handle:
        handle.write(b"\0" * 8192)
    for command in (["key", "new", "-o", disk / "shared.key"], ["key", "new-signing", "-o", disk / "agency.key"]):
        code, _, err = run_cli(command, capsys)
        assert refused(code, err, disk), err
        assert [n for n in files_in(disk) if not n.startswith("filler")] == []


# --- no mount needed: a file-size limit (RLIMIT_FSIZE) -------------------------------------------------------------

def _limit_file_size() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(signal, "SIGXFSZ"),
                    reason="needs RLIMIT_FSIZE")
def test_hash_past_a_file_size_limit_in_a_subprocess(tmp_path, hashed):
    """The same fault through the installed command, with the encoding workers (which inherit the limit)."""
    source = education_csv(tmp_path, 40_000)
    output = tmp_path / "out" / "education.parquet"
    output.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MATCHKIT_WORKERS": "2"}
    result = subprocess.run([sys.executable, "-m", "matchkit", "hash", "education", str(source), "--key",
                             str(hashed["key"]), "-o", str(output)],
                            env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size,
                            check=False)
    assert result.returncode == 1, result.stderr
    assert str(output) in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert files_in(output.parent) == []


# --- a missing folder under any output option ----------------------------------------------------------------------

def test_every_output_option_into_a_missing_folder(tmp_path, hashed, capsys):
    missing = tmp_path / "missing"
    cases: list[list[object]] = [
        ["hash", "education", SAMPLE / "education.csv", "--key", hashed["key"], "-o", missing / "o.parquet"],
        ["hash", "education", SAMPLE / "education.csv", "--key", hashed["key"], "-o", tmp_path / "o.parquet",
         "--rejects", missing / "r.csv"],
        ["hash", "education", SAMPLE / "education.csv", "--key", hashed["key"], "-o", tmp_path / "o.parquet",
         "--audit-log", missing / "audit.log"],
        [*verify_args(hashed), "-o", missing / "flags.csv"],
        [*verify_args(hashed), "-o", tmp_path / "flags.csv", "--report", missing / "report.html"],
        ["link", hashed["left"], hashed["right"], "-o", missing / "pairs.csv"],
        ["link", hashed["left"], hashed["right"], "-o", tmp_path / "pairs.csv", "--candidates", missing / "c.csv"],
        ["link", hashed["left"], hashed["right"], "-o", tmp_path / "pairs.csv", "--stats", missing / "s.json"],
        ["key", "new", "-o", missing / "shared.key"],
        ["key", "new-signing", "-o", missing / "agency.key"],
    ]
    for args in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 1, (args, err)
        assert err.startswith("matchkit: error: ") and str(missing) in err and "Traceback" not in err, (args, err)
        assert files_in(tmp_path) == [], (args, files_in(tmp_path))


def test_synth_into_a_path_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    code, _, err = run_cli(["synth", "--claims", "5", "--seed", "1", "--out", tmp_path / "afile" / "sub"], capsys)
    assert code == 1 and "afile" in err and "Traceback" not in err, err
