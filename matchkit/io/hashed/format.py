"""What a hashed file holds, in one place: the file-format constants, every column name, and the manifest.

A hashed file is a Parquet file written by ``matchkit hash``. Its footer's key-value metadata holds:

- ``matchkit.manifest``: the :class:`Manifest` as JSON (keys sorted) — which source, schema, encoding version,
  purpose and key produced the file, and how many rows went in and out; for a linkage file also the fields, their
  encodings and the blocking passes (:class:`LinkageLayout`).
- ``matchkit.digest``: the digest record, ``{"algorithm": "sha256", "digest": <64 hex>, "format":
  "matchkit-digest", "scope": ...}``: the SHA-256 of **every byte of the file** with the 64 hex digits of the
  digest itself read as ``0`` — leading magic, data pages, the footer with the Parquet schema, row-group metadata,
  the manifest and any signer record, the footer length and the trailing magic (format version 2; version 1
  covered the data pages only).
- ``matchkit.signature`` (signed files only, :mod:`matchkit.security.signing`).

Columns of a source (``mk1``) file: ``_line`` and, per entity ``E`` of the schema, ``E_id_tok`` (16-byte keyed
token of the ID number), ``E_id_valid``, and for a person entity ``E_id_near`` (near tokens of the ID body),
``E_name_fz`` (birth-date-salted fuzzy name tokens), ``E_dob_tok``, ``E_birth_ym`` and ``E_id_birth_ym``; then the
schema's value columns under their own names. Columns of a linkage file: ``_line``, the record id in clear,
``<field>_tok`` (exact token), ``<field>_bf`` (Bloom filter) and ``_blk_<pass>`` (keyed blocking key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from matchkit.encode.columns import (
    BIRTH_YM,
    DOB_TOKEN,
    ID_BIRTH_YM,
    ID_NEAR,
    ID_TOKEN,
    ID_VALID,
    LINE_COLUMN,
    NAME_FUZZY,
    blocking_column,
    bloom_column,
    person_column,
    token_column,
)
from matchkit.errors import ManifestError

FILE_FORMAT = "matchkit-hashed"
FILE_FORMAT_VERSION = 2
MANIFEST_KEY = b"matchkit.manifest"
DIGEST_KEY = b"matchkit.digest"
DIGEST_FORMAT = "matchkit-digest"
DIGEST_SCOPE = "whole-file-with-digest-slot-zeroed"
DIGEST_HEX = 64  # SHA-256
DIGEST_PLACEHOLDER = "0" * DIGEST_HEX
KIND_SOURCE = "source"
KIND_LINK = "link"

# ---- the manifest ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    """How one linkage field is encoded: what two files must agree on for the field to be compared."""

    type: str
    encodings: tuple[str, ...]
    bloom_bits: int | None = None
    bloom_k: int | None = None
    salt: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "encodings": list(self.encodings)}
        if "bloom" in self.encodings:
            body.update(bloom_bits=self.bloom_bits, bloom_k=self.bloom_k, salt=self.salt)
        return body

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.to_json().items()) if v is not None)


@dataclass(frozen=True)
class BlockingSpec:
    """A blocking pass: its keyed token is made from these ``(field, transform)`` parts."""

    parts: tuple[tuple[str, str], ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(field_name for field_name, _ in self.parts)

    def describe(self) -> str:
        return " + ".join(f"{f}:{t}" for f, t in self.parts)


@dataclass(frozen=True)
class TermFrequencySpec:
    """What a linkage schema declares about term-frequency adjustment (:mod:`matchkit.link.tf`): ``tf = true`` or
    ``false`` on a field, and ``[[tf_group]]`` groups of fields adjusted as one value. Written only when the schema
    declares something (then ``matchkit link`` adjusts names and texts by default)."""

    fields: Mapping[str, bool] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fields": dict(self.fields), "groups": {name: list(members) for name, members in self.groups.items()}}


@dataclass(frozen=True)
class LinkageLayout:
    """The part of a linkage file's manifest that says which columns it holds and how they were made."""

    record_id: str | None
    fields: Mapping[str, FieldSpec]
    blocking: Mapping[str, BlockingSpec]
    kept_invalid: Mapping[str, int] = field(default_factory=dict)
    term_frequencies: TermFrequencySpec | None = None


@dataclass(frozen=True)
class Manifest:
    """What produced a hashed file and what it holds; stored as JSON in the file's footer."""

    source: str
    schema_version: int
    schema_digest: str
    encoding_version: str
    purpose: str
    key_id: str
    key_fingerprint: str
    input_name: str
    input_format: str
    input_encoding: str | None
    rows_in: int
    rows_hashed: int
    rows_rejected: int
    tool_version: str
    created: str
    linkage: LinkageLayout | None = None

    @property
    def kind(self) -> str:
        return KIND_LINK if self.linkage is not None else KIND_SOURCE

    def to_json(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "linkage"}
        body.update(format=FILE_FORMAT, format_version=FILE_FORMAT_VERSION, kind=self.kind)
        if self.linkage is not None:
            body.update(
                record_id=self.linkage.record_id,
                fields={name: spec.to_json() for name, spec in self.linkage.fields.items()},
                blocking={name: [list(part) for part in spec.parts] for name, spec in self.linkage.blocking.items()},
                kept_invalid=dict(self.linkage.kept_invalid),
            )
            if self.linkage.term_frequencies is not None:  # only when declared: other manifests unchanged
                body["term_frequencies"] = self.linkage.term_frequencies.to_json()
        return body

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, path: str | Path) -> Manifest:
        """Parse and validate the manifest of the file at ``path``; any fault is a ``ManifestError`` naming it."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError("matchkit manifest is damaged (not JSON)", path=path) from exc
        if not isinstance(body, dict) or body.get("format") != FILE_FORMAT:
            raise ManifestError("matchkit manifest is damaged (no format marker)", path=path)
        version = body.get("format_version")
        if version == 1:
            raise ManifestError(
                "was written by an older matchkit (hashed-file format 1, whose digest does not cover the footer): "
                "hash the raw extract again with this matchkit", path=path)
        if version != FILE_FORMAT_VERSION:
            raise ManifestError(
                f"file format version {version!r} is not supported by this matchkit (supports "
                f"{FILE_FORMAT_VERSION}); use a matching release", path=path)
        read = _Fields(body, path)
        kind = read.text("kind")
        if kind not in (KIND_SOURCE, KIND_LINK):
            raise ManifestError(f"matchkit manifest is damaged (unknown kind {kind!r})", path=path)
        linkage = None
        if kind == KIND_LINK:
            linkage = LinkageLayout(
                record_id=read.optional_text("record_id"),
                fields={name: _field_spec(spec, f"fields.{name}", read) for name, spec in read.mapping("fields").items()},
                blocking={name: _blocking_spec(parts, f"blocking.{name}", read)
                          for name, parts in read.mapping("blocking").items()},
                kept_invalid={name: read.check(count, int, f"kept_invalid.{name}")
                              for name, count in read.mapping("kept_invalid").items()},
            )
            if body.get("term_frequencies") is not None:
                linkage = replace(linkage, term_frequencies=_term_frequency_spec(
                    body["term_frequencies"], linkage.fields, read))
        return cls(
            source=read.text("source"), schema_version=read.integer("schema_version"),
            schema_digest=read.text("schema_digest"), encoding_version=read.text("encoding_version"),
            purpose=read.text("purpose"), key_id=read.text("key_id"), key_fingerprint=read.text("key_fingerprint"),
            input_name=read.text("input_name"), input_format=read.text("input_format"),
            input_encoding=read.optional_text("input_encoding"), rows_in=read.integer("rows_in"),
            rows_hashed=read.integer("rows_hashed"), rows_rejected=read.integer("rows_rejected"),
            tool_version=read.text("tool_version"), created=read.text("created"), linkage=linkage,
        )

    def replace(self, **changes: Any) -> Manifest:
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


def _field_spec(body: Any, where: str, read: _Fields) -> FieldSpec:
    spec = read.check(body, dict, where)
    encodings = read.check(spec.get("encodings"), list, f"{where}.encodings")
    optional_int = (int, type(None))
    return FieldSpec(
        type=read.check(spec.get("type"), str, f"{where}.type"),
        encodings=tuple(read.check(e, str, f"{where}.encodings[]") for e in encodings),
        bloom_bits=read.check(spec.get("bloom_bits"), optional_int, f"{where}.bloom_bits"),
        bloom_k=read.check(spec.get("bloom_k"), optional_int, f"{where}.bloom_k"),
        salt=read.check(spec.get("salt"), (str, type(None)), f"{where}.salt"),
    )


def _term_frequency_spec(body: Any, layout_fields: Mapping[str, FieldSpec], read: _Fields) -> TermFrequencySpec:
    spec = read.check(body, dict, "term_frequencies")
    declared = read.check(spec.get("fields", {}), dict, "term_frequencies.fields")
    groups = read.check(spec.get("groups", {}), dict, "term_frequencies.groups")
    for name, wanted in declared.items():
        read.check(wanted, bool, f"term_frequencies.fields.{name}")
        if name not in layout_fields:
            raise ManifestError(f"matchkit manifest is damaged (term_frequencies.fields names {name!r}, which is "
                                "not a field of the file)", path=read.path)
    members: dict[str, tuple[str, ...]] = {}
    for name, group in groups.items():
        where = f"term_frequencies.groups.{name}"
        listed = read.check(group, list, where)
        if len(listed) < 2 or not all(isinstance(m, str) and m in layout_fields for m in listed):
            raise ManifestError(f"matchkit manifest is damaged ({where}: not a list of two or more fields of the "
                                "file)", path=read.path)
        members[name] = tuple(listed)
    return TermFrequencySpec(fields=dict(declared), groups=members)


def _blocking_spec(body: Any, where: str, read: _Fields) -> BlockingSpec:
    parts = []
    for part in read.check(body, list, where):
        if not (isinstance(part, list) and len(part) == 2 and all(isinstance(p, str) for p in part)):
            raise ManifestError(f"matchkit manifest is damaged ({where}: not a list of [field, transform])",
                                path=read.path)
        parts.append((part[0], part[1]))
    return BlockingSpec(tuple(parts))


class _Fields:
    """Typed reads of the manifest's JSON object; a missing or mistyped field names itself and the file."""

    def __init__(self, body: dict[str, Any], path: str | Path) -> None:
        self.body, self.path = body, path

    def check(self, value: Any, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, type(None)))):
            raise ManifestError(f"matchkit manifest is damaged (field {where!r} is missing or has the wrong type)",
                                path=self.path)
        return value

    def text(self, name: str) -> str:
        return str(self.check(self.body.get(name), str, name))

    def optional_text(self, name: str) -> str | None:
        value = self.check(self.body.get(name), (str, type(None)), name)
        return None if value is None else str(value)

    def integer(self, name: str) -> int:
        return int(self.check(self.body.get(name), int, name))

    def mapping(self, name: str) -> dict[str, Any]:
        return dict(self.check(self.body.get(name), dict, name))


# ---- the digest record -----------------------------------------------------------------------------------------
def digest_record(digest_hex: str = DIGEST_PLACEHOLDER) -> bytes:
    """The footer value under :data:`DIGEST_KEY`; written first with the placeholder, then filled in place."""
    record = {"algorithm": "sha256", "digest": digest_hex, "format": DIGEST_FORMAT, "scope": DIGEST_SCOPE}
    return json.dumps(record, sort_keys=True).encode("ascii")


def parse_digest_record(raw: bytes, path: str | Path) -> str:
    """The hex digest of a digest record; ``ManifestError`` when the record is damaged."""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError("digest record is damaged", path=path) from exc
    if (not isinstance(record, dict) or record.get("format") != DIGEST_FORMAT
            or record.get("algorithm") != "sha256" or record.get("scope") != DIGEST_SCOPE):
        raise ManifestError("digest record is damaged (unknown format, algorithm or scope)", path=path)
    digest = record.get("digest")
    if not isinstance(digest, str) or len(digest) != DIGEST_HEX or digest.strip("0123456789abcdef"):
        raise ManifestError("digest record is damaged (not 64 hex digits)", path=path)
    return digest


__all__ = [
    "BIRTH_YM", "DIGEST_KEY", "DOB_TOKEN", "FILE_FORMAT", "FILE_FORMAT_VERSION", "ID_BIRTH_YM", "ID_NEAR", "ID_TOKEN",
    "ID_VALID", "LINE_COLUMN", "MANIFEST_KEY", "NAME_FUZZY", "BlockingSpec", "FieldSpec", "LinkageLayout",
    "Manifest", "TermFrequencySpec", "blocking_column", "bloom_column", "digest_record", "parse_digest_record", "person_column",
    "token_column",
]
