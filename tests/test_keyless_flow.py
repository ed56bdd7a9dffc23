"""The keyless flow (SPEC §7) end to end through the CLI on the bundled sample data.

key new-oprf (one per agency) -> seal (signed, audited) -> request -> answer (audited) -> open (--trust) -> verify,
beside the shared-key flow on the same data: the flags must be equal line for line. Every artefact is scanned for
raw IDs, names and birth dates; refusals exit 1 with a clear message and are logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.keyless.request import ELEMENT_SCHEMA, REQUEST_META_KEY
from tests.test_privacy import SOURCES, identifying_values, parquet_texts, sample_file

EXTRACTS = [s for s in SOURCES if s != "claims"]
FLAG_COLUMNS = ["claim_id", "deduction", "status", "reasons", "claimed_amount", "allowed_amount", "verified_months",
                "match", "match_score"]


class Runner:
    def __init__(self) -> None:
        self.console: list[str] = []

    def __call__(self, args: list[str]) -> tuple[int, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main([str(a) for a in args])
        self.console.extend([stdout.getvalue(), stderr.getvalue()])
        return code, stdout.getvalue() + stderr.getvalue()


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("keyless_flow")
    run = Runner()
    # the shared-key flow
    shared = out / "shared"
    shared.mkdir()
    assert run(["key", "new", "-o", shared / "shared.key"])[0] == 0
    for source in SOURCES:
        code, text = run(["hash", source, sample_file(source), "--key", shared / "shared.key", "-o",
                          shared / f"{source}.parquet"])
        assert code == 0, text
    assert run(["verify", "--claims", shared / "claims.parquet", *[shared / f"{s}.parquet" for s in EXTRACTS],
                "-o", shared / "flags.csv"])[0] == 0
    # the keyless flow: each agency its own OPRF key and signing key
    kl = out / "keyless"
    kl.mkdir()
    trust = out / "trust"
    trust.mkdir()
    for source in EXTRACTS:
        assert run(["key", "new-oprf", "-o", kl / f"{source}.oprf"])[0] == 0
        assert run(["key", "new-signing", "-o", kl / f"{source}.key", "--signer", source])[0] == 0
        (trust / f"{source}.pub").write_bytes((kl / f"{source}.pub").read_bytes())
        code, text = run(["seal", source, sample_file(source), "--oprf-key", kl / f"{source}.oprf", "--tax-year",
                          "2024", "-o", kl / f"{source}.table.parquet", "--rejects", kl / f"{source}.rejects.csv",
                          "--sign", kl / f"{source}.key", "--audit-log", kl / f"{source}.audit.log"])
        assert code == 0, text
    code, text = run(["request", sample_file("claims"), "-o", kl / "request.parquet", "--state", kl / "state.zip",
                      "--rejects", kl / "claims.rejects.csv"])
    assert code == 0, text
    for source in EXTRACTS:
        code, text = run(["answer", kl / "request.parquet", "--oprf-key", kl / f"{source}.oprf", "-o",
                          kl / f"{source}.answer.parquet", "--max-elements", "100000", "--sign", kl / f"{source}.key",
                          "--audit-log", kl / f"{source}.audit.log"])
        assert code == 0, text
    args: list = ["open", "--state", kl / "state.zip", "-o", kl / "opened", "--trust", trust]
    for source in EXTRACTS:
        args += ["--answer", f"{source}={kl / f'{source}.answer.parquet'}",
                 "--table", f"{source}={kl / f'{source}.table.parquet'}"]
    code, text = run(args)
    assert code == 0, text
    code, text = run(["verify", "--claims", kl / "opened" / "claims.parquet",
                      *[kl / "opened" / f"{s}.parquet" for s in EXTRACTS], "-o", kl / "flags.csv",
                      "--report", kl / "report.html"])
    assert code == 0, text
    return {"out": out, "shared": shared, "kl": kl, "run": run, "trust": trust}


def test_keyless_flags_equal_shared_key_flags_line_for_line(flows: dict) -> None:
    shared = pd.read_csv(flows["shared"] / "flags.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    keyless = pd.read_csv(flows["kl"] / "flags.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert len(shared) == len(keyless) == 80
    pd.testing.assert_frame_equal(shared[FLAG_COLUMNS], keyless[FLAG_COLUMNS])
    assert (keyless["match"] == "fuzzy").sum() >= 1  # fuzzy links (mistyped / damaged IDs) are part of it
    assert (keyless["status"] == "verified").sum() >= 10


def test_only_some_rows_open(flows: dict) -> None:
    for source in EXTRACTS:
        opened = pq.read_table(flows["kl"] / "opened" / f"{source}.parquet").num_rows
        total = json.loads(pq.read_metadata(flows["kl"] / f"{source}.table.parquet").metadata[b"matchkit.sealed"])
        assert 0 < opened < total["rows"], source


def _zip_texts(path: Path) -> list[str]:
    texts = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            texts.append(data.decode("latin-1"))
            if name.endswith(".parquet"):
                member = Path(str(path) + "." + name)
                member.write_bytes(data)
                texts.extend(parquet_texts(member))
                member.unlink()
    return texts


def test_no_raw_identifier_in_any_keyless_artefact(flows: dict) -> None:
    secrets_ = set()
    for source in SOURCES:
        secrets_ |= identifying_values(source, sample_file(source))
    artefacts: dict[str, str] = {}
    kl: Path = flows["kl"]
    for path in sorted([*kl.iterdir(), *(kl / "opened").iterdir()]):
        if path.suffix in (".oprf", ".key") or path.is_dir():
            continue
        if path.suffix == ".parquet":
            artefacts[path.name] = "\n".join(parquet_texts(path))
            artefacts[path.name + " (bytes)"] = path.read_bytes().decode("latin-1")
        elif path.suffix == ".zip":
            artefacts[path.name] = "\n".join(_zip_texts(path))
        else:
            artefacts[path.name] = path.read_bytes().decode("utf-8", "replace")
    artefacts["console"] = "\n".join(flows["run"].console)
    assert {"request.parquet", "state.zip", "household.table.parquet", "household.answer.parquet",
            "household.audit.log", "education.rejects.csv", "report.html"} <= set(artefacts)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets_, key=len, reverse=True)))
    leaks = {name: sorted(set(pattern.findall(text)))[:5] for name, text in artefacts.items() if pattern.search(text)}
    assert leaks == {}


def test_state_is_private_and_never_overwritten(flows: dict, tmp_path: Path) -> None:
    kl: Path = flows["kl"]
    run = flows["run"]
    assert (kl / "state.zip").stat().st_mode & 0o077 == 0
    code, text = run(["request", sample_file("claims"), "-o", tmp_path / "r.parquet", "--state", kl / "state.zip"])
    assert code == 1 and "refusing to overwrite" in text
    leaky = tmp_path / "leaky.zip"
    leaky.write_bytes((kl / "state.zip").read_bytes())
    os.chmod(leaky, 0o644)
    code, text = run(["open", "--state", leaky, "--answer", f"education={kl / 'education.answer.parquet'}",
                      "--table", f"education={kl / 'education.table.parquet'}", "-o", tmp_path / "o"])
    assert code == 1 and "readable by group or others" in text


def test_answer_refusals_exit_1_and_are_logged(flows: dict, tmp_path: Path) -> None:
    kl: Path = flows["kl"]
    run = flows["run"]
    log = tmp_path / "agency.log"
    key = kl / "education.oprf"
    code, text = run(["answer", kl / "request.parquet", "--oprf-key", key, "-o", tmp_path / "a1.parquet",
                      "--max-elements", "10", "--audit-log", log])
    assert code == 1 and "over the limit of 10" in text
    # a malformed element: a well-formed request file whose element is not a ristretto255 encoding
    bad = tmp_path / "bad.parquet"
    manifest = json.loads(pq.read_metadata(kl / "request.parquet").metadata[REQUEST_META_KEY])
    elements = pq.read_table(kl / "request.parquet").column("element").to_pylist()
    elements[len(elements) // 2] = b"\xff" * 32
    writer = HashedFileWriter(bad, ELEMENT_SCHEMA)
    writer.write(pa.table({"element": pa.array(elements, pa.binary(32))}, schema=ELEMENT_SCHEMA))
    writer.close_artefact(manifest, meta_key=REQUEST_META_KEY)
    code, text = run(["answer", bad, "--oprf-key", key, "-o", tmp_path / "a2.parquet", "--audit-log", log])
    assert code == 1 and "not a valid ristretto255 encoding" in text
    # a year the key does not serve
    assert run(["key", "new-oprf", "-o", tmp_path / "old.oprf", "--years", "2019-2020"])[0] == 0
    code, text = run(["answer", kl / "request.parquet", "--oprf-key", tmp_path / "old.oprf", "-o",
                      tmp_path / "a3.parquet", "--audit-log", log])
    assert code == 1 and "tax year 2024 is not served" in text
    # a purpose the key does not serve
    assert run(["key", "new-oprf", "-o", tmp_path / "other.oprf", "--purpose", "housing"])[0] == 0
    code, text = run(["answer", kl / "request.parquet", "--oprf-key", tmp_path / "other.oprf", "-o",
                      tmp_path / "a4.parquet", "--audit-log", log])
    assert code == 1 and "is not served" in text
    assert not any((tmp_path / f"a{i}.parquet").exists() for i in range(1, 5))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["error"] * 4
    assert all(line["command"] == "answer" and line["request_id"] == manifest["request_id"] for line in lines)
    assert all(line["element_count"] == manifest["element_count"] and line["time"] for line in lines)
    assert run(["audit", "check", log])[0] == 0


def test_agency_audit_log_records_seal_and_answer(flows: dict) -> None:
    lines = [json.loads(line) for line in (flows["kl"] / "household.audit.log").read_text().splitlines()]
    assert [line["command"] for line in lines] == ["seal", "answer"]
    assert all(line["status"] == "ok" for line in lines)
    request = json.loads(pq.read_metadata(flows["kl"] / "request.parquet").metadata[REQUEST_META_KEY])
    assert lines[1]["request_id"] == request["request_id"]
    assert lines[1]["element_count"] == request["element_count"]
    assert lines[1]["purpose"] == "iit-special-deduction" and lines[1]["tax_year"] == 2024


def test_the_same_list_twice_gives_unrelated_elements(flows: dict, tmp_path: Path) -> None:
    run = flows["run"]
    for name in ("one", "two"):
        code, text = run(["request", sample_file("claims"), "-o", tmp_path / f"{name}.parquet", "--state",
                          tmp_path / f"{name}.zip"])
        assert code == 0, text
    one = pq.read_table(tmp_path / "one.parquet").column("element").to_pylist()
    two = pq.read_table(tmp_path / "two.parquet").column("element").to_pylist()
    assert len(one) == len(two) > 1000
    assert not set(one) & set(two)  # fresh blinds: no element repeats across requests
    assert len(set(one)) == len(one)  # deduplicated: no repetition inside a request either

    def inputs(name: str) -> list[bytes]:
        with zipfile.ZipFile(tmp_path / f"{name}.zip") as archive:
            return pq.read_table(io.BytesIO(archive.read("elements.parquet"))).column("input").to_pylist()

    first, second = inputs("one"), inputs("two")
    assert sorted(first) == sorted(second)  # the same tokens were requested ...
    positions = {x: i for i, x in enumerate(second)}
    moved = sum(1 for i, x in enumerate(first) if positions[x] != i)
    assert moved > 0.99 * len(first)  # ... in an unrelated order


def test_open_refuses_unsigned_and_mismatched_inputs(flows: dict, tmp_path: Path) -> None:
    kl: Path = flows["kl"]
    run = flows["run"]
    # an answer from another agency's key does not fit the table
    code, text = run(["open", "--state", kl / "state.zip", "--answer", f"education={kl / 'household.answer.parquet'}",
                      "--table", f"education={kl / 'education.table.parquet'}", "-o", tmp_path / "o1"])
    assert code == 1 and "give each table its own agency's answer" in text
    # a table sealed for another source than its label
    code, text = run(["open", "--state", kl / "state.zip", "--answer", f"education={kl / 'education.answer.parquet'}",
                      "--table", f"education={kl / 'household.table.parquet'}", "-o", tmp_path / "o2"])
    assert code == 1 and "sealed 'household' table" in text
    # with --trust, an unsigned table is refused
    unsigned = tmp_path / "unsigned.oprf"
    assert run(["key", "new-oprf", "-o", unsigned])[0] == 0
    assert run(["seal", "only_child", sample_file("only_child"), "--oprf-key", unsigned, "--tax-year", "2024", "-o",
                tmp_path / "oc.parquet"])[0] == 0
    assert run(["answer", kl / "request.parquet", "--oprf-key", unsigned, "-o", tmp_path / "oc.answer.parquet"])[0] == 0
    code, text = run(["open", "--state", kl / "state.zip", "--answer", f"only_child={tmp_path / 'oc.answer.parquet'}",
                      "--table", f"only_child={tmp_path / 'oc.parquet'}", "-o", tmp_path / "o3",
                      "--trust", flows["trust"]])
    assert code == 1
    code, text = run(["open", "--state", kl / "state.zip", "--answer", f"only_child={tmp_path / 'oc.answer.parquet'}",
                      "--table", f"only_child={tmp_path / 'oc.parquet'}", "-o", tmp_path / "o4"])
    assert code == 0, text


def test_every_input_row_is_sealed_or_rejected(flows: dict) -> None:
    for source in EXTRACTS:
        manifest = json.loads(pq.read_metadata(flows["kl"] / f"{source}.table.parquet").metadata[b"matchkit.sealed"])
        rejects = pd.read_csv(flows["kl"] / f"{source}.rejects.csv", dtype=str)
        assert list(rejects.columns) == ["line", "column", "reason"]
        assert manifest["rows_in"] == manifest["rows_sealed"] + manifest["rows_rejected"]
        assert manifest["rows_rejected"] == len(rejects)
        assert manifest["rows"] == manifest["rows_sealed"]
        hashed = json.loads(pq.read_metadata(flows["shared"] / f"{source}.parquet").metadata[b"matchkit.manifest"])
        assert (manifest["rows_sealed"], manifest["rows_rejected"]) == (hashed["rows_hashed"], hashed["rows_rejected"])


def test_opened_files_are_format_2_hashed_files(flows: dict) -> None:
    """What `open` writes is read by main's hashed-file reader: format 2, whole-file digest checked, a Manifest."""
    from matchkit.io.hashed.format import FILE_FORMAT_VERSION
    from matchkit.io.hashed.reader import open_hashed

    opened = flows["kl"] / "opened"
    for source in SOURCES:
        hashed = open_hashed(opened / f"{source}.parquet")
        assert hashed.digest is not None and len(hashed.digest) == 64
        assert hashed.manifest.source == source and hashed.manifest.input_format == (
            "keyless" if source != "claims" else "csv")
        raw = json.loads(pq.read_metadata(opened / f"{source}.parquet").metadata[b"matchkit.manifest"])
        assert raw["format_version"] == FILE_FORMAT_VERSION


def _altered(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[len(data) // 3] ^= 0x01  # a byte of the data pages: the footer and its manifest still parse
    target.write_bytes(bytes(data))
    return target


def test_altered_keyless_artefacts_are_refused_naming_the_file(flows: dict, tmp_path: Path) -> None:
    kl: Path = flows["kl"]
    run = flows["run"]
    request = _altered(kl / "request.parquet", tmp_path / "request.parquet")
    code, text = run(["answer", request, "--oprf-key", kl / "education.oprf", "-o", tmp_path / "a.parquet"])
    assert code == 1 and "altered" in text and str(request) in text
    assert not (tmp_path / "a.parquet").exists()
    table = _altered(kl / "education.table.parquet", tmp_path / "table.parquet")
    answer = _altered(kl / "education.answer.parquet", tmp_path / "answer.parquet")
    for label, (t, a) in {"table": (table, kl / "education.answer.parquet"),
                          "answer": (kl / "education.table.parquet", answer)}.items():
        code, text = run(["open", "--state", kl / "state.zip", "--answer", f"education={a}", "--table",
                          f"education={t}", "-o", tmp_path / f"o_{label}"])
        assert code == 1 and "altered" in text, text
        assert str(t if label == "table" else a) in text
        # signed by a trusted agency, yet changed after signing: refused too
        code, text = run(["open", "--state", kl / "state.zip", "--answer", f"education={a}", "--table",
                          f"education={t}", "-o", tmp_path / f"s_{label}", "--trust", flows["trust"]])
        assert code == 1, text


def test_an_empty_extract_is_refused_unless_allowed(flows: dict, tmp_path: Path) -> None:
    """seal and request read raw rows as hash does: a header-only input is EmptyInputError (exit 1, nothing
    written) unless --allow-empty."""
    kl: Path = flows["kl"]
    run = flows["run"]
    for source in ("education", "claims"):
        header = sample_file(source).read_bytes().splitlines()[0]  # any encoding: the header line as it is
        (tmp_path / f"{source}.csv").write_bytes(header + b"\n")
    empty = tmp_path / "education.csv"
    code, text = run(["seal", "education", empty, "--oprf-key", kl / "education.oprf", "--tax-year", "2024",
                      "-o", tmp_path / "t.parquet", "--rejects", tmp_path / "r.csv"])
    assert code == 1 and "no data rows" in text and "--allow-empty" in text and str(empty) in text
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "r.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    code, text = run(["seal", "education", empty, "--oprf-key", kl / "education.oprf", "--tax-year", "2024",
                      "-o", tmp_path / "t.parquet", "--rejects", tmp_path / "r.csv", "--allow-empty"])
    assert code == 0, text
    sealed = json.loads(pq.read_metadata(tmp_path / "t.parquet").metadata[b"matchkit.sealed"])
    assert (sealed["rows_in"], sealed["rows"]) == (0, 0)
    code, text = run(["request", tmp_path / "claims.csv", "-o", tmp_path / "q.parquet", "--state", tmp_path / "s"])
    assert code == 1 and "no data rows" in text
    assert not (tmp_path / "q.parquet").exists() and not (tmp_path / "s").exists()


def test_a_failed_seal_or_request_leaves_no_rejects(flows: dict, tmp_path: Path) -> None:
    """As for hash, the rejects file is published only after the run's output: an output that cannot be written
    (its folder is missing) leaves neither, and no temporary."""
    kl: Path = flows["kl"]
    run = flows["run"]
    code, text = run(["seal", "education", sample_file("education"), "--oprf-key", kl / "education.oprf",
                      "--tax-year", "2024", "-o", tmp_path / "missing" / "t.parquet", "--rejects", tmp_path / "r.csv"])
    assert code == 1 and "missing" in text
    code, text = run(["request", sample_file("claims"), "-o", tmp_path / "missing" / "q.parquet", "--state",
                      tmp_path / "s", "--rejects", tmp_path / "q.csv"])
    assert code == 1 and "missing" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "rejects, state or a temporary left behind"
