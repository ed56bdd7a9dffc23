"""Crash safety: a `hash` or `verify` killed with SIGKILL mid-run leaves no file under the output name, and the
`.partial` temp it may leave behind is refused by name, never accepted as a hashed file."""

from __future__ import annotations

import contextlib
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


# --- SIGTERM: handled as Ctrl-C is ---------------------------------------------------------------------------------

SIGTERM_ROWS = 1_000_000


@pytest.fixture(scope="module")
def huge_csv(big) -> Path:
    """A million education rows (the same 5,000 people over and over), made by repeating bytes: fast to write, long
    enough to hash that a SIGTERM lands while the workers are busy."""
    lines = big["education_csv"].read_bytes().splitlines(keepends=True)
    body = b"".join(lines[1:5001])
    path = big["root"] / "education_1m.csv"
    with open(path, "wb") as handle:
        handle.write(lines[0])
        handle.writelines(body for _ in range(SIGTERM_ROWS // 5000))
    return path


def _session(sid: int) -> dict[int, str]:
    """Live processes of a session (pid -> state), zombies left out: a zombie holds no file and runs nothing."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != sid:
                continue
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found[int(entry)] = state
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize(("how", "code", "said"), [("sigterm_to_the_command", 143, b"matchkit: terminated"),
                                                    ("ctrl_c_to_the_group", 130, b"matchkit: interrupted")])
def test_sigterm_stops_workers_removes_partials_and_exits_143(tmp_path, big, huge_csv, how, code, said):
    """What a scheduler or systemd does: SIGTERM to the command's process only, mid-run. The command stops its
    workers, removes its .partial files, exits 143, and nothing it started keeps the caller's pipes open. Ctrl-C
    (SIGINT to the whole process group, workers included) ends the same way with 130."""
    output = tmp_path / "education.parquet"
    env = {**_environment(), "MATCHKIT_WORKERS": "2"}  # workers even on a one-core machine
    process = subprocess.Popen(_matchkit("hash", "education", huge_csv, "--key", big["key"], "-o", output,
                                         "--rejects", tmp_path / "rejects.csv"),
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        working = False
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            partials = _partials(tmp_path, output.name)
            try:
                written = bool(partials) and partials[0].stat().st_size > 4  # row groups from the workers
            except FileNotFoundError:
                written = False
            if written and len(_session(process.pid)) >= 3:  # the command, its fork server, a worker at least
                working = True
                break
            time.sleep(0.01)
        if not working:
            pytest.skip("the run ended before it could be terminated mid-run")
        if how == "sigterm_to_the_command":
            os.kill(process.pid, signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)  # returns only once every holder of the pipes is gone
        except subprocess.TimeoutExpired:
            pytest.fail(f"stdout/stderr still held open 60 s after {how}: worker processes left running")
        assert process.returncode == code, err
        assert said in err and b"Traceback" not in err
        assert _session(process.pid) == {}, "processes the command started are still running"
        assert not output.exists() and not (tmp_path / "rejects.csv").exists()
        assert _partials(tmp_path, output.name) == [] and _partials(tmp_path, "rejects.csv") == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_sigterm_maps_to_exit_143_and_only_in_the_command_process(capsys, monkeypatch):
    """main() installs its SIGTERM handler only as the command's process (argv None), never for a library caller
    or a test that calls main(argv); a termination unwinds like Ctrl-C and main(argv) turns it into exit 143."""
    from matchkit.cli import main as cli

    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["schema", "list"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(cli.Terminated, KeyboardInterrupt)  # every Ctrl-C clean-up runs for it too

    def terminated(args) -> int:
        raise cli.Terminated

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(terminated))
    assert cli.main(["run"]) == 143
    assert "matchkit: terminated" in capsys.readouterr().err


def _parser_running(func):  # type: ignore[no-untyped-def]
    import argparse

    parser = argparse.ArgumentParser(prog="matchkit")
    parser.add_argument("command")
    parser.set_defaults(func=func)
    return parser
