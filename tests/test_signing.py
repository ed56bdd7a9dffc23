"""Signed extracts: agency signing keys, `hash --sign`, `verify --trust`, and single-byte tampering anywhere."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from matchkit.cli.main import main
from matchkit.errors import KeyFileError, ManifestError, MatchkitError
from matchkit.io.hashed.reader import check_signature, open_hashed
from matchkit.jobs.hash import hash_file
from matchkit.jobs.verify import verify_files
from matchkit.security.keys import load_key
from matchkit.security.signing import (
    SIGNATURE_META_KEY,
    SignatureError,
    load_signing_key,
    load_trust_dir,
    new_signing_key,
    read_signature_record,
    write_signing_key,
)
from tests.conftest import make_id

TAXPAYER = make_id("32040219850611004")
CLAIMS_HEADER = ["claim_id", "taxpayer_id", "deduction", "tax_year", "subject_id", "subject_name",
                 "subject_birth_date", "subject_relation", "monthly_amount", "education_stage"]
EDU_HEADER = ["student_id", "student_name", "birth_date", "education_stage", "enrolled_from", "enrolled_to"]
HOUSEHOLD_HEADER = ["parent_id", "parent_name", "child_id", "child_name"]


def child_id(i: int) -> str:
    return make_id(f"320402201{i % 8}{i % 12 + 1:02d}{i % 28 + 1:02d}{100 + i:03d}")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A shared key, two agencies' signing keys (one trusted), and the raw files of a small job."""
    root = tmp_path_factory.mktemp("signing")
    from matchkit.security.keys import new_key, write_key

    paths: dict[str, Path] = {"root": root, "key": write_key(new_key(), root / "shared.key")}
    trust = root / "trust"
    trust.mkdir()
    for agency in ("education", "household", "tax"):
        private, public = write_signing_key(new_signing_key(f"{agency} bureau"), root / f"{agency}.key")
        paths[f"{agency}_sign"] = private
        (trust / public.name).write_bytes(public.read_bytes())
    private, _ = write_signing_key(new_signing_key("rogue"), root / "rogue.key")
    paths["rogue_sign"] = private
    paths["trust"] = trust
    children = [child_id(i) for i in range(40)]
    paths["claims_csv"] = write_csv(root / "claims.csv", CLAIMS_HEADER, [
        [f"C{i}", TAXPAYER, "children_education", "2024", c, "张小明", "", "child", "2000", "compulsory"]
        for i, c in enumerate(children)])
    paths["education_csv"] = write_csv(root / "education.csv", EDU_HEADER, [
        [c, "张小明", "", "compulsory", "2021-09", ""] for c in children])
    paths["household_csv"] = write_csv(root / "household.csv", HOUSEHOLD_HEADER, [
        [TAXPAYER, "张大明", c, "张小明"] for c in children])
    key = load_key(paths["key"])
    for source in ("claims", "education", "household"):
        signer = load_signing_key(paths[f"{'tax' if source == 'claims' else source}_sign"])
        paths[source] = hash_file(source, paths[f"{source}_csv"], key, root / f"{source}.parquet",
                                  signing_key=signer).output
    paths["claims_unsigned"] = hash_file("claims", paths["claims_csv"], key, root / "claims_unsigned.parquet").output
    paths["education_rogue"] = hash_file("education", paths["education_csv"], key, root / "education_rogue.parquet",
                                         signing_key=load_signing_key(paths["rogue_sign"])).output
    return paths


# --- keys -----------------------------------------------------------------------------------------------------------

def test_new_signing_key_writes_private_0600_and_public_beside_it(tmp_path, capsys):
    code, out, _ = run_cli(["key", "new-signing", "-o", tmp_path / "edu.key", "--signer", "教育局"], capsys)
    assert code == 0
    private, public = tmp_path / "edu.key", tmp_path / "edu.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.is_file() and json.loads(public.read_text())["signer"] == "教育局"
    key = load_signing_key(private)
    assert key.public.fingerprint in out
    private_b64 = json.loads(private.read_text())["private_key"]
    assert private_b64 not in out and "private_key" not in public.read_text()
    for path in (private, public):
        code, info_out, _ = run_cli(["key", "info", path], capsys)
        assert code == 0 and key.public.fingerprint in info_out and "教育局" in info_out
        assert private_b64 not in info_out
    code, _, err = run_cli(["key", "new-signing", "-o", tmp_path / "edu.key"], capsys)
    assert code == 1 and "overwrite" in err


@pytest.mark.parametrize("fault", ["world_readable", "truncated", "public_given", "shared_given", "missing",
                                   "mismatched_public"])
def test_bad_signing_key_refused_by_name(tmp_path, key_file, capsys, fault):
    private, public = write_signing_key(new_signing_key("edu"), tmp_path / "edu.key")
    target = private
    if fault == "world_readable":
        os.chmod(private, 0o644)
    elif fault == "truncated":
        private.write_bytes(private.read_bytes()[:60])
    elif fault == "public_given":
        target = public
    elif fault == "shared_given":
        target = key_file
    elif fault == "missing":
        target = tmp_path / "nowhere.key"
    elif fault == "mismatched_public":
        body = json.loads(private.read_text())
        body["public_key"] = json.loads((write_signing_key(new_signing_key("x"), tmp_path / "x.key")[1]).read_text())[
            "public_key"]
        private.write_text(json.dumps(body))
    source = write_csv(tmp_path / "e.csv", EDU_HEADER, [[child_id(1), "张三", "", "compulsory", "2021-09", ""]])
    code, _, err = run_cli(["hash", "education", source, "--key", key_file, "-o", tmp_path / "o.parquet",
                            "--sign", target], capsys)
    assert code == 1 and target.name in err and "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists()


def test_trust_folder_faults(tmp_path, world, capsys):
    args = ["verify", "--claims", world["claims"], world["education"], "-o", tmp_path / "f.csv", "--trust"]
    code, _, err = run_cli([*args, tmp_path / "nope"], capsys)
    assert code == 1 and "trust folder not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli([*args, tmp_path / "empty"], capsys)
    assert code == 1 and "no *.pub" in err
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "tax.pub").write_bytes(world["tax_sign"].read_bytes())
    code, _, err = run_cli([*args, leaky], capsys)
    assert code == 1 and "tax.pub" in err and "private key" in err
    (leaky / "tax.pub").write_text("{not json")
    code, _, err = run_cli([*args, leaky], capsys)
    assert code == 1 and "tax.pub" in err and "Traceback" not in err
    assert not (tmp_path / "f.csv").exists()


# --- signing and verifying ------------------------------------------------------------------------------------------

def test_signed_files_verify_with_trust_and_without(tmp_path, world, capsys):
    record = read_signature_record(world["education"])
    assert record is not None and record["signer"] == "education bureau" and len(record["signature"]) == 128
    code, out, err = run_cli(["verify", "--claims", world["claims"], world["education"], world["household"],
                              "-o", tmp_path / "f.csv", "--trust", world["trust"]], capsys)
    assert code == 0, err
    assert "education.parquet: signature OK, signed by education bureau" in out
    assert (tmp_path / "f.csv").is_file()
    code, _, err = run_cli(["verify", "--claims", world["claims"], world["education"], "-o", tmp_path / "g.csv"],
                           capsys)
    assert code == 0, err  # signatures are optional without a trust folder
    result = verify_files(world["claims"], [world["education"]], trust=world["trust"])
    assert {d["name"]: d.get("signer", "").split(" (")[0] for d in result.inputs} == {
        "claims.parquet": "tax bureau", "education.parquet": "education bureau"}


def test_hash_cli_signs(tmp_path, world, capsys):
    code, out, _ = run_cli(["hash", "household", world["household_csv"], "--key", world["key"], "-o",
                            tmp_path / "h.parquet", "--sign", world["household_sign"]], capsys)
    assert code == 0 and "signed by 'household bureau'" in out
    info = check_signature(tmp_path / "h.parquet", load_trust_dir(world["trust"]))
    assert info.signer == "household bureau"
    assert open_hashed(tmp_path / "h.parquet").manifest.rows_hashed == 40


def test_unsigned_file_refused_when_trust_is_configured(tmp_path, world, capsys, monkeypatch):
    args = ["verify", "--claims", world["claims_unsigned"], world["education"], "-o", tmp_path / "f.csv"]
    code, _, err = run_cli([*args, "--trust", world["trust"]], capsys)
    assert code == 1 and "claims_unsigned.parquet" in err and "not signed" in err
    monkeypatch.setenv("MATCHKIT_TRUST_DIR", str(world["trust"]))  # the environment variable works the same
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "claims_unsigned.parquet" in err and "not signed" in err
    assert not (tmp_path / "f.csv").exists()


def test_file_signed_by_unknown_agency_refused(tmp_path, world, capsys):
    code, _, err = run_cli(["verify", "--claims", world["claims"], world["education_rogue"], "-o",
                            tmp_path / "f.csv", "--trust", world["trust"]], capsys)
    assert code == 1 and "education_rogue.parquet" in err and "unknown signer 'rogue'" in err
    assert not (tmp_path / "f.csv").exists()


def test_resigning_a_changed_file_with_an_untrusted_key_is_refused(tmp_path, world):
    """Copy a trusted file's signer record onto a file signed by another key: the bytes no longer match."""
    rogue = world["education_rogue"].read_bytes()
    trusted = read_signature_record(world["education"])
    rogue_record = read_signature_record(world["education_rogue"])
    assert trusted is not None and rogue_record is not None
    old = json.dumps(rogue_record, sort_keys=True, ensure_ascii=False).encode()
    new = json.dumps(trusted, sort_keys=True, ensure_ascii=False).encode()
    assert len(old) != len(new) or old != new
    forged = tmp_path / "forged.parquet"
    forged.write_bytes(rogue.replace(old, new))
    with pytest.raises(MatchkitError) as info:
        check_signature(forged, load_trust_dir(world["trust"]))
    assert "forged.parquet" in str(info.value)


def _regions(data: bytes) -> dict[str, range]:
    footer_length = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_length
    manifest_at = data.index(b'"format_version"')
    manifest_start = data.rindex(b"{", 0, manifest_at)
    manifest_end = data.index(b"}", manifest_at) + 1
    signature_at = data.index(b'"signature": "') + len(b'"signature": "')
    digest_at = data.index(b'"digest": "') + len(b'"digest": "')
    return {
        "digest": range(digest_at, digest_at + 64),
        "magic": range(4),
        "data_pages": range(4, footer_start),
        "manifest": range(manifest_start, manifest_end),
        "signature": range(signature_at, signature_at + 128),
        "footer": range(footer_start, len(data) - 8),
        "tail": range(len(data) - 8, len(data)),
    }


def test_every_single_byte_flip_is_refused(tmp_path, world):
    """Flip one bit at every position of the footer (schema, row groups, manifest, signer record) and at every
    third position of the data pages: the signature check refuses each, and never raises anything else."""
    data = world["education"].read_bytes()
    regions = _regions(data)
    trust = load_trust_dir(world["trust"])
    check_signature(world["education"], trust)
    positions = sorted(set(range(len(data))) - {p for p in regions["data_pages"] if p % 3})
    flipped = tmp_path / "flipped.parquet"
    outcomes: dict[str, int] = {}
    for position in positions:
        for mask in (0x01, 0x80) if any(position in regions[r] for r in ("manifest", "signature", "digest")) \
                else (0x04,):
            body = bytearray(data)
            body[position] ^= mask
            flipped.write_bytes(body)
            with pytest.raises(MatchkitError) as info:
                check_signature(flipped, trust)
            message = str(info.value)
            assert message.startswith(str(flipped)), message
            if position in regions["data_pages"]:
                assert "changed after it was signed" in message  # caught as a digest/signature failure
            outcomes[message.split(": ", 1)[1][:30]] = outcomes.get(message.split(": ", 1)[1][:30], 0) + 1
    assert len(positions) > 1000 and sum(outcomes.values()) >= len(positions)


@pytest.mark.parametrize("region", ["magic", "data_pages", "manifest", "signature", "digest", "footer", "tail"])
def test_tampered_file_refused_by_verify_cli(tmp_path, world, capsys, region):
    data = world["education"].read_bytes()
    span = _regions(data)[region]
    for position in sorted({span.start, span.start + len(span) // 3, span.start + len(span) // 2, span.stop - 1}):
        body = bytearray(data)
        body[position] ^= 0x01
        target = tmp_path / f"edu_{position}.parquet"
        target.write_bytes(body)
        code, _, err = run_cli(["verify", "--claims", world["claims"], target, "-o", tmp_path / "f.csv",
                                "--trust", world["trust"]], capsys)
        assert code == 1, f"{region} flip at {position} accepted"
        assert target.name in err and "Traceback" not in err
        assert not (tmp_path / "f.csv").exists()


def test_truncated_or_extended_signed_file_refused(tmp_path, world):
    data = world["claims"].read_bytes()
    trust = load_trust_dir(world["trust"])
    for name, body in [("cut_tail", data[:-1]), ("cut_half", data[: len(data) // 2]), ("appended", data + b"\0"),
                       ("prepended", b"\0" + data), ("empty", b"")]:
        target = tmp_path / f"{name}.parquet"
        target.write_bytes(body)
        with pytest.raises(MatchkitError) as info:
            check_signature(target, trust)
        assert f"{name}.parquet" in str(info.value)


def test_signature_and_digest_cover_metadata_only_change(tmp_path, world):
    """Rewriting the manifest (same length, still valid JSON) breaks the signature and, since file format 2, the
    whole-file digest too: refused with --trust and without."""
    data = world["education"].read_bytes()
    assert b'"purpose": "iit-special-deduction"' in data
    forged = tmp_path / "forged.parquet"
    forged.write_bytes(data.replace(b'"purpose": "iit-special-deduction"', b'"purpose": "iit-special-deductioN"'))
    with pytest.raises(ManifestError, match="does not match its digest"):
        open_hashed(forged)
    with pytest.raises(SignatureError, match="changed after it was signed"):
        check_signature(forged, load_trust_dir(world["trust"]))


def test_digest_covers_the_signature(tmp_path, world):
    """A signed file read without a trust folder: a changed signature digit is still refused, by the digest."""
    data = bytearray(world["education"].read_bytes())
    at = data.index(b'"signature": "') + len(b'"signature": "')
    data[at + 10] = ord("0") if data[at + 10] != ord("0") else ord("1")
    forged = tmp_path / "forged.parquet"
    forged.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="does not match its digest"):
        open_hashed(forged)


def test_signature_record_is_in_footer_metadata(world):
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(world["claims"]).metadata
    assert SIGNATURE_META_KEY in metadata and b"matchkit.manifest" in metadata
    assert read_signature_record(world["claims_unsigned"]) is None


def test_signing_key_loader_errors_are_key_file_errors(tmp_path):
    with pytest.raises(KeyFileError, match="not found"):
        load_signing_key(tmp_path / "missing.key")
