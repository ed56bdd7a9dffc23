"""Source schemas: declarative TOML files that say which columns a source has and how each is treated.

A schema is validated on load and *all* its faults are reported at once, each with its path
(``columns[3].type: unknown type 'dat'``). Built-in schemas ship in the package, ``matchkit/data/schemas/<name>.toml``
(read through :mod:`matchkit.resources`; ``MATCHKIT_CONFIG_DIR`` overrides); ``matchkit schema show NAME`` prints
one. A user can point ``matchkit hash`` at a schema file of their own.

Column types and what the hashed file keeps of them:

=============  ==========================================================================
``id``         identifier of an entity: exact token, near tokens, validity flag (never clear)
``id_type``    document type of an entity's ID (consumed, never written)
``name``       person name of an entity: birth-date-salted fuzzy tokens (never clear)
``birth_date`` birth date of an entity: token (claims also keep the year-month in clear)
``record_id``  the owner's own row key, kept in clear and checked unique
``month``      clear, int YYYYMM          ``date``    clear, date
``year``       clear, int                 ``amount``  clear, float >= 0
``share``      clear, float in (0, 1]     ``bool``    clear, bool
``code``       clear, canonical code from a named vocabulary (``vocabulary = "stage"``)
``text``       clear text (only for non-personal attributes)
=============  ==========================================================================

A *linkage* schema (``[source] kind = "link"``, for ``matchkit link``) describes any two agencies' records instead:
its columns are the ``record_id`` (kept in clear) and *fields* of type ``id``, ``name``, ``date``, ``text`` or
``number``, each written only as keyed encodings (``encodings = ["exact", "bloom"]``, see
:mod:`matchkit.encode.fields`), and its ``[[blocking]]`` passes name keyed blocking keys built from the fields
(``keys = ["surname:soundex", "date_of_birth:year"]``). Nothing of a field is ever kept in clear.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from matchkit.errors import SchemaError
from matchkit.resources import schema_file

COLUMN_TYPES = frozenset(
    {"id", "id_type", "name", "birth_date", "record_id", "month", "date", "year", "amount", "share", "bool", "code",
     "text"}
)
ENTITY_ROLES = ("id", "id_type", "name", "birth_date")
VOCABULARIES = frozenset({"deduction", "stage", "relation", "event"})
INVALID_ID_POLICIES = frozenset({"reject", "flag"})
ROW_CHECKS = frozenset({"claim_period", "claim_amount", "partner_for_couple_events", "enrolment_order"})
BUILTIN_SOURCES = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")
BUILTIN_LINK_SCHEMAS = ("febrl",)
SCHEMA_KINDS = frozenset({"source", "link"})
LINK_FIELD_TYPES = frozenset({"id", "name", "date", "text", "number"})
LINK_COLUMN_TYPES = LINK_FIELD_TYPES | {"record_id"}
FIELD_ENCODINGS = frozenset({"exact", "bloom"})
ON_INVALID = frozenset({"reject", "keep"})
BLOCKING_TRANSFORMS = frozenset({"exact", "soundex", "nysiis", "metaphone", "year", "year_month", "first", "last"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    vocabulary: str | None = None
    entity: str | None = None
    default: str | None = None
    # linkage fields only (kind = "link")
    encodings: tuple[str, ...] = ()
    bloom_bits: int = 0
    bloom_k: int = 0
    salt: str | None = None  # "<field>" or "<field>:year" (not on a name): a record-level salt for its Bloom filter
    on_invalid: str = "reject"
    tf: bool | None = None  # term-frequency adjustment of exact agreements; None: the default for the type


@dataclass(frozen=True)
class TfGroup:
    """Fields whose exact agreements are adjusted for term frequency as one value (``[[tf_group]]``)."""

    name: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class BlockingKey:
    """One blocking pass of a linkage schema: records sharing all ``parts`` (field, transform) are compared."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (field, transform); transform "first:3" keeps its argument

    def describe(self) -> str:
        return " + ".join(f"{f}:{t}" for f, t in self.parts)


@dataclass(frozen=True)
class Entity:
    """One person described by a few columns of a row (claims: taxpayer and subject; household: parent, child)."""

    name: str
    id: str
    id_type: str | None = None
    person_name: str | None = None
    birth_date: str | None = None
    fuzzy: bool = True
    invalid_id: str = "reject"
    required: bool = True
    keep_birth_month: bool = False


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    purpose: str
    columns: tuple[Column, ...]
    entities: tuple[Entity, ...]
    row_checks: tuple[str, ...] = ()
    record_id: str | None = None
    description: str = ""
    path: str | None = None
    digest: str = ""
    kind: str = "source"
    blocking: tuple[BlockingKey, ...] = ()
    tf_groups: tuple[TfGroup, ...] = ()
    by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    @property
    def fields(self) -> tuple[Column, ...]:
        """The encoded fields of a linkage schema (every column but the record id)."""
        return tuple(c for c in self.columns if c.type in LINK_FIELD_TYPES) if self.kind == "link" else ()

    def column(self, name: str) -> Column:
        return self.by_name[name]

    def header_map(self) -> dict[str, str]:
        """Every accepted header (canonical or alias, case-folded and trimmed) -> canonical column name."""
        mapping: dict[str, str] = {}
        for column in self.columns:
            for header in (column.name, *column.aliases):
                mapping[_fold_header(header)] = column.name
        return mapping


def _fold_header(header: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", header).strip().strip("\ufeff").casefold()


def fold_header(header: str) -> str:
    return _fold_header(header)


def load_schema(source: str | Path) -> Schema:
    """A built-in source by name (``education``) or a schema file by path (anything ending in ``.toml``)."""
    text_source = str(source)
    path: Path | Traversable
    if text_source in BUILTIN_SOURCES or text_source in BUILTIN_LINK_SCHEMAS:
        path = schema_file(text_source)
    elif text_source.endswith(".toml") or os.sep in text_source:
        path = Path(text_source)
    else:
        message = (f"unknown source {text_source!r}; built-in sources: "
                   f"{', '.join(BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS)}, "
                   "or give the path of a schema .toml file")
        raise SchemaError([message])
    raw = _read_schema_bytes(path)
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError([f"not valid TOML: {exc}"], path=str(path)) from exc
    return parse_schema(document, path=str(path), digest=hashlib.sha256(raw).hexdigest())


def builtin_schema(name: str) -> tuple[str, bytes]:
    """Where a built-in schema is read from and its bytes (``matchkit schema show``): the packaged copy, or the
    one in ``MATCHKIT_CONFIG_DIR`` when that is set, exactly as ``load_schema(name)`` reads it."""
    if name not in BUILTIN_SOURCES and name not in BUILTIN_LINK_SCHEMAS:
        names = ", ".join(BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS)
        raise SchemaError([f"unknown built-in schema {name!r}; built-in schemas: {names}"])
    path = schema_file(name)
    return str(path), _read_schema_bytes(path)


def _read_schema_bytes(path: Path | Traversable) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SchemaError(["schema file not found"], path=str(path)) from exc
    except OSError as exc:
        raise SchemaError([f"cannot read schema file ({exc.strerror})"], path=str(path)) from exc


def parse_schema(document: dict[str, Any], *, path: str | Path | None = None, digest: str = "") -> Schema:
    problems: list[str] = []
    source = document.get("source")
    if not isinstance(source, dict):
        problems.append("source: missing [source] table")
        source = {}
    name = source.get("name")
    if not isinstance(name, str) or not name:
        problems.append("source.name: required text")
    version = source.get("version", 1)
    if not isinstance(version, int) or version < 1:
        problems.append("source.version: must be a positive integer")
    purpose = source.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        problems.append("source.purpose: required text (e.g. 'iit-special-deduction')")
    kind = source.get("kind", "source")
    if kind not in SCHEMA_KINDS:
        problems.append(f"source.kind: one of {sorted(SCHEMA_KINDS)}, got {kind!r}")
        kind = "source"
    column_types = LINK_COLUMN_TYPES if kind == "link" else COLUMN_TYPES
    row_checks = source.get("row_checks", [])
    if not isinstance(row_checks, list) or any(check not in ROW_CHECKS for check in row_checks):
        problems.append(f"source.row_checks: each must be one of {sorted(ROW_CHECKS)}")
        row_checks = []

    columns: list[Column] = []
    raw_columns = document.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        problems.append("columns: at least one [[columns]] entry is required")
        raw_columns = []
    seen_headers: dict[str, str] = {}
    for index, entry in enumerate(raw_columns):
        where = f"columns[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        allowed = {"name", "type", "aliases", "required", "vocabulary", "entity", "default"}
        if kind == "link":
            allowed = {"name", "type", "aliases", "required", "encodings", "bloom_bits", "bloom_k", "salt",
                       "on_invalid", "tf"}
        _check_keys(entry, allowed, where, problems)
        col_name = _identifier(entry, where, problems) or f"<column {index}>"
        col_type = entry.get("type")
        if col_type not in column_types:
            problems.append(f"{where}.type: unknown type {col_type!r}; one of {sorted(column_types)}")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            problems.append(f"{where}.aliases: must be a list of non-empty texts")
            aliases = []
        vocabulary = entry.get("vocabulary")
        if col_type == "code" and vocabulary not in VOCABULARIES:
            problems.append(f"{where}.vocabulary: a code column needs one of {sorted(VOCABULARIES)}")
        required = entry.get("required", False)
        if not isinstance(required, bool):
            problems.append(f"{where}.required: must be true or false")
        for header in (col_name, *aliases):
            folded = _fold_header(header)
            if folded in seen_headers and seen_headers[folded] != col_name:
                problems.append(f"{where}: header {header!r} is also used by column {seen_headers[folded]!r}")
            seen_headers[folded] = col_name
        link_options = _link_column_options(entry, str(col_type), where, problems) if kind == "link" else {}
        columns.append(
            Column(name=col_name, type=str(col_type), aliases=tuple(aliases), required=bool(required),
                   vocabulary=vocabulary, entity=entry.get("entity"), default=entry.get("default"),
                   **link_options)
        )
    by_name = {column.name: column for column in columns}
    if len(by_name) != len(columns):
        problems.append("columns: column names must be unique")

    entities: list[Entity] = []
    raw_entities = document.get("entities", {})
    if not isinstance(raw_entities, dict):
        problems.append("entities: must be a table of [entities.<name>] tables")
        raw_entities = {}
    for entity_name, entry in raw_entities.items():
        where = f"entities.{entity_name}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        _check_keys(entry, {"id", "id_type", "name", "birth_date", "fuzzy", "invalid_id", "required",
                            "keep_birth_month"}, where, problems)
        expected_types = {"id": "id", "id_type": "id_type", "name": "name", "birth_date": "birth_date"}
        for role, expected in expected_types.items():
            column_name = entry.get(role)
            if column_name is None:
                if role == "id":
                    problems.append(f"{where}.id: required (the column holding this entity's ID number)")
                continue
            column = by_name.get(column_name)
            if column is None:
                problems.append(f"{where}.{role}: no column named {column_name!r}")
            elif column.type != expected:
                problems.append(f"{where}.{role}: column {column_name!r} has type {column.type!r}, not {expected!r}")
        invalid_id = entry.get("invalid_id", "reject")
        if invalid_id not in INVALID_ID_POLICIES:
            problems.append(f"{where}.invalid_id: one of {sorted(INVALID_ID_POLICIES)}")
        entities.append(
            Entity(name=entity_name, id=str(entry.get("id")), id_type=entry.get("id_type"),
                   person_name=entry.get("name"), birth_date=entry.get("birth_date"),
                   fuzzy=bool(entry.get("fuzzy", True)), invalid_id=str(invalid_id),
                   required=bool(entry.get("required", True)),
                   keep_birth_month=bool(entry.get("keep_birth_month", False)))
        )
    claimed = [role_column for e in entities for role_column in (e.id, e.id_type, e.person_name, e.birth_date)
               if role_column]
    for column in columns:
        if kind == "source" and column.type in ENTITY_ROLES and column.name not in claimed:
            problems.append(f"columns.{column.name}: a {column.type!r} column must belong to an [entities.*] table")
    blocking: tuple[BlockingKey, ...] = ()
    tf_groups: tuple[TfGroup, ...] = ()
    if kind == "link":
        if raw_entities:
            problems.append("entities: a linkage schema (kind = 'link') has fields, not entities")
        _check_salts(columns, problems)
        blocking = _parse_blocking(document.get("blocking"), by_name, problems)
        tf_groups = _parse_tf_groups(document.get("tf_group"), by_name, problems)
    else:
        if "blocking" in document:
            problems.append("blocking: only a linkage schema (kind = 'link') has [[blocking]] passes")
        if "tf_group" in document:
            problems.append("tf_group: only a linkage schema (kind = 'link') has [[tf_group]] entries")
    record_id = source.get("record_id")
    if record_id is not None and (record_id not in by_name or by_name[record_id].type != "record_id"):
        problems.append(f"source.record_id: must name a column of type 'record_id', got {record_id!r}")
    if problems:
        raise SchemaError(problems, path=path)
    return Schema(
        name=str(name), version=int(version), purpose=str(purpose), columns=tuple(columns),
        entities=tuple(entities), row_checks=tuple(row_checks), record_id=record_id,
        description=str(source.get("description", "")), path=str(path) if path else None, digest=digest,
        kind=str(kind), blocking=blocking, tf_groups=tf_groups, by_name=by_name,
    )


# --- linkage schemas ----------------------------------------------------------------------------------------------
DEFAULT_BLOOM = {  # (bits, hash positions per q-gram) by field type; see matchkit.encode.fields
    "name": (512, 16), "text": (512, 12), "date": (256, 8), "number": (256, 8), "id": (256, 8),
}


def _link_column_options(entry: dict[str, Any], col_type: str, where: str, problems: list[str]) -> dict[str, Any]:
    if col_type == "record_id":
        extra = set(entry) & {"encodings", "bloom_bits", "bloom_k", "salt", "on_invalid", "tf"}
        if extra:
            problems.append(f"{where}: a record_id column is kept in clear and takes no {sorted(extra)}")
        return {}
    if col_type not in LINK_FIELD_TYPES:
        return {}
    encodings = entry.get("encodings", ["exact", "bloom"])
    if (not isinstance(encodings, list) or not encodings or any(e not in FIELD_ENCODINGS for e in encodings)
            or len(set(encodings)) != len(encodings)):
        problems.append(f"{where}.encodings: a non-empty list of distinct {sorted(FIELD_ENCODINGS)}")
        encodings = ["exact"]
    default_bits, default_k = DEFAULT_BLOOM[col_type]
    bits = entry.get("bloom_bits", default_bits)
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 64 or bits > 4096 or bits & (bits - 1):
        problems.append(f"{where}.bloom_bits: a power of two from 64 to 4096")
        bits = default_bits
    k = entry.get("bloom_k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 64:
        problems.append(f"{where}.bloom_k: an integer from 1 to 64")
        k = default_k
    salt = entry.get("salt")
    if salt is not None and (not isinstance(salt, str) or not salt):
        problems.append(f"{where}.salt: the name of another field, optionally ':year' (e.g. 'date_of_birth')")
        salt = None
    on_invalid = entry.get("on_invalid", "reject")
    if on_invalid not in ON_INVALID:
        problems.append(f"{where}.on_invalid: one of {sorted(ON_INVALID)}")
        on_invalid = "reject"
    tf = entry.get("tf")
    if tf is not None and not isinstance(tf, bool):
        problems.append(f"{where}.tf: true or false (term-frequency adjustment of exact agreements)")
        tf = None
    if tf and "exact" not in encodings:
        problems.append(f"{where}.tf: term-frequency adjustment needs the 'exact' encoding (the value counts are "
                        "those of the exact tokens)")
    return {"encodings": tuple(encodings), "bloom_bits": int(bits), "bloom_k": int(k), "salt": salt,
            "on_invalid": str(on_invalid), "tf": tf}


def _parse_tf_groups(raw: Any, by_name: dict[str, Column], problems: list[str]) -> tuple[TfGroup, ...]:
    """``[[tf_group]] name = "full_name", fields = ["given_name", "surname"]``: two or more distinct fields with
    an exact encoding, adjusted for term frequency as one value when they all agree."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append("tf_group: must be [[tf_group]] tables")
        return ()
    groups: list[TfGroup] = []
    for index, entry in enumerate(raw):
        where = f"tf_group[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        _check_keys(entry, {"name", "fields"}, where, problems)
        name = _identifier(entry, where, problems)
        members = entry.get("fields")
        if (not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) for m in members)
                or len(set(members)) != len(members)):
            problems.append(f"{where}.fields: a list of two or more distinct field names, e.g. "
                            "[\"given_name\", \"surname\"]")
            continue
        bad = False
        for member in members:
            column = by_name.get(member)
            if column is None or column.type not in LINK_FIELD_TYPES:
                problems.append(f"{where}.fields: {member!r} does not name a field")
                bad = True
            elif "exact" not in column.encodings:
                problems.append(f"{where}.fields: {member!r} has no 'exact' encoding (the group's value counts "
                                "are those of its fields' exact tokens)")
                bad = True
            elif column.tf is False:
                problems.append(f"{where}.fields: {member!r} says tf = false; a group adjusts its fields' values")
                bad = True
        if name is not None and name in by_name:
            problems.append(f"{where}.name: {name!r} is also a column name")
            bad = True
        if name is not None and not bad:
            groups.append(TfGroup(name, tuple(members)))
    if len({g.name for g in groups}) != len(groups):
        problems.append("tf_group: group names must be unique")
    return tuple(groups)


def _check_salts(columns: list[Column], problems: list[str]) -> None:
    fields = {c.name: c for c in columns if c.type in LINK_FIELD_TYPES}
    for column in fields.values():
        if column.salt is None:
            continue
        salt_field, _, transform = column.salt.partition(":")
        other = fields.get(salt_field)
        if other is None or salt_field == column.name:
            problems.append(f"columns.{column.name}.salt: must name another field, got {salt_field!r}")
        elif other.salt is not None:
            problems.append(f"columns.{column.name}.salt: field {salt_field!r} is itself salted")
        elif transform not in ("", "year"):
            problems.append(f"columns.{column.name}.salt: the only salt transform is ':year'")
        elif transform == "year" and other.type != "date":
            problems.append(f"columns.{column.name}.salt: ':year' needs a date field, {salt_field!r} is not")
        elif transform == "year" and column.type == "name":
            problems.append(f"columns.{column.name}.salt: ':year' is refused on a name field: names salted by the "
                            "birth year alone are re-identified by pattern mining (over 90 % of records, "
                            f"SECURITY.md §6); salt by the full date instead, salt = \"{salt_field}\"")
        if "bloom" not in column.encodings:
            problems.append(f"columns.{column.name}.salt: only a Bloom-filter encoding takes a salt")


def _parse_blocking(raw: Any, by_name: dict[str, Column], problems: list[str]) -> tuple[BlockingKey, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("blocking: a linkage schema needs at least one [[blocking]] pass "
                        "(comparing every pair of two large files is never done)")
        return ()
    passes: list[BlockingKey] = []
    for index, entry in enumerate(raw):
        where = f"blocking[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        _check_keys(entry, {"name", "keys"}, where, problems)
        name = _identifier(entry, where, problems) or f"pass{index}"
        keys = entry.get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            problems.append(f"{where}.keys: a non-empty list like [\"surname:soundex\", \"date_of_birth:year\"]")
            continue
        parts: list[tuple[str, str]] = []
        for key in keys:
            field_name, _, transform = key.partition(":")
            transform = transform or "exact"
            column = by_name.get(field_name)
            base, _, argument = transform.partition(":")
            if column is None or column.type not in LINK_FIELD_TYPES:
                problems.append(f"{where}.keys: {key!r} does not name a field")
            elif base not in BLOCKING_TRANSFORMS:
                problems.append(f"{where}.keys: {key!r}: unknown transform {base!r}; one of "
                                f"{sorted(BLOCKING_TRANSFORMS)}")
            elif base not in ("first", "last") and argument:
                problems.append(f"{where}.keys: {key!r}: '{base}' takes no argument")
            elif base in ("first", "last") and not (argument.isdigit() and 1 <= int(argument) <= 32):
                problems.append(f"{where}.keys: {key!r}: '{base}' needs a length, e.g. '{field_name}:{base}:3'")
            elif base in ("year", "year_month") and column.type != "date":
                problems.append(f"{where}.keys: {key!r}: '{base}' needs a date field")
            elif base in ("soundex", "nysiis", "metaphone") and column.type not in ("name", "text"):
                problems.append(f"{where}.keys: {key!r}: '{base}' needs a name or text field")
            else:
                parts.append((field_name, transform))
        if len(parts) == len(keys):
            passes.append(BlockingKey(name=name, parts=tuple(parts)))
    if len({p.name for p in passes}) != len(passes):
        problems.append("blocking: pass names must be unique")
    return tuple(passes)


def _check_keys(entry: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    unknown = set(entry) - allowed
    if unknown:
        problems.append(f"{where}: unknown key(s) {sorted(unknown)}")


def _identifier(entry: dict[str, Any], where: str, problems: list[str]) -> str | None:
    """The entry's ``name`` if it is an identifier, else None with the problem noted."""
    name = entry.get("name")
    if isinstance(name, str) and name.isidentifier():
        return name
    problems.append(f"{where}.name: required, letters/digits/underscore")
    return None
