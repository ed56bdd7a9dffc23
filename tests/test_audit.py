"""The audit log: one hash-chained JSON line per hash/verify run, and `matchkit audit check`."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from matchkit.cli.main import main
from matchkit.security.audit import GENESIS, AuditLog, AuditLogError, check_log, line_hash
from tests.conftest import make_id

TAXPAYER = make_id("32040219850611004")
CHILD = make_id("32040220150305123")
NAMES = ("张小明", "张大明")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def run_cli(args: list[object], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def job(tmp_path, key_file) -> dict[str, Path]:
    claims = write_csv(tmp_path / "claims.csv",
                       ["claim_id", "taxpayer_id", "deduction", "tax_year", "subject_id", "subject_name",
                        "subject_relation", "monthly_amount", "education_stage"],
                       [["C1", TAXPAYER, "children_education", "2024", CHILD, NAMES[0], "child", "2000",
                         "compulsory"],
                        ["C2", TAXPAYER[:-1] + ("0" if TAXPAYER[-1] != "0" else "1"), "children_education", "2024",
                         CHILD, NAMES[0], "child", "2000", "compulsory"]])
    household = write_csv(tmp_path / "household.csv", ["parent_id", "parent_name", "child_id", "child_name"],
                          [[TAXPAYER, NAMES[1], CHILD, NAMES[0]]])
    return {"dir": tmp_path, "key": key_file, "claims": claims, "household": household,
            "log": tmp_path / "logs" / "audit.log"}


def run_job(job: dict[str, Path], capsys, *extra: object) -> None:
    (job["dir"] / "logs").mkdir(exist_ok=True)
    d = job["dir"]
    for source in ("claims", "household"):
        code, _, err = run_cli(["hash", source, job[source], "--key", job["key"], "-o", d / f"{source}.parquet",
                                "--rejects", d / f"{source}.rejects.csv", *extra], capsys)
        assert code == 0, err
    code, _, err = run_cli(["verify", "--claims", d / "claims.parquet", d / "household.parquet", "-o",
                            d / "flags.csv", *extra], capsys)
    assert code == 0, err


def test_hash_and_verify_append_chained_lines(job, capsys):
    run_job(job, capsys, "--audit-log", job["log"])
    lines = read_lines(job["log"])
    assert [e["command"] for e in lines] == ["hash", "hash", "verify"]
    assert [e["seq"] for e in lines] == [1, 2, 3] and lines[0]["prev"] == GENESIS
    raw = job["log"].read_bytes().splitlines()
    assert lines[1]["prev"] == hashlib.sha256(raw[0]).hexdigest()
    first = lines[0]
    assert first["status"] == "ok" and first["source"] == "claims" and first["tool_version"]
    assert first["user"] and isinstance(first["uid"], int) and first["time"].endswith("+00:00")
    assert first["inputs"] == [{"name": "claims.csv", "bytes": job["claims"].stat().st_size,
                                "sha256": hashlib.sha256(job["claims"].read_bytes()).hexdigest()}]
    outputs = {o["name"]: o for o in first["outputs"]}
    assert outputs["claims.parquet"]["sha256"] == hashlib.sha256((job["dir"] / "claims.parquet").read_bytes()
                                                                 ).hexdigest()
    assert outputs["claims.parquet"]["rows"] == 1 and outputs["claims.rejects.csv"]["rows"] == 1
    assert (first["rows_in"], first["rows_hashed"], first["rows_rejected"]) == (2, 1, 1)
    key_id = json.loads(job["key"].read_text())["key_id"]
    assert first["key_id"] == key_id and lines[2]["key_id"] == key_id
    verify = lines[2]
    assert [i["name"] for i in verify["inputs"]] == ["claims.parquet", "household.parquet"]
    assert [i["source"] for i in verify["inputs"]] == ["claims", "household"]
    assert verify["outputs"][0]["name"] == "flags.csv" and verify["claim_lines"] == 1
    assert sum(verify["statuses"].values()) == 1
    text = job["log"].read_text(encoding="utf-8")
    for raw_value in (TAXPAYER, CHILD, *NAMES, str(job["dir"])):
        assert raw_value not in text  # file names and digests only: no value, no folder
    code, out, _ = run_cli(["audit", "check", job["log"]], capsys)
    assert code == 0 and "OK" in out and "3 line(s)" in out and lines[2]["hash"] in out


def test_environment_variable_and_default_off(job, capsys, monkeypatch):
    run_job(job, capsys)
    assert not job["log"].exists()  # default: no log
    monkeypatch.setenv("MATCHKIT_AUDIT_LOG", str(job["log"]))
    run_job(job, capsys)
    assert len(read_lines(job["log"])) == 3


def test_failed_run_is_logged_as_error(job, capsys):
    (job["dir"] / "logs").mkdir()
    bad = job["dir"] / "bad.csv"
    bad.write_bytes(b"\x00\x01junk")
    code, _, err = run_cli(["hash", "education", bad, "--key", job["key"], "-o", job["dir"] / "o.parquet",
                            "--audit-log", job["log"]], capsys)
    assert code == 1 and "bad.csv" in err
    code, _, _ = run_cli(["verify", "--claims", bad, "-o", job["dir"] / "f.csv", "--audit-log", job["log"]], capsys)
    assert code == 1
    lines = read_lines(job["log"])
    assert [(e["command"], e["status"]) for e in lines] == [("hash", "error"), ("verify", "error")]
    assert "bad.csv" in lines[0]["error"] and lines[0]["outputs"] == []
    assert lines[0]["inputs"][0]["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
    assert check_log(job["log"]).count == 2


def test_unwritable_or_damaged_log_stops_the_run_before_it_starts(job, capsys):
    out = job["dir"] / "o.parquet"
    code, _, err = run_cli(["hash", "claims", job["claims"], "--key", job["key"], "-o", out, "--audit-log",
                            job["dir"] / "missing" / "audit.log"], capsys)
    assert code == 1 and "audit log folder does not exist" in err and not out.exists()
    (job["dir"] / "logs").mkdir()
    job["log"].write_text('{"seq": 1, "half a line')
    code, _, err = run_cli(["hash", "claims", job["claims"], "--key", job["key"], "-o", out, "--audit-log",
                            job["log"]], capsys)
    assert code == 1 and "incomplete line" in err and "audit.log" in err and not out.exists()


@pytest.fixture
def five_line_log(tmp_path) -> Path:
    log = AuditLog(tmp_path / "audit.log")
    for number in range(5):
        log.append({"command": "hash", "status": "ok", "n": number})
    return log.path


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("tamper, bad_line", [
    ("remove_first", 1), ("remove_middle", 3), ("swap", 2), ("edit_middle", 2), ("edit_last", 5),
    ("edit_and_rehash", 3), ("not_json", 4), ("truncate_last_line", 5), ("duplicate_line", 3),
    ("whitespace", 2),
])
def test_audit_check_names_the_tampered_line(five_line_log, capsys, tamper, bad_line):
    lines = five_line_log.read_bytes().splitlines()
    if tamper == "remove_first":
        del lines[0]
    elif tamper == "remove_middle":
        del lines[2]
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper in ("edit_middle", "edit_last"):
        index = 1 if tamper == "edit_middle" else 4
        lines[index] = lines[index].replace(b'"status":"ok"', b'"status":"no"')
    elif tamper == "edit_and_rehash":  # a careful forger recomputes the line's own hash; the next line sees it
        entry = json.loads(lines[1])
        entry["n"] = 99
        entry["hash"] = line_hash(entry)
        lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    elif tamper == "not_json":
        lines[3] = lines[3][:-5]
    elif tamper == "truncate_last_line":
        five_line_log.write_bytes(b"".join(line + b"\n" for line in lines[:4]) + lines[4][:40])
    elif tamper == "duplicate_line":
        lines.insert(2, lines[1])
    elif tamper == "whitespace":
        lines[1] = lines[1].replace(b'"status":"ok"', b'"status": "ok"')
    if tamper != "truncate_last_line":
        _rewrite(five_line_log, lines)
    code, out, err = run_cli(["audit", "check", five_line_log], capsys)
    assert code == 1 and "OK" not in out
    assert f"line {bad_line}:" in err and "audit.log" in err and "Traceback" not in err


def test_anchor_catches_lines_cut_off_the_end(five_line_log, capsys):
    head = check_log(five_line_log).head
    lines = five_line_log.read_bytes().splitlines()
    code, out, _ = run_cli(["audit", "check", five_line_log, "--anchor", head], capsys)
    assert code == 0 and "5 line(s)" in out
    _rewrite(five_line_log, lines[:3])
    code, out, _ = run_cli(["audit", "check", five_line_log], capsys)
    assert code == 0 and "3 line(s)" in out  # a chain alone cannot see a cut end ...
    code, _, err = run_cli(["audit", "check", five_line_log, "--anchor", head], capsys)
    assert code == 1 and "truncated or rewritten" in err  # ... an anchor recorded elsewhere can


def test_empty_and_missing_log(tmp_path, capsys):
    (tmp_path / "empty.log").write_bytes(b"")
    code, out, _ = run_cli(["audit", "check", tmp_path / "empty.log"], capsys)
    assert code == 0 and "0 line(s)" in out
    code, _, err = run_cli(["audit", "check", tmp_path / "missing.log"], capsys)
    assert code == 1 and "missing.log" in err and "not found" in err


def _append_many(path: str, worker: int, count: int) -> None:
    log = AuditLog(path)
    for number in range(count):
        log.append({"command": "hash", "status": "ok", "worker": worker, "n": number})


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = str(tmp_path / "audit.log")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, worker, 30)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    result = check_log(path)
    assert result.count == 120
    seen = {(e["worker"], e["n"]) for e in read_lines(Path(path))}
    assert len(seen) == 120


def test_log_error_carries_line_number(five_line_log):
    lines = five_line_log.read_bytes().splitlines()
    del lines[1]
    _rewrite(five_line_log, lines)
    with pytest.raises(AuditLogError) as info:
        check_log(five_line_log)
    assert info.value.line == 2
