"""Linkage schemas (``[source] kind = "link"``): the FEBRL example loads, and every fault of a linkage schema is
reported with its path, all at once, while source schemas are unaffected."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from matchkit.errors import SchemaError
from matchkit.schema import BlockingKey, load_schema, parse_schema

REPO = Path(__file__).resolve().parents[1]
FEBRL_TOML = REPO / "matchkit" / "data" / "schemas" / "febrl.toml"

FEBRL_FIELDS = {  # name -> (type, encodings, bloom_bits, bloom_k, on_invalid)
    "given_name": ("name", ("exact", "bloom"), 512, 16, "reject"),
    "surname": ("name", ("exact", "bloom"), 512, 16, "reject"),
    "street_number": ("number", ("exact", "bloom"), 256, 8, "keep"),
    "address_1": ("text", ("exact", "bloom"), 512, 12, "reject"),
    "address_2": ("text", ("exact", "bloom"), 512, 12, "reject"),
    "suburb": ("text", ("exact", "bloom"), 256, 12, "reject"),
    "postcode": ("number", ("exact", "bloom"), 256, 8, "keep"),
    "state": ("text", ("exact",), 512, 12, "reject"),
    "date_of_birth": ("date", ("exact", "bloom"), 256, 8, "keep"),
    "soc_sec_id": ("id", ("exact", "bloom"), 256, 8, "reject"),
}
FEBRL_PASSES = [
    BlockingKey("ssid", (("soc_sec_id", "exact"),)),
    BlockingKey("dob_given", (("date_of_birth", "exact"), ("given_name", "first:1"))),
    BlockingKey("dob_surname", (("date_of_birth", "exact"), ("surname", "first:1"))),
    BlockingKey("dob_postcode", (("date_of_birth", "exact"), ("postcode", "exact"))),
    BlockingKey("names_state", (("given_name", "soundex"), ("surname", "soundex"), ("state", "exact"))),
    BlockingKey("surname_postcode", (("surname", "soundex"), ("postcode", "exact"))),
    BlockingKey("given_postcode", (("given_name", "soundex"), ("postcode", "exact"))),
    BlockingKey("street_address", (("street_number", "exact"), ("address_1", "first:3"), ("postcode", "first:2"))),
]


# --- the FEBRL example ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["builtin", "path"])
def test_febrl_schema_loads(how, tmp_path):
    if how == "builtin":
        schema = load_schema("febrl")
    else:
        copied = tmp_path / "my_febrl.toml"
        shutil.copy(FEBRL_TOML, copied)
        schema = load_schema(copied)
        assert schema.path == str(copied)
    assert schema.kind == "link"
    assert schema.name == "febrl"
    assert schema.purpose == "febrl-linkage"
    assert schema.record_id == "rec_id"
    assert schema.entities == ()
    assert [c.name for c in schema.columns] == ["rec_id", *FEBRL_FIELDS]
    assert schema.column("rec_id").type == "record_id"
    assert schema.column("rec_id").encodings == ()
    assert {c.name: (c.type, c.encodings, c.bloom_bits, c.bloom_k, c.on_invalid) for c in schema.fields} == FEBRL_FIELDS
    assert {c.name: c.salt for c in schema.fields if c.salt} == {"given_name": "date_of_birth",
                                                                 "surname": "date_of_birth"}
    assert list(schema.blocking) == FEBRL_PASSES
    assert schema.blocking[5].describe() == "surname:soundex + postcode:exact"
    assert schema.blocking[7].describe() == "street_number:exact + address_1:first:3 + postcode:first:2"
    assert len(schema.digest) == 64


def test_builtin_and_path_give_the_same_schema():
    by_name, by_path = load_schema("febrl"), load_schema(FEBRL_TOML)
    assert by_name.digest == by_path.digest
    assert by_name.columns == by_path.columns
    assert by_name.blocking == by_path.blocking


@pytest.mark.parametrize("source", ["education", "claims", "household"])
def test_source_schemas_are_unaffected(source):
    schema = load_schema(source)
    assert schema.kind == "source"
    assert schema.fields == ()
    assert schema.blocking == ()
    assert schema.entities  # a source schema still describes people as entities
    assert all(c.encodings == () and c.salt is None for c in schema.columns)


# --- a valid small linkage schema, and its faults ---------------------------------------------------------------
BASE: dict[str, Any] = {
    "source": {"name": "people", "version": 1, "kind": "link", "purpose": "test-linkage", "record_id": "rid"},
    "columns": [
        {"name": "rid", "type": "record_id"},
        {"name": "surname", "type": "name"},
        {"name": "dob", "type": "date"},
        {"name": "postcode", "type": "number"},
        {"name": "city", "type": "text"},
        {"name": "ssn", "type": "id"},
    ],
    "blocking": [
        {"name": "by_surname", "keys": ["surname:soundex", "dob:year"]},
        {"name": "by_ssn", "keys": ["ssn"]},
    ],
}
COLUMN_INDEX = {c["name"]: i for i, c in enumerate(BASE["columns"])}


def doc(**column_changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with some columns' entries updated (``surname={"salt": "dob"}``)."""
    document = copy.deepcopy(BASE)
    for name, changes in column_changes.items():
        document["columns"][COLUMN_INDEX[name]].update(changes)
    return document


def with_blocking(*passes: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["blocking"] = list(passes)
    return document


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(SchemaError) as info:
        parse_schema(document)
    return info.value.problems


def test_base_linkage_schema_is_valid_with_defaults():
    schema = parse_schema(copy.deepcopy(BASE))
    assert schema.kind == "link"
    assert [c.name for c in schema.fields] == ["surname", "dob", "postcode", "city", "ssn"]
    surname = schema.column("surname")
    assert (surname.encodings, surname.bloom_bits, surname.bloom_k, surname.on_invalid) == (
        ("exact", "bloom"), 512, 16, "reject")
    assert (schema.column("dob").bloom_bits, schema.column("dob").bloom_k) == (256, 8)
    assert schema.blocking == (BlockingKey("by_surname", (("surname", "soundex"), ("dob", "year"))),
                               BlockingKey("by_ssn", (("ssn", "exact"),)))


def test_valid_options_are_kept():
    schema = parse_schema(doc(surname={"salt": "dob", "bloom_bits": 1024, "bloom_k": 20},
                              city={"salt": "dob:year", "encodings": ["bloom"]},
                              postcode={"on_invalid": "keep", "encodings": ["exact"]}))
    surname = schema.column("surname")
    assert (surname.salt, surname.bloom_bits, surname.bloom_k) == ("dob", 1024, 20)
    assert schema.column("city").encodings == ("bloom",)
    assert schema.column("city").salt == "dob:year"
    assert schema.column("postcode").on_invalid == "keep"
    for bits in (64, 4096):
        assert parse_schema(doc(ssn={"bloom_bits": bits})).column("ssn").bloom_bits == bits
    for k in (1, 64):
        assert parse_schema(doc(ssn={"bloom_k": k})).column("ssn").bloom_k == k


# --- salting names by birth year is refused (SECURITY.md §6: re-identified by pattern mining) --------------------
NAME_YEAR_SALT_PROBLEM = (
    "columns.surname.salt: ':year' is refused on a name field: names salted by the birth year alone are "
    "re-identified by pattern mining (over 90 % of records, SECURITY.md §6); salt by the full date instead, "
    'salt = "dob"'
)


def test_a_name_field_salted_by_year_is_refused():
    assert problems_of(doc(surname={"salt": "dob:year"})) == [NAME_YEAR_SALT_PROBLEM]


def test_a_name_field_salted_by_year_is_reported_with_the_other_faults():
    problems = problems_of(doc(surname={"salt": "dob:year", "bloom_k": 0}, city={"salt": "nope"}))
    assert sorted(problems) == sorted([
        "columns[1].bloom_k: an integer from 1 to 64",
        NAME_YEAR_SALT_PROBLEM,
        "columns.city.salt: must name another field, got 'nope'",
    ])


def test_a_name_field_salted_by_the_full_date_is_accepted():
    assert parse_schema(doc(surname={"salt": "dob"})).column("surname").salt == "dob"


@pytest.mark.parametrize("field", ["city", "ssn", "postcode", "visit"])
def test_year_salt_is_still_accepted_on_other_field_types(field):
    """Only name fields were measured broken under a year salt; text, id, number and date fields keep it."""
    if field in COLUMN_INDEX:
        document = doc(**{field: {"salt": "dob:year"}})
    else:  # a second date field
        document = doc()
        document["columns"].append({"name": field, "type": "date", "salt": "dob:year"})
    assert parse_schema(document).column(field).salt == "dob:year"


def test_valid_transforms_are_accepted():
    schema = parse_schema(with_blocking(
        {"name": "a", "keys": ["surname:first:1", "city:last:32"]},
        {"name": "b", "keys": ["dob:year_month", "surname:nysiis"]},
        {"name": "c", "keys": ["surname:metaphone", "city:soundex", "postcode:exact", "ssn:first:4"]},
    ))
    assert [p.parts for p in schema.blocking] == [
        (("surname", "first:1"), ("city", "last:32")),
        (("dob", "year_month"), ("surname", "nysiis")),
        (("surname", "metaphone"), ("city", "soundex"), ("postcode", "exact"), ("ssn", "first:4")),
    ]


CASES: list[tuple[str, dict[str, Any], str]] = [
    # (id, document, the expected problem, in full or as its start)
    ("unknown field type", doc(surname={"type": "nam"}), "columns[1].type: unknown type 'nam'"),
    ("source type in a link schema", doc(city={"type": "amount"}), "columns[4].type: unknown type 'amount'"),
    ("entity role type in a link schema", doc(dob={"type": "birth_date"}),
     "columns[2].type: unknown type 'birth_date'"),
    ("encodings misspelt", doc(surname={"encodings": ["blom"]}),
     "columns[1].encodings: a non-empty list of distinct ['bloom', 'exact']"),
    ("encodings empty", doc(surname={"encodings": []}), "columns[1].encodings: a non-empty list"),
    ("encodings repeated", doc(surname={"encodings": ["exact", "exact"]}), "columns[1].encodings: a non-empty list"),
    ("encodings not a list", doc(surname={"encodings": "exact"}), "columns[1].encodings: a non-empty list"),
    ("bloom_bits not a power of two", doc(surname={"bloom_bits": 500}),
     "columns[1].bloom_bits: a power of two from 64 to 4096"),
    ("bloom_bits too small", doc(surname={"bloom_bits": 32}), "columns[1].bloom_bits: a power of two"),
    ("bloom_bits too large", doc(surname={"bloom_bits": 8192}), "columns[1].bloom_bits: a power of two"),
    ("bloom_bits a bool", doc(surname={"bloom_bits": True}), "columns[1].bloom_bits: a power of two"),
    ("bloom_bits text", doc(surname={"bloom_bits": "512"}), "columns[1].bloom_bits: a power of two"),
    ("bloom_bits zero", doc(surname={"bloom_bits": 0}), "columns[1].bloom_bits: a power of two"),
    ("bloom_k zero", doc(surname={"bloom_k": 0}), "columns[1].bloom_k: an integer from 1 to 64"),
    ("bloom_k too large", doc(surname={"bloom_k": 65}), "columns[1].bloom_k: an integer from 1 to 64"),
    ("bloom_k a float", doc(surname={"bloom_k": 1.5}), "columns[1].bloom_k: an integer from 1 to 64"),
    ("bloom_k a bool", doc(surname={"bloom_k": True}), "columns[1].bloom_k: an integer from 1 to 64"),
    ("salt names a missing field", doc(surname={"salt": "birth"}),
     "columns.surname.salt: must name another field, got 'birth'"),
    ("salt names itself", doc(surname={"salt": "surname"}),
     "columns.surname.salt: must name another field, got 'surname'"),
    ("salt names the record id", doc(surname={"salt": "rid"}),
     "columns.surname.salt: must name another field, got 'rid'"),
    ("salt names a salted field", doc(surname={"salt": "city"}, city={"salt": "dob"}),
     "columns.surname.salt: field 'city' is itself salted"),
    ("salt year on a non-date", doc(surname={"salt": "postcode:year"}),
     "columns.surname.salt: ':year' needs a date field, 'postcode' is not"),
    ("salt year on a name", doc(surname={"salt": "dob:year"}),
     "columns.surname.salt: ':year' is refused on a name field"),
    ("salt with another transform", doc(surname={"salt": "dob:month"}),
     "columns.surname.salt: the only salt transform is ':year'"),
    ("salt without bloom", doc(surname={"salt": "dob", "encodings": ["exact"]}),
     "columns.surname.salt: only a Bloom-filter encoding takes a salt"),
    ("salt empty", doc(surname={"salt": ""}), "columns[1].salt: the name of another field"),
    ("salt not text", doc(surname={"salt": 3}), "columns[1].salt: the name of another field"),
    ("on_invalid bad value", doc(dob={"on_invalid": "drop"}), "columns[2].on_invalid: one of ['keep', 'reject']"),
    ("unknown column key", doc(city={"vocabulary": "stage"}), "columns[4]: unknown key(s) ['vocabulary']"),
    ("record_id with encodings", doc(rid={"encodings": ["exact"]}),
     "columns[0]: a record_id column is kept in clear and takes no ['encodings']"),
    ("record_id with a salt and bloom_bits", doc(rid={"salt": "dob", "bloom_bits": 256}),
     "columns[0]: a record_id column is kept in clear and takes no ['bloom_bits', 'salt']"),
    ("missing blocking", {k: v for k, v in copy.deepcopy(BASE).items() if k != "blocking"},
     "blocking: a linkage schema needs at least one [[blocking]] pass"),
    ("empty blocking", with_blocking(), "blocking: a linkage schema needs at least one [[blocking]] pass"),
    ("blocking key names no field", with_blocking({"name": "p", "keys": ["surnam:soundex"]}),
     "blocking[0].keys: 'surnam:soundex' does not name a field"),
    ("blocking key names the record id", with_blocking({"name": "p", "keys": ["rid"]}),
     "blocking[0].keys: 'rid' does not name a field"),
    ("unknown transform", with_blocking({"name": "p", "keys": ["surname:soundx"]}),
     "blocking[0].keys: 'surname:soundx': unknown transform 'soundx'"),
    ("first without a length", with_blocking({"name": "p", "keys": ["surname:first"]}),
     "blocking[0].keys: 'surname:first': 'first' needs a length, e.g. 'surname:first:3'"),
    ("last without a length", with_blocking({"name": "p", "keys": ["city:last"]}),
     "blocking[0].keys: 'city:last': 'last' needs a length"),
    ("first with length 0", with_blocking({"name": "p", "keys": ["surname:first:0"]}),
     "blocking[0].keys: 'surname:first:0': 'first' needs a length"),
    ("first with length 33", with_blocking({"name": "p", "keys": ["surname:first:33"]}),
     "blocking[0].keys: 'surname:first:33': 'first' needs a length"),
    ("first with a word", with_blocking({"name": "p", "keys": ["surname:first:x"]}),
     "blocking[0].keys: 'surname:first:x': 'first' needs a length"),
    ("year on a non-date", with_blocking({"name": "p", "keys": ["postcode:year"]}),
     "blocking[0].keys: 'postcode:year': 'year' needs a date field"),
    ("year_month on a name", with_blocking({"name": "p", "keys": ["surname:year_month"]}),
     "blocking[0].keys: 'surname:year_month': 'year_month' needs a date field"),
    ("soundex on a number", with_blocking({"name": "p", "keys": ["postcode:soundex"]}),
     "blocking[0].keys: 'postcode:soundex': 'soundex' needs a name or text field"),
    ("metaphone on a date", with_blocking({"name": "p", "keys": ["dob:metaphone"]}),
     "blocking[0].keys: 'dob:metaphone': 'metaphone' needs a name or text field"),
    ("nysiis on an id", with_blocking({"name": "p", "keys": ["ssn:nysiis"]}),
     "blocking[0].keys: 'ssn:nysiis': 'nysiis' needs a name or text field"),
    ("duplicate pass names", with_blocking({"name": "p", "keys": ["ssn"]}, {"name": "p", "keys": ["dob"]}),
     "blocking: pass names must be unique"),
    ("pass without keys", with_blocking({"name": "p"}), "blocking[0].keys: a non-empty list"),
    ("pass with empty keys", with_blocking({"name": "p", "keys": []}), "blocking[0].keys: a non-empty list"),
    ("pass name not an identifier", with_blocking({"name": "by ssn", "keys": ["ssn"]}),
     "blocking[0].name: required, letters/digits/underscore"),
    ("pass with an unknown key", with_blocking({"name": "p", "keys": ["ssn"], "max_size": 3}),
     "blocking[0]: unknown key(s) ['max_size']"),
    ("entities in a link schema", {**copy.deepcopy(BASE), "entities": {"person": {"id": "ssn"}}},
     "entities: a linkage schema (kind = 'link') has fields, not entities"),
    ("unknown kind", {**copy.deepcopy(BASE), "source": {**BASE["source"], "kind": "linkage"}},
     "source.kind: one of ['link', 'source'], got 'linkage'"),
]


@pytest.mark.parametrize(("document", "expected"), [(d, e) for _, d, e in CASES], ids=[c[0] for c in CASES])
def test_each_fault_is_reported_with_its_path(document, expected):
    problems = problems_of(document)
    assert any(p.startswith(expected) for p in problems), problems


def test_source_schema_with_blocking_is_refused():
    document = {
        "source": {"name": "x", "purpose": "p"},
        "columns": [{"name": "amount", "type": "amount"}],
        "blocking": [{"name": "p", "keys": ["amount"]}],
    }
    assert problems_of(document) == ["blocking: only a linkage schema (kind = 'link') has [[blocking]] passes"]


def test_source_schema_refuses_link_column_options():
    document = {
        "source": {"name": "x", "purpose": "p"},
        "columns": [{"name": "amount", "type": "amount", "encodings": ["exact"]}],
    }
    assert problems_of(document) == ["columns[0]: unknown key(s) ['encodings']"]


def test_a_bad_blocking_key_drops_only_its_pass():
    """A faulty pass is reported; the other passes are still checked (their faults are reported too)."""
    problems = problems_of(with_blocking({"name": "a", "keys": ["nope"]}, {"name": "b", "keys": ["postcode:year"]},
                                         {"name": "c", "keys": ["ssn"]}))
    assert problems == ["blocking[0].keys: 'nope' does not name a field",
                        "blocking[1].keys: 'postcode:year': 'year' needs a date field"]


BAD_TOML = """
[source]
name = "bad"
kind = "link"
purpose = "test-linkage"
record_id = "rid"

[entities.person]
id = "ssn"

[[columns]]
name = "rid"
type = "record_id"
encodings = ["exact"]

[[columns]]
name = "surname"
type = "nam"

[[columns]]
name = "given"
type = "name"
encodings = ["exact", "blom"]
bloom_bits = 1000
bloom_k = 99
salt = "birth"

[[columns]]
name = "dob"
type = "date"
on_invalid = "ignore"

[[columns]]
name = "city"
type = "text"
salt = "dob"

[[columns]]
name = "postcode"
type = "number"
salt = "city"

[[columns]]
name = "street"
type = "text"

[[columns]]
name = "town"
type = "text"
salt = "street:year"

[[columns]]
name = "nickname"
type = "name"
salt = "dob:year"

[[blocking]]
name = "p"
keys = ["nope", "given:soundx"]

[[blocking]]
name = "q"
keys = ["given:first"]

[[blocking]]
name = "r"
keys = ["postcode:year", "postcode:soundex"]

[[blocking]]
name = "s"
keys = ["dob"]

[[blocking]]
name = "s"
keys = ["dob:year"]
"""

BAD_TOML_PROBLEMS = [
    "columns[0]: a record_id column is kept in clear and takes no ['encodings']",
    "columns[1].type: unknown type 'nam'",
    "columns[2].encodings: a non-empty list of distinct ['bloom', 'exact']",
    "columns[2].bloom_bits: a power of two from 64 to 4096",
    "columns[2].bloom_k: an integer from 1 to 64",
    "columns[3].on_invalid: one of ['keep', 'reject']",
    "columns.given.salt: must name another field, got 'birth'",
    "columns.given.salt: only a Bloom-filter encoding takes a salt",  # its encodings fell back to ["exact"]
    "columns.postcode.salt: field 'city' is itself salted",
    "columns.town.salt: ':year' needs a date field, 'street' is not",
    "columns.nickname.salt: ':year' is refused on a name field",
    "entities.person.id: no column named 'ssn'",
    "entities: a linkage schema (kind = 'link') has fields, not entities",
    "blocking[0].keys: 'nope' does not name a field",
    "blocking[0].keys: 'given:soundx': unknown transform 'soundx'",
    "blocking[1].keys: 'given:first': 'first' needs a length",
    "blocking[2].keys: 'postcode:year': 'year' needs a date field",
    "blocking[2].keys: 'postcode:soundex': 'soundex' needs a name or text field",
    "blocking: pass names must be unique",
]


def test_all_faults_of_a_linkage_schema_file_are_reported_at_once_with_the_file(tmp_path):
    path = tmp_path / "bad_link.toml"
    path.write_text(BAD_TOML, encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    problems = info.value.problems
    for expected in BAD_TOML_PROBLEMS:
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == len(BAD_TOML_PROBLEMS), problems
    message = str(info.value)
    assert message.startswith(f"{path}: invalid configuration ({len(BAD_TOML_PROBLEMS)} problem(s))")
    assert all(p in message for p in problems)


def test_cli_reports_a_bad_linkage_schema_without_traceback(tmp_path, key_file, capsys):
    from matchkit.cli.main import main

    schema = tmp_path / "bad_link.toml"
    schema.write_text(BAD_TOML, encoding="utf-8")
    data = tmp_path / "in.csv"
    data.write_text("rid,surname\n1,smith\n", encoding="utf-8")
    code = main(["hash", str(schema), str(data), "--key", str(key_file), "-o", str(tmp_path / "out.parquet")])
    err = capsys.readouterr().err
    assert code == 1
    assert str(schema) in err
    assert "Traceback" not in err
    assert "blocking: pass names must be unique" in err
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("key", ["surname:soundex:3", "dob:year:4", "postcode:exact:1"])
def test_a_transform_that_takes_no_argument_refuses_one(key):
    problems = problems_of(with_blocking({"name": "p", "keys": [key]}))
    assert any(f"{key!r}" in problem and "takes no argument" in problem for problem in problems)
