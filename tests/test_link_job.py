"""`matchkit hash` with a linkage schema and `matchkit link`, end to end through the CLI, on two small made-up
FEBRL-like files with known true pairs: output, quality, refusals by file name, row faults, and privacy (no raw
name, date of birth, address or social security id in anything the job writes)."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from matchkit.cli.main import main
from matchkit.encode.fields import normalize_date, normalize_id, normalize_name, normalize_text
from matchkit.security.keys import new_key, write_key

REPO = Path(__file__).resolve().parents[1]
FEBRL = REPO / "matchkit" / "data" / "schemas" / "febrl.toml"
HEADER = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
          "state", "date_of_birth", "soc_sec_id"]
TRUE_PAIRS = 100
ONLY_LEFT = 100
ONLY_RIGHT = 100

# --- made-up people ---------------------------------------------------------------------------------------------
SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "sul", "vor", "bel", "dan", "fir", "gus", "hal", "jin", "kor", "lem",
             "nor", "pel", "qua", "ros", "tav", "ul", "wen", "yar", "zed", "bri", "cal", "dro", "eth"]
STREET_TYPES = ["street", "road", "avenue", "crescent", "place", "parade"]
STATES = ["nsw", "vic", "qld", "wa", "sa", "tas"]


def made_up_word(rng: np.random.Generator, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES, parts))


def unique_words(rng: np.random.Generator, count: int, parts: int) -> list[str]:
    words: list[str] = []
    while len(words) < count:
        word = made_up_word(rng, parts)
        if word not in words and len(word) >= 7:  # a typo leaves >= 6 characters: too long to occur by chance
            words.append(word)
    return words


def make_people(rng: np.random.Generator, count: int) -> list[dict[str, str]]:
    given = unique_words(rng, count, 3)
    surnames = unique_words(rng, count, 3)
    streets = unique_words(rng, count, 3)
    suburbs = unique_words(rng, 40, 3)
    ssids = 100_000_000 + rng.choice(900_000_000, count, replace=False)  # 9 digits, distinct
    people = []
    for index in range(count):
        born = np.datetime64("1930-01-01") + int(rng.integers(0, 365 * 70))
        people.append({
            "given_name": given[index].capitalize(),
            "surname": surnames[index].upper() if index % 3 == 0 else surnames[index].capitalize(),
            "street_number": str(int(rng.integers(1, 400))),
            "address_1": f"{streets[index]} {rng.choice(STREET_TYPES)}",
            "address_2": f"{made_up_word(rng, 2)} village" if index % 4 == 0 else "",
            "suburb": str(rng.choice(suburbs)),
            "postcode": str(int(rng.integers(2000, 7999))),
            "state": str(rng.choice(STATES)),
            "date_of_birth": str(born).replace("-", "") if index % 2 else str(born),
            "soc_sec_id": str(ssids[index]),
        })
    return people


def typo(rng: np.random.Generator, text: str) -> str:
    """One keyboard-style edit (substitute, delete, insert or swap one character)."""
    if len(text) < 3:
        return text + "x"
    position = int(rng.integers(1, len(text) - 1))
    kind = rng.integers(0, 4)
    letter = "0123456789"[int(rng.integers(0, 10))] if text.isdigit() else "aeiourst"[int(rng.integers(0, 8))]
    if kind == 0:
        return text[:position] + letter + text[position + 1 :]
    if kind == 1:
        return text[:position] + text[position + 1 :]
    if kind == 2:
        return text[:position] + letter + text[position:]
    return text[: position - 1] + text[position] + text[position - 1] + text[position + 1 :]


def duplicate(rng: np.random.Generator, person: dict[str, str]) -> dict[str, str]:
    """The right-hand copy of a true pair: one or two fields with a small typo, or a field left empty."""
    copy = dict(person)
    for field in rng.choice(["given_name", "surname", "address_1", "suburb", "date_of_birth", "soc_sec_id",
                             "street_number", "postcode"], int(rng.integers(1, 3)), replace=False):
        if field == "date_of_birth":
            digits = copy[field].replace("-", "")
            copy[field] = digits[:6] + f"{(int(digits[6:]) % 28) + 1:02d}"  # another day of the month
        elif rng.random() < 0.15:
            copy[field] = ""
        else:
            copy[field] = typo(rng, copy[field])
    return copy


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two CSVs with 100 true pairs, hashed with one key; the truth as (left_id, right_id)."""
    folder = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(20240917)
    people = make_people(rng, TRUE_PAIRS + ONLY_LEFT + ONLY_RIGHT)
    left_rows, right_rows, truth = [], [], set()
    for index, person in enumerate(people[:TRUE_PAIRS]):
        left_rows.append({"rec_id": f"rec-{index}-org", **person})
        right_rows.append({"rec_id": f"rec-{index}-dup-0", **duplicate(rng, person)})
        truth.add((f"rec-{index}-org", f"rec-{index}-dup-0"))
    for index, person in enumerate(people[TRUE_PAIRS : TRUE_PAIRS + ONLY_LEFT], start=1000):
        left_rows.append({"rec_id": f"rec-{index}-org", **person})
    for index, person in enumerate(people[TRUE_PAIRS + ONLY_LEFT :], start=2000):
        right_rows.append({"rec_id": f"rec-{index}-org", **person})
    order = rng.permutation(len(right_rows))
    right_rows = [right_rows[i] for i in order]
    # one faulty row per side, rejected by `matchkit hash` (their values are scanned for leaks too)
    extra = make_people(np.random.default_rng(99), 2)
    left_rows.append({"rec_id": "rec-9000-org", **extra[0], "soc_sec_id": "4411#2233"})
    right_rows.append({"rec_id": right_rows[0]["rec_id"], **extra[1]})
    write_csv(folder / "left.csv", left_rows)
    write_csv(folder / "right.csv", right_rows)
    key = write_key(new_key(), folder / "shared.key")
    console: list[str] = []
    for side in ("left", "right"):
        code, out, err = run_cli(["hash", FEBRL, folder / f"{side}.csv", "--key", key, "-o",
                                  folder / f"{side}.parquet", "--rejects", folder / f"{side}.rejects.csv"])
        assert code == 0, err
        console += [out, err]
    return {"folder": folder, "key": key, "left_rows": left_rows, "right_rows": right_rows, "truth": truth,
            "console": console}


def run_cli(args: list[object]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def linked(toy) -> dict:
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o", folder / "pairs.csv",
                              "--one-to-one", "--stats", folder / "stats.json", "--candidates",
                              folder / "candidates.csv"])
    assert code == 0, err
    toy["console"] += [out, err]
    return {"out": out, "err": err, "pairs": pd.read_csv(folder / "pairs.csv", dtype={"left_id": str,
                                                                                       "right_id": str}),
            "stats": json.loads((folder / "stats.json").read_text(encoding="utf-8"))}


def quality(pairs: pd.DataFrame, truth: set[tuple[str, str]]) -> tuple[float, float]:
    found = set(zip(pairs["left_id"], pairs["right_id"]))
    true_positive = len(found & truth)
    return true_positive / max(len(found), 1), true_positive / len(truth)


# --- hashing ----------------------------------------------------------------------------------------------------
def test_hash_accounts_for_every_row(toy):
    from matchkit.io.hashed.reader import open_hashed

    folder = toy["folder"]
    for side, rows in (("left", toy["left_rows"]), ("right", toy["right_rows"])):
        manifest = open_hashed(folder / f"{side}.parquet").manifest.to_json()
        table = pq.read_table(folder / f"{side}.parquet")
        rejects = pd.read_csv(folder / f"{side}.rejects.csv", dtype=str)
        assert table.num_rows + len(rejects) == len(rows) == manifest["rows_in"]
        assert table.num_rows == manifest["rows_hashed"] == 200
        assert manifest["kind"] == "link"
        assert manifest["record_id"] == "rec_id"
        assert set(manifest["blocking"]) >= {"ssid", "dob_given", "names_state"}
        assert manifest["fields"]["suburb"] == {"type": "text", "encodings": ["exact", "bloom"], "bloom_bits": 256,
                                                "bloom_k": 12, "salt": None}
        assert table.column("rec_id").to_pylist() == [r["rec_id"] for r in rows[:200]]
    assert pd.read_csv(folder / "left.rejects.csv", dtype=str).to_dict("records") == [
        {"line": "202", "column": "soc_sec_id", "reason": "invalid_id"}]
    assert pd.read_csv(folder / "right.rejects.csv", dtype=str).to_dict("records") == [
        {"line": "202", "column": "rec_id", "reason": "duplicate_record_id"}]


def test_hashed_file_layout(toy):
    table = pq.read_table(toy["folder"] / "left.parquet")
    names = table.schema.names
    assert names[:2] == ["_line", "rec_id"]
    assert "state_tok" in names and "state_bf" not in names
    assert {"given_name_tok", "given_name_bf", "date_of_birth_bf", "soc_sec_id_bf"} <= set(names)
    assert {f"_blk_{p}" for p in FEBRL_PASS_NAMES} <= set(names)
    assert not any(name in names for name in HEADER[1:])  # no field is kept in clear


FEBRL_PASS_NAMES = ("ssid", "dob_given", "dob_surname", "dob_postcode", "names_state", "surname_postcode",
                    "given_postcode", "street_address")


# --- linking ----------------------------------------------------------------------------------------------------
def test_link_output_format(toy, linked):
    folder = toy["folder"]
    with open(folder / "pairs.csv", encoding="utf-8") as handle:
        assert handle.readline().strip() == "left_id,right_id,score"
    pairs = linked["pairs"]
    assert len(pairs) > 0
    left_ids = {r["rec_id"] for r in toy["left_rows"]}
    right_ids = {r["rec_id"] for r in toy["right_rows"]}
    assert set(pairs["left_id"]) <= left_ids
    assert set(pairs["right_id"]) <= right_ids
    assert pairs["score"].between(0.0, 1.0).all()


def test_link_finds_the_true_pairs(toy, linked):
    precision, recall = quality(linked["pairs"], toy["truth"])
    assert precision >= 0.95, precision
    assert recall >= 0.95, recall


def test_one_to_one_is_one_to_one(linked):
    pairs = linked["pairs"]
    assert pairs["left_id"].is_unique
    assert pairs["right_id"].is_unique


def test_link_reports_passes_and_model(toy, linked):
    out, stats = linked["out"], linked["stats"]
    assert "records: 200 left x 200 right" in out
    for name in FEBRL_PASS_NAMES:
        assert f"pass {name}: " in out
        assert name in stats["passes"]
    assert f"links: {len(linked['pairs'])} at score >= " in out
    assert "(one-to-one)" in out
    assert stats["links"] == len(linked["pairs"])
    assert stats["left_records"] == stats["right_records"] == 200
    assert stats["method"] == "em"
    assert "model: Fellegi-Sunter" in out
    assert stats["threshold"] == 0.5
    assert stats["em"]["expected_links"] == pytest.approx(TRUE_PAIRS, rel=0.1)
    assert "pairs.csv" in out


def test_candidates_cover_the_links(toy, linked):
    candidates = pd.read_csv(toy["folder"] / "candidates.csv", dtype={"left_id": str, "right_id": str})
    assert list(candidates.columns) == ["left_id", "right_id", "score"]
    assert len(candidates) == linked["stats"]["candidates"] >= len(linked["pairs"])
    assert set(zip(linked["pairs"]["left_id"], linked["pairs"]["right_id"])) <= set(
        zip(candidates["left_id"], candidates["right_id"]))
    assert candidates["score"].between(0.0, 1.0).all()
    _, recall = quality(candidates, toy["truth"])
    assert recall >= 0.98  # blocking keeps (almost) every true pair


def test_strictest_threshold_gives_fewer_links(toy, linked):
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o",
                              folder / "strict.csv", "--threshold", "1.0"])
    assert code == 0, err
    toy["console"] += [out, err]
    strict = pd.read_csv(folder / "strict.csv")
    assert len(strict) < len(linked["pairs"])
    assert (strict["score"] >= 1.0 - 1e-6).all()


def test_method_threshold(toy):
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o",
                              folder / "plain.csv", "--method", "threshold", "--stats", folder / "plain.json"])
    assert code == 0, err
    toy["console"] += [out, err]
    assert "model: plain threshold on mean field similarity" in out
    assert "EM could not be trusted" not in out
    stats = json.loads((folder / "plain.json").read_text(encoding="utf-8"))
    assert stats["method"] == "threshold"
    assert stats["threshold"] == 0.85
    assert "em" not in stats
    pairs = pd.read_csv(folder / "plain.csv", dtype=str)
    precision, recall = quality(pairs, toy["truth"])
    assert precision >= 0.9 and recall >= 0.8
    assert (pairs["score"].astype(float) >= 0.85).all()


def test_method_em(toy, linked):
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o", folder / "em.csv",
                              "--method", "em", "--one-to-one"])
    assert code == 0, err
    toy["console"] += [out, err]
    assert "model: Fellegi-Sunter" in out
    assert (folder / "em.csv").read_bytes() == (folder / "pairs.csv").read_bytes()  # auto chose EM too


def test_header_only_file_links_to_nothing(toy, tmp_path):
    write_csv(tmp_path / "empty.csv", [])
    code, out, err = run_cli(["hash", FEBRL, tmp_path / "empty.csv", "--key", toy["key"], "-o",
                              tmp_path / "empty.parquet", "--allow-empty"])
    assert code == 0, err
    assert "0 rows in = 0 hashed + 0 rejected" in out
    code, out, err = run_cli(["link", toy["folder"] / "left.parquet", tmp_path / "empty.parquet", "-o",
                              tmp_path / "p.csv"])
    assert code == 0, err
    assert "records: 200 left x 0 right" in out
    assert (tmp_path / "p.csv").read_text(encoding="utf-8").strip() == "left_id,right_id,score"


def test_ids_are_input_lines_without_a_record_id(toy, linked, tmp_path):
    schema = schema_variant(tmp_path, "febrl_no_id.toml", 'record_id = "rec_id"\n', "")
    for side in ("left", "right"):
        code, _, err = run_cli(["hash", schema, toy["folder"] / f"{side}.csv", "--key", toy["key"], "-o",
                                tmp_path / f"{side}.parquet"])
        assert code == 0, err
    code, _, err = run_cli(["link", tmp_path / "left.parquet", tmp_path / "right.parquet", "-o", tmp_path / "p.csv",
                            "--one-to-one"])
    assert code == 0, err
    by_line = pd.read_csv(tmp_path / "p.csv")
    assert by_line["left_id"].dtype.kind == "i" and by_line["right_id"].dtype.kind == "i"
    left_line: dict[str, int] = {}
    right_line: dict[str, int] = {}
    for lines, rows in ((left_line, toy["left_rows"]), (right_line, toy["right_rows"])):
        for line, row in enumerate(rows, start=2):
            lines.setdefault(row["rec_id"], line)  # the first of a repeated id is the one hashed with an id
    expected = {(left_line[a], right_line[b]) for a, b in zip(linked["pairs"]["left_id"], linked["pairs"]["right_id"])}
    assert set(zip(by_line["left_id"], by_line["right_id"])) == expected


def test_link_is_deterministic(toy, linked):
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o", folder / "again.csv",
                              "--one-to-one"])
    assert code == 0, err
    toy["console"] += [out, err]
    assert (folder / "again.csv").read_bytes() == (folder / "pairs.csv").read_bytes()


def test_link_as_a_library_call(toy, linked):
    from matchkit.jobs.link import link_files

    result = link_files(toy["folder"] / "left.parquet", toy["folder"] / "right.parquet", one_to_one=True)
    assert result.output is None
    assert list(result.pairs.columns) == ["left_id", "right_id", "score"]
    assert len(result.pairs) == len(linked["pairs"])


LINK_PROCESS = """
import runpy, sys
sys.argv = ["matchkit", *sys.argv[1:]]
try:
    runpy.run_module("matchkit", run_name="__main__")
except SystemExit as exit:
    print("PANDAS LOADED" if "pandas" in sys.modules else "NO PANDAS", file=sys.stderr)
    raise
"""


def test_link_process_runs_without_pandas(toy, linked, education_file, tmp_path):
    """As real processes, `matchkit hash` and `matchkit link` never load pandas (it is withheld, so pyarrow takes
    its pandas-free paths), write what the in-process runs wrote, and still refuse a bad file cleanly."""
    import subprocess
    import sys

    folder = toy["folder"]
    hashed = subprocess.run([sys.executable, "-c", LINK_PROCESS, "hash", str(FEBRL), str(folder / "left.csv"), "--key",
                             str(toy["key"]), "-o", str(tmp_path / "left.parquet"), "--rejects",
                             str(tmp_path / "left.rejects.csv")], capture_output=True, text=True, check=False, cwd=REPO, timeout=120)
    assert hashed.returncode == 0, hashed.stderr
    assert "NO PANDAS" in hashed.stderr
    assert pq.read_table(tmp_path / "left.parquet").equals(pq.read_table(folder / "left.parquet"))
    assert (tmp_path / "left.rejects.csv").read_bytes() == (folder / "left.rejects.csv").read_bytes()
    args = ["link", folder / "left.parquet", folder / "right.parquet", "-o", tmp_path / "pairs.csv", "--one-to-one",
            "--stats", tmp_path / "stats.json", "--candidates", tmp_path / "candidates.csv"]
    done = subprocess.run([sys.executable, "-c", LINK_PROCESS, *map(str, args)], capture_output=True, text=True, check=False,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "NO PANDAS" in done.stderr
    assert (tmp_path / "pairs.csv").read_bytes() == (folder / "pairs.csv").read_bytes()
    assert (tmp_path / "candidates.csv").read_bytes() == (folder / "candidates.csv").read_bytes()
    threshold = subprocess.run([sys.executable, "-c", LINK_PROCESS, "link", str(folder / "left.parquet"),
                                str(folder / "right.parquet"), "-o", str(tmp_path / "t.csv"), "--method",
                                "threshold"], capture_output=True, text=True, check=False, cwd=REPO, timeout=120)
    assert threshold.returncode == 0, threshold.stderr
    assert "NO PANDAS" in threshold.stderr
    refused = subprocess.run([sys.executable, "-c", LINK_PROCESS, "link", str(education_file),
                              str(folder / "left.parquet"), "-o", str(tmp_path / "x.csv")],
                             capture_output=True, text=True, check=False, cwd=REPO, timeout=120)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr and "not a linkage file" in refused.stderr


# --- refusals ---------------------------------------------------------------------------------------------------
def expect_refusal(args: list[object], *needles: object) -> str:
    code, out, err = run_cli(args)
    assert code == 1, (out, err)
    assert "Traceback" not in err
    assert err.startswith("matchkit: error: ")
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err


def schema_variant(folder: Path, name: str, old: str, new: str) -> Path:
    text = FEBRL.read_text(encoding="utf-8")
    assert old in text
    path = folder / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def education_file(toy) -> Path:
    folder = toy["folder"]
    code, _, err = run_cli(["hash", "education", REPO / "sample_data" / "education.csv", "--key", toy["key"], "-o",
                            folder / "education.parquet"])
    assert code == 0, err
    return folder / "education.parquet"


@pytest.mark.parametrize("side", ["left", "right"])
def test_refuses_a_source_kind_file(toy, education_file, side, tmp_path):
    febrl = toy["folder"] / "left.parquet"
    pair = [education_file, febrl] if side == "left" else [febrl, education_file]
    expect_refusal(["link", *pair, "-o", tmp_path / "p.csv"], education_file, "'education'", "not a linkage file")
    assert not (tmp_path / "p.csv").exists()


def test_refuses_files_hashed_with_different_keys(toy, tmp_path):
    other_key = write_key(new_key(), tmp_path / "other.key")
    code, _, err = run_cli(["hash", FEBRL, toy["folder"] / "right.csv", "--key", other_key, "-o",
                            tmp_path / "right_other.parquet"])
    assert code == 0, err
    expect_refusal(["link", toy["folder"] / "left.parquet", tmp_path / "right_other.parquet", "-o",
                    tmp_path / "p.csv"], "right_other.parquet", "left.parquet", "key")
    assert not (tmp_path / "p.csv").exists()


def test_refuses_a_field_encoded_differently(toy, tmp_path):
    schema = schema_variant(tmp_path, "febrl_wide.toml", 'name = "suburb"\ntype = "text"\nbloom_bits = 256',
                            'name = "suburb"\ntype = "text"\nbloom_bits = 512')
    code, _, err = run_cli(["hash", schema, toy["folder"] / "right.csv", "--key", toy["key"], "-o",
                            tmp_path / "right_wide.parquet"])
    assert code == 0, err
    err = expect_refusal(["link", toy["folder"] / "left.parquet", tmp_path / "right_wide.parquet", "-o",
                          tmp_path / "p.csv"], "'suburb'", "left.parquet", "right_wide.parquet", "encoded differently")
    assert "bloom_bits=256" in err and "bloom_bits=512" in err


def test_refuses_files_with_no_common_blocking_pass(toy, tmp_path):
    text = FEBRL.read_text(encoding="utf-8")
    text = text[: text.index("[[blocking]]")] + '[[blocking]]\nname = "other"\nkeys = ["surname:nysiis"]\n'
    schema = tmp_path / "febrl_other_blocking.toml"
    schema.write_text(text, encoding="utf-8")
    code, _, err = run_cli(["hash", schema, toy["folder"] / "right.csv", "--key", toy["key"], "-o",
                            tmp_path / "right_other.parquet"])
    assert code == 0, err
    expect_refusal(["link", toy["folder"] / "left.parquet", tmp_path / "right_other.parquet", "-o",
                    tmp_path / "p.csv"], "left.parquet", "right_other.parquet", "no blocking pass in common")


def test_refuses_a_non_parquet_file(toy, tmp_path):
    expect_refusal(["link", toy["folder"] / "left.csv", toy["folder"] / "right.parquet", "-o", tmp_path / "p.csv"],
                   toy["folder"] / "left.csv", "not a Parquet file")


def test_refuses_a_missing_file(toy, tmp_path):
    missing = tmp_path / "nowhere.parquet"
    expect_refusal(["link", toy["folder"] / "left.parquet", missing, "-o", tmp_path / "p.csv"], missing,
                   "file not found")


def test_refuses_a_threshold_out_of_range(toy, tmp_path):
    expect_refusal(["link", toy["folder"] / "left.parquet", toy["folder"] / "right.parquet", "-o",
                    tmp_path / "p.csv", "--threshold", "1.5"], "threshold", "1.5")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("option", ["-o", "--candidates"])
def test_refuses_an_output_in_a_missing_folder(toy, tmp_path, option):
    missing = tmp_path / "no" / "such"
    args = ["link", toy["folder"] / "left.parquet", toy["folder"] / "right.parquet", "-o", tmp_path / "p.csv"]
    if option == "-o":
        args[-1] = missing / "p.csv"
    else:
        args += ["--candidates", missing / "c.csv"]
    expect_refusal(args, missing, "folder does not exist")
    assert not (tmp_path / "p.csv").exists()


def test_unknown_method_is_a_usage_error(toy, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["link", str(toy["folder"] / "left.parquet"), str(toy["folder"] / "right.parquet"), "-o",
              str(tmp_path / "p.csv"), "--method", "magic"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- row faults -------------------------------------------------------------------------------------------------
def test_row_faults(tmp_path, key_file):
    rows = [
        {"rec_id": "r1", "given_name": "Belkaro", "surname": "Vorlem", "street_number": "12", "address_1":
         "tavnor street", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
         "date_of_birth": "1956-04-16", "soc_sec_id": "123456789"},
        {"rec_id": "r2", "given_name": "Dansul", "surname": "Korpel", "street_number": "3", "address_1":
         "wenyar road", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
         "date_of_birth": "1961-02-01", "soc_sec_id": "1234#5678"},  # an invalid character in the id
        {"rec_id": "r3", "given_name": "Rosqua", "surname": "Lemtav", "street_number": "8", "address_1":
         "ulbri place", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
         "date_of_birth": "19561332", "soc_sec_id": "987654321"},  # month 13: kept (on_invalid = "keep")
        {"rec_id": "r1", "given_name": "Ethcal", "surname": "Drozed", "street_number": "5", "address_1":
         "kalomi avenue", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
         "date_of_birth": "1970-07-07", "soc_sec_id": "555555555"},  # a repeated record id
        {"rec_id": "", "given_name": "Gusjin", "surname": "Fireth", "street_number": "1", "address_1":
         "sulten street", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
         "date_of_birth": "1980-01-01", "soc_sec_id": "444444444"},  # no record id
    ]
    write_csv(tmp_path / "in.csv", rows)
    code, out, err = run_cli(["hash", FEBRL, tmp_path / "in.csv", "--key", key_file, "-o", tmp_path / "out.parquet",
                              "--rejects", tmp_path / "rejects.csv"])
    assert code == 0, err
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str)
    assert rejects.to_dict("records") == [
        {"line": "3", "column": "soc_sec_id", "reason": "invalid_id"},
        {"line": "5", "column": "rec_id", "reason": "duplicate_record_id"},
        {"line": "6", "column": "rec_id", "reason": "missing_value"},
    ]
    assert "5 rows in = 2 hashed + 3 rejected" in out
    assert "date_of_birth: 1 values not valid for their type were encoded as written (on_invalid = keep)" in out
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("rec_id").to_pylist() == ["r1", "r3"]
    kept = table.column("date_of_birth_tok").to_pylist()
    assert kept[1] is not None and kept[1] != kept[0]
    assert table.column("_blk_dob_postcode").to_pylist()[1] is not None
    from matchkit.io.hashed.reader import open_hashed

    manifest = open_hashed(tmp_path / "out.parquet").manifest.to_json()
    assert manifest["kept_invalid"] == {"date_of_birth": 1}
    assert manifest["rows_rejected"] == 3
    text = (tmp_path / "rejects.csv").read_text(encoding="utf-8") + out + err
    for secret in ("1234#5678", "19561332", "Dansul", "Korpel", "Ethcal"):
        assert secret not in text


def test_kept_invalid_date_still_links(tmp_path, key_file):
    """A mistyped date kept as its digits stays comparable: the same typo on both sides agrees exactly."""
    row = {"rec_id": "a", "given_name": "Belkaro", "surname": "Vorlem", "street_number": "12", "address_1":
           "tavnor street", "address_2": "", "suburb": "halfir", "postcode": "2600", "state": "act",
           "date_of_birth": "1945-04-93", "soc_sec_id": "123456789"}
    write_csv(tmp_path / "a.csv", [row])
    write_csv(tmp_path / "b.csv", [{**row, "rec_id": "b", "date_of_birth": "19450493"}])
    for side in ("a", "b"):
        code, _, err = run_cli(["hash", FEBRL, tmp_path / f"{side}.csv", "--key", key_file, "-o",
                                tmp_path / f"{side}.parquet"])
        assert code == 0, err
    left = pq.read_table(tmp_path / "a.parquet").column("date_of_birth_tok").to_pylist()
    right = pq.read_table(tmp_path / "b.parquet").column("date_of_birth_tok").to_pylist()
    assert left == right and left[0] is not None


# --- privacy ----------------------------------------------------------------------------------------------------
SECRET_FIELDS = ("given_name", "surname", "address_1", "address_2", "suburb", "date_of_birth", "soc_sec_id")


def secret_values(rows: list[dict[str, str]]) -> set[str]:
    """Every raw and canonical name, date of birth, address and social security id, in the spellings a leak
    would take (case as written, canonical, upper case; dates in several formats)."""
    found: set[str] = set()
    for row in rows:
        for field in SECRET_FIELDS:
            raw = row[field].strip()
            if not raw:
                continue
            found |= {raw, raw.lower(), raw.upper()}
            if field in ("given_name", "surname"):
                canonical = normalize_name(raw)[0]
            elif field == "date_of_birth":
                canonical = normalize_date(raw)[0]
                if canonical:
                    found |= {f"{canonical[:4]}-{canonical[4:6]}-{canonical[6:]}",
                              f"{canonical[:4]}/{canonical[4:6]}/{canonical[6:]}"}
            elif field == "soc_sec_id":
                canonical = normalize_id(raw)[0]
            else:
                canonical = normalize_text(raw)[0]
            if canonical:
                found |= {canonical, canonical.upper()}
    assert all(len(value) >= 6 for value in found)  # short values would match random bytes by chance
    return found


def artefact_texts(folder: Path, console: list[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            cells = [f"{k!r}{v!r}" for k, v in (parquet.metadata.metadata or {}).items()]
            for column in parquet.read().columns:
                for value in column.to_pylist():
                    if isinstance(value, bytes):
                        cells.append(value.decode("latin-1"))
                    elif isinstance(value, str):
                        cells.append(value)
            texts[path.name] = "\n".join(cells)
            texts[path.name + " (bytes)"] = path.read_bytes().decode("latin-1")
        elif path.suffix in (".csv", ".json") and path.name not in ("left.csv", "right.csv"):
            texts[path.name] = path.read_text(encoding="utf-8")
    texts["console"] = "\n".join(console)
    return texts


@functools.cache
def leak_pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))


def find_leaks(texts: dict[str, str], secrets: set[str]) -> dict[str, list[str]]:
    """Every secret found in any text. A secret of digits only (a date, an id) must stand alone as a number:
    the statistics print long floats, whose digits would otherwise contain some 8-digit date by chance."""
    numbers = {s for s in secrets if s.isdigit()}
    pattern = leak_pattern(frozenset(secrets - numbers))
    leaks = {}
    for name, text in texts.items():
        found = set(pattern.findall(text)) | (set(re.findall(r"[0-9]+", text)) & numbers)
        if found:
            leaks[name] = sorted(found)[:5]
    return leaks


def test_no_raw_value_in_any_artefact(toy, linked):
    folder = toy["folder"]
    code, out, err = run_cli(["link", folder / "left.parquet", folder / "right.parquet", "-o",
                              folder / "privacy_plain.csv", "--method", "threshold", "--stats",
                              folder / "privacy_plain.json", "--candidates", folder / "privacy_candidates.csv"])
    assert code == 0, err
    toy["console"] += [out, err]
    secrets = secret_values(toy["left_rows"] + toy["right_rows"])
    assert len(secrets) > 2000
    texts = artefact_texts(folder, toy["console"])
    assert {"left.parquet", "right.parquet", "pairs.csv", "candidates.csv", "stats.json", "left.rejects.csv",
            "right.rejects.csv", "left.parquet (bytes)", "privacy_plain.json"} <= set(texts)
    assert find_leaks(texts, secrets) == {}


def test_scan_catches_a_planted_value(toy, linked, tmp_path):
    folder = tmp_path / "planted"
    shutil.copytree(toy["folder"], folder)
    person = toy["left_rows"][7]
    with open(folder / "pairs.csv", "a", encoding="utf-8") as handle:
        handle.write(f"x,{person['soc_sec_id']},0.5\n")
    (folder / "stats.json").write_text(json.dumps({"note": person["surname"].lower()}), encoding="utf-8")
    secrets = secret_values(toy["left_rows"] + toy["right_rows"])
    leaks = find_leaks(artefact_texts(folder, ["born " + person["date_of_birth"]]), secrets)
    assert set(leaks) == {"pairs.csv", "stats.json", "console"}
    assert person["soc_sec_id"] in leaks["pairs.csv"]


def test_pairs_csv_quotes_ids_only_when_needed(tmp_path):
    from matchkit.jobs.link import write_pairs_csv

    parts = [(np.array(["plain", 'with "quote"', "comma,inside"], dtype=object),
              np.array(["r1", "张三", "r 3"], dtype=object), np.array([1.0, 0.5, float("nan")])),
             (np.array([7], dtype=np.int64), np.array([8], dtype=np.int64), np.array([0.1234564]))]
    target = tmp_path / "pairs.csv"
    write_pairs_csv(target, "pairs output", iter(parts))
    text = target.read_text(encoding="utf-8")
    assert text.splitlines() == ["left_id,right_id,score", "plain,r1,1.000000", '"with ""quote""",张三,0.500000',
                                 '"comma,inside",r 3,', "7,8,0.123456"]
    with open(target, encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle))[3] == ["comma,inside", "r 3", ""]
    empty = tmp_path / "empty.csv"
    write_pairs_csv(empty, "pairs output", iter([]))
    assert empty.read_text(encoding="utf-8") == "left_id,right_id,score\n"
