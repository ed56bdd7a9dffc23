"""The contracts between the rooms (issue 12): hashed-file format 2 guards every byte, the manifest is a validated
dataclass, column names come from one module, library calls leave the process as it is, the environment is read
in one place, and the public API loads lazily."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import matchkit
from matchkit.cli.main import main
from matchkit.encode.fields_table import LinkTableEncoder
from matchkit.encode.person import Encoder
from matchkit.encode.person_table import TableEncoder
from matchkit.errors import KeyFileError, ManifestError, MatchkitError
from matchkit.io.hashed import format as fmt
from matchkit.io.hashed.reader import open_hashed
from matchkit.jobs.hash import hash_file
from matchkit.jobs.verify import verify_files
from matchkit.schema import load_schema
from matchkit.security.keys import SharedKey

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
KEY = SharedKey("mk-test", bytes(range(32)))
FEBRL_HEADER = "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,date_of_birth," \
               "soc_sec_id"
GIVEN = ["anthony", "jessica", "liam", "olivia", "noah", "mia", "lucas", "chloe", "jack", "ella"]
SURNAMES = ["chandler", "liddy", "nguyen", "smith", "brown", "wilson", "taylor", "martin"]


def febrl_csv(path: Path, prefix: str, rows: int = 40) -> Path:
    lines = [FEBRL_HEADER]
    for i in range(rows):
        lines.append(f"{prefix}-{i:04d},{GIVEN[i % 10]},{SURNAMES[i % 8]},{i + 1},{i} paul street,,dapto,"
                     f"{2500 + i % 7},nsw,19{50 + i % 40}0{1 + i % 9}1{i % 10},{7000000 + i * 13}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hashed")
    out = {name: hash_file(name, SAMPLE / f"{name}.csv", KEY, folder / f"{name}.parquet").output
           for name in ("claims", "education")}
    for side in ("left", "right"):
        out[side] = hash_file("febrl", febrl_csv(folder / f"{side}.csv", side[0]), KEY,
                              folder / f"{side}.parquet").output
    return out


def regions(data: bytes) -> dict[str, range]:
    """Byte ranges of a hashed file: magic, data pages, the footer's Parquet schema (first column name), the
    manifest, the digest record, footer length and trailing magic."""
    footer_length = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_length
    column = data.index(b"_line", footer_start)
    manifest_at = data.index(b'"format_version"')
    digest_at = data.index(b'"digest": "') + len(b'"digest": "')
    return {
        "magic": range(4),
        "data_pages": range(4, footer_start),
        "schema": range(column, column + 5),
        "manifest": range(data.rindex(b"{", 0, manifest_at), data.index(b"}", manifest_at) + 1),
        "digest": range(digest_at, digest_at + fmt.DIGEST_HEX),
        "footer": range(footer_start, len(data) - 8),
        "tail": range(len(data) - 8, len(data)),
    }


def flipped(data: bytes, position: int, mask: int = 0x01) -> bytes:
    body = bytearray(data)
    body[position] ^= mask
    return bytes(body)


def test_every_byte_of_an_unsigned_file_is_guarded(tmp_path, hashed):
    """One flipped bit anywhere -- every byte of the magic, the manifest, the digest record and the tail, every
    third byte of the rest of the footer (Parquet schema, row groups, Arrow schema), every 50th byte of the data
    pages -- is refused as a ManifestError, nothing else."""
    data = hashed["education"].read_bytes()
    where = regions(data)
    open_hashed(hashed["education"])
    every = ("magic", "manifest", "digest", "tail")
    positions = [p for p in range(len(data)) if any(p in where[r] for r in every)
                 or (p in where["footer"] and p % 3 == 0) or p % 50 == 0]
    target = tmp_path / "flipped.parquet"
    for position in positions:
        for mask in (0x01, 0x80) if any(position in where[r] for r in every) else (0x04,):
            target.write_bytes(flipped(data, position, mask))
            with pytest.raises(ManifestError) as info:
                open_hashed(target)
            assert str(info.value).startswith(str(target))
    assert len(positions) > 1000, len(positions)


@pytest.mark.parametrize("region", ["data_pages", "schema", "manifest", "digest", "footer", "tail"])
def test_verify_and_link_refuse_a_flipped_bit(tmp_path, hashed, capsys, region):
    for name, command in (("education", ["verify", "--claims", hashed["claims"]]),
                          ("left", ["link", hashed["right"]])):
        data = hashed[name].read_bytes()
        span = regions(data)[region]
        target = tmp_path / f"{name}_{region}.parquet"
        target.write_bytes(flipped(data, span.start + len(span) // 2))
        output = tmp_path / "out.csv"
        args = [*command, target, "-o", output] if name == "education" else ["link", target, *command[1:], "-o",
                                                                             output]
        assert main([str(a) for a in args]) == 1, f"{name}: {region} flip accepted"
        err = capsys.readouterr().err
        assert target.name in err and "Traceback" not in err
        assert not output.exists()


def test_format_1_files_are_refused_with_what_to_do(tmp_path, hashed, capsys):
    """A file of the old format (digest of the data pages only, no digest record) is refused, not trusted."""
    table = pq.read_table(hashed["education"])
    manifest = {**open_hashed(hashed["education"]).manifest.to_json(), "format_version": 1, "content_digest": "0"}
    old = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata({fmt.MANIFEST_KEY: json.dumps(manifest).encode()}), old)
    with pytest.raises(ManifestError, match="format 1.*hash the raw extract again"):
        open_hashed(old)
    assert main(["verify", "--claims", str(hashed["claims"]), str(old), "-o", str(tmp_path / "f.csv")]) == 1
    assert "old.parquet" in capsys.readouterr().err


def test_manifest_round_trips_and_validates(hashed):
    for name in ("education", "left"):
        manifest = open_hashed(hashed[name]).manifest
        assert fmt.Manifest.from_bytes(manifest.to_bytes(), "x.parquet") == manifest
    link = open_hashed(hashed["left"]).manifest
    assert link.kind == "link" and link.linkage is not None and link.linkage.record_id == "rec_id"
    assert link.linkage.blocking["dob_given"].fields == {"date_of_birth", "given_name"}
    assert link.linkage.fields["suburb"] == fmt.FieldSpec("text", ("exact", "bloom"), 256, 12, None)
    assert open_hashed(hashed["education"]).manifest.linkage is None


@pytest.mark.parametrize(("change", "expected"), [
    ({"rows_in": None}, "field 'rows_in'"),
    ({"rows_hashed": "12"}, "field 'rows_hashed'"),
    ({"rows_rejected": True}, "field 'rows_rejected'"),
    ({"source": 3}, "field 'source'"),
    ({"kind": "table"}, "unknown kind"),
    ({"format": "parquet"}, "no format marker"),
    ({"format_version": 9}, "file format version 9 is not supported"),
])
def test_a_malformed_manifest_names_its_field_and_file(hashed, change, expected):
    body = {**open_hashed(hashed["education"]).manifest.to_json(), **change}
    with pytest.raises(ManifestError, match=expected) as info:
        fmt.Manifest.from_bytes(json.dumps(body).encode(), "some/file.parquet")
    assert str(info.value).startswith("some/file.parquet: ")


def test_a_malformed_linkage_manifest_names_its_field(hashed):
    body = open_hashed(hashed["left"]).manifest.to_json()
    body["blocking"]["dob_given"] = "date_of_birth:exact + given_name:exact"  # the format-1 display string
    with pytest.raises(ManifestError, match="blocking.dob_given"):
        fmt.Manifest.from_bytes(json.dumps(body).encode(), "left.parquet")
    del body["blocking"]
    with pytest.raises(ManifestError, match="field 'blocking'"):
        fmt.Manifest.from_bytes(json.dumps(body).encode(), "left.parquet")


def test_every_column_name_comes_from_the_format_module():
    link = load_schema("febrl")
    names = set(LinkTableEncoder(link, Encoder(KEY, link.purpose)).arrow_schema.names)
    expected = {fmt.LINE_COLUMN, "rec_id"}
    for column in link.fields:
        expected |= {fmt.token_column(column.name)} if "exact" in column.encodings else set()
        expected |= {fmt.bloom_column(column.name)} if "bloom" in column.encodings else set()
    expected |= {fmt.blocking_column(p.name) for p in link.blocking}
    assert names == expected
    household = load_schema("household")
    columns = set(TableEncoder(household, Encoder(KEY, household.purpose)).arrow_schema.names)
    for entity in household.entities:
        assert fmt.person_column(entity.name, fmt.ID_TOKEN) in columns


def test_commands_called_in_process_leave_the_process_as_it_is(tmp_path, hashed, capsys):
    """main(argv) in a caller's process (a test, a script) sets up nothing: no import hook, no fork-server
    preload. Only the command's own process (main() without argv) does."""
    meta_path = list(sys.meta_path)
    preload = getattr(multiprocessing.forkserver._forkserver, "_preload_modules", None)
    key = tmp_path / "k.key"
    assert main(["key", "new", "-o", str(key)]) == 0
    assert main(["hash", "febrl", str(febrl_csv(tmp_path / "a.csv", "a", 200)), "--key", str(key), "-o",
                 str(tmp_path / "a.parquet")]) == 0
    assert main(["link", str(hashed["left"]), str(hashed["right"]), "-o", str(tmp_path / "p.csv")]) == 0
    assert sys.meta_path == meta_path
    assert getattr(multiprocessing.forkserver._forkserver, "_preload_modules", None) == preload
    import pandas  # noqa: F401  (still importable here)

    capsys.readouterr()


def test_library_honours_the_environment_like_the_cli(tmp_path, hashed, monkeypatch):
    monkeypatch.setenv("MATCHKIT_TRUST_DIR", str(tmp_path / "no-such-folder"))
    with pytest.raises(KeyFileError, match="trust folder not found"):
        verify_files(hashed["claims"], [hashed["education"]], tmp_path / "f.csv")
    monkeypatch.delenv("MATCHKIT_TRUST_DIR")
    log = tmp_path / "audit.log"
    monkeypatch.setenv("MATCHKIT_AUDIT_LOG", str(log))
    verify_files(hashed["claims"], [hashed["education"]], tmp_path / "f.csv")
    assert json.loads(log.read_text(encoding="utf-8").splitlines()[-1])["command"] == "verify"


def test_no_module_but_settings_reads_the_environment():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "matchkit").rglob("*.py")
                 if p.name != "settings.py" and ("os.environ" in p.read_text(encoding="utf-8")
                                                 or "getenv" in p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_public_api_is_lazy_and_complete():
    for name in matchkit.__all__:
        assert getattr(matchkit, name) is not None
    assert issubclass(matchkit.ManifestError, matchkit.MatchkitError)
    assert matchkit.MatchkitError is MatchkitError
    probe = ("import matchkit, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pandas', "
             "'pyarrow') or m.startswith('matchkit.') and m != 'matchkit.lazy'))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert run.stdout.strip() == "[]"


def test_link_stats_are_typed(hashed):
    result = matchkit.link_files(hashed["left"], hashed["right"])
    stats = result.stats
    assert isinstance(stats, matchkit.LinkStats)
    assert stats.left_records == stats.right_records == 40
    assert stats.links == len(result.left_ids)
    assert set(stats.passes) == set(stats.links_found_by_pass)
    body = stats.to_json()
    assert body["links"] == stats.links and json.dumps(body, default=float)
    assert isinstance(pa.array(result.scores), pa.Array)


def test_every_lazy_name_of_link_resolves():
    import matchkit.link

    for name in matchkit.link.__all__:
        assert getattr(matchkit.link, name) is not None


COMMAND_PROCESS = """
import runpy, sys, multiprocessing.forkserver as forkserver
sys.argv = ["matchkit", *sys.argv[1:]]
try:
    runpy.run_module("matchkit", run_name="__main__")
except SystemExit as exit:
    print("START-UP", forkserver._forkserver._preload_modules, "pandas" in sys.modules, file=sys.stderr)
    raise
"""


def test_the_hash_command_process_is_set_up_by_its_entry_point(tmp_path, key_file):
    """The command's own process (main() without argv): pandas withheld, fork server preloaded with the encoders."""
    run = subprocess.run([sys.executable, "-c", COMMAND_PROCESS, "hash", "febrl",
                          str(febrl_csv(tmp_path / "a.csv", "a")), "--key", str(key_file), "-o",
                          str(tmp_path / "a.parquet")], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "MATCHKIT_WORKERS": "2"}, check=False)
    assert run.returncode == 0, run.stderr
    assert "START-UP ['matchkit.jobs.encoding'] False" in run.stderr
