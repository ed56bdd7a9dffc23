"""The tax bureau opens exactly the rows its list matches and writes files that ``verify`` reads unchanged.

Per agency: ``Finalize`` every element of the answer (``y`` of each listed input), probe the table for the entry
tags of the evidence elements (``i = 0, 1, ...`` per seal of the table's chain, until a tag is absent), unwrap the
row keys, decrypt those rows, and re-express every token of an opened row in the request's local space:

* a content value ``z`` equal to ``z`` of a listed token ``x`` (the bureau computed it from ``y``) becomes ``L(x)``,
  the very token its claims carry — so every equality verify tests between a claim and an opened person holds here
  exactly as in the shared-key flow;
* any other ``z`` (a relative who is not on the list, a token of an opened person that no claim has) becomes an
  opaque tag ``HMAC(request secret, "opaque" || agency key fingerprint || z)``: equal within one agency's table,
  unrelated to anything else.

Persons opened by fuzzy evidence (a claim's mistyped ID: the true person's ID is not on the list) would get opaque,
per-agency IDs, and verify, which joins people across sources by ID, would see one person per agency: a spurious
tie. Such a person is instead named by its *signature*: the set of listed tokens among its near, name and birth-date
tokens, which depends only on its tokens and the list, not on the agency's key, so the same person gets the same ID
in every agency's opened file. Only a signature held by one distinct person of that agency's opened rows is used
(two persons with one signature keep their opaque IDs and stay two, as verify would see them anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from matchkit import __version__
from matchkit.encode.person import ENCODING_VERSION, Encoder
from matchkit.encode.person_table import TableEncoder
from matchkit.io.hashed.format import Manifest
from matchkit.io.hashed.reader import check_artefact_signature
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.keyless.answer import ANSWER_FORMAT, ANSWER_META_KEY, read_elements
from matchkit.keyless.common import (
    PUBLIC_ENCODING_KEY,
    KeylessError,
    content_value,
    entry_tag_and_pad,
    now,
    xor,
)
from matchkit.keyless.evidence import token_columns
from matchkit.keyless.request import RequestState, load_state, local_int
from matchkit.keyless.sealed import NONCE_BYTES, ROW_ID_BYTES, SealedTable, open_sealed, row_ad
from matchkit.schema import Schema, load_schema
from matchkit.security import oprf
from matchkit.security.audit import audited
from matchkit.security.signing import TrustStore, load_trust_dir


@dataclass
class OpenedSource:
    source: str
    table_rows: int
    rows_opened: int
    output: Path


@dataclass
class OpenResult:
    output_dir: Path
    claims: Path
    claim_lines: int
    sources: list[OpenedSource] = field(default_factory=list)


def request_fingerprint(state: RequestState) -> str:
    digest = hmac.new(state.secret, b"request key fingerprint", hashlib.sha256).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def open_request(state_path: str | Path, answers: dict[str, str | Path], tables: dict[str, str | Path],
                 output_dir: str | Path, *, trust: str | Path | TrustStore | None = None,
                 workers: int | None = None, audit_log: str | Path | None = None) -> OpenResult:
    with audited(audit_log, "open") as record:
        for path in [*answers.values(), *tables.values()]:
            record.add_input(path)
        result = _open(state_path, answers, tables, output_dir, trust=trust, workers=workers)
        record.add_output(result.claims, rows=result.claim_lines)
        for opened in result.sources:
            record.add_output(opened.output, rows=opened.rows_opened, table_rows=opened.table_rows)
    return result


def _open(state_path: str | Path, answers: dict[str, str | Path], tables: dict[str, str | Path],
          output_dir: str | Path, *, trust: str | Path | TrustStore | None, workers: int | None) -> OpenResult:
    state = load_state(state_path)
    missing = sorted(set(tables) - set(answers))
    if missing:
        raise KeylessError(f"no --answer for table(s) {', '.join(missing)}: each agency's table opens only with "
                           "that agency's answer")
    extra = sorted(set(answers) - set(tables))
    if extra:
        raise KeylessError(f"--answer given for {', '.join(extra)} without a --table")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = None if trust is None else (trust if isinstance(trust, TrustStore) else load_trust_dir(trust))
    result = OpenResult(out, out / "claims.parquet", state.claims.num_rows)
    fingerprint = request_fingerprint(state)
    info = state.info
    # a source's schema digest must match the bureau's: the opened file is written in its layout
    prepared = []
    for name, table_path in tables.items():
        if store is not None:
            check_artefact_signature(table_path, store)  # the digest: checked as each is read below
            check_artefact_signature(answers[name], store)
        table = open_sealed(table_path)
        if table.source != name:
            raise KeylessError(f"is a sealed '{table.source}' table, given as {name}=", path=table.path)
        answer_manifest, evaluated = read_elements(Path(answers[name]), ANSWER_META_KEY, ANSWER_FORMAT,
                                                   "answer (from 'matchkit answer')")
        _check_pair(state, table, answer_manifest, Path(answers[name]))
        schema = load_schema(name)
        if schema.digest != table.manifest.get("schema_digest"):
            raise KeylessError(f"was sealed with another '{name}' schema than this matchkit's; use a matching "
                               "release", path=table.path)
        prepared.append((name, schema, table, evaluated))
    for name, schema, table, evaluated in prepared:
        seals = tuple(bytes.fromhex(seal) for seal in table.chain)
        derived = oprf.parallel_map(_finalize_chunk, [
            (x, inverse, element, content, evidence, seals)
            for x, inverse, element, content, evidence in zip(state.inputs, state.blinds, evaluated,
                                                              state.content.tolist(), state.evidence.tolist())
        ], workers)
        opened = _open_table(state, schema, table, derived)
        target = out / f"{name}.parquet"
        manifest = _hashed_manifest(schema, info, fingerprint, rows=opened.num_rows,
                                    input_name=f"{table.path.name} (opened)")
        _write_hashed(target, opened, manifest)
        result.sources.append(OpenedSource(name, len(table.rows), opened.num_rows, target))
    claims_schema = load_schema("claims")
    manifest = _hashed_manifest(claims_schema, info, fingerprint, rows=state.claims.num_rows,
                                input_name=info["input_name"]).replace(
        input_format=info["input_format"], input_encoding=info["input_encoding"], rows_in=info["rows_in"],
        rows_rejected=info["rows_rejected"])
    _write_hashed(result.claims, state.claims, manifest)
    return result


def _check_pair(state: RequestState, table: SealedTable, answer: dict[str, Any], answer_path: Path) -> None:
    if answer.get("request_id") != state.request_id:
        raise KeylessError("is the answer to another request (request id differs from the state's)",
                           path=answer_path)
    if answer.get("element_count") != len(state.inputs):
        raise KeylessError("answer and request state disagree on the element count", path=answer_path)
    if answer.get("key_fingerprint") != table.manifest.get("key_fingerprint"):
        raise KeylessError(f"was answered with key {answer.get('key_fingerprint')} but table {table.path.name} was "
                           f"sealed with {table.manifest.get('key_fingerprint')}: give each table its own agency's "
                           "answer", path=answer_path)
    for field_name in ("purpose", "tax_year"):
        if table.manifest.get(field_name) != state.info[field_name]:
            raise KeylessError(f"was sealed for {field_name} {table.manifest.get(field_name)!r} but the request is "
                               f"for {state.info[field_name]!r}", path=table.path)


Derived = tuple[bytes, bytes | None, list[tuple[bytes, bytes]] | None]


def _finalize_chunk(args: list[tuple[bytes, bytes, bytes, bool, bool, tuple[bytes, ...]]]) -> list[Derived]:
    """In a worker: ``y = Finalize``, its content value (content elements) and its first probe per seal (evidence
    elements: most probes end there, so the parent computes almost no tag itself)."""
    out: list[Derived] = []
    for x, inverse, element, content, evidence, seals in args:
        y = oprf.finalize_unblinded(x, inverse, element)
        out.append((y, content_value(y) if content else None,
                    [entry_tag_and_pad(y, seal, 0) for seal in seals] if evidence else None))
    return out


def _probe(table: SealedTable, ys: list[bytes], first: list[list[tuple[bytes, bytes]]] | None = None
           ) -> list[tuple[int, bytes]]:
    """(entry position, pad) of every entry opened by one of ``ys``: per seal, i = 0, 1, ... until absent.
    ``first[k][s]``: the (tag, pad) of ``ys[k]`` at i = 0 in seal s, when already derived."""
    found: list[tuple[int, bytes]] = []
    tags = table.entry_tags
    if len(tags) == 0:
        return found
    for seal_index, seal_hex in enumerate(table.chain):
        seal_id = bytes.fromhex(seal_hex)
        active = list(range(len(ys)))
        index = 0
        while active:
            if index == 0 and first is not None:
                pairs = [first[k][seal_index] for k in active]
            else:
                pairs = [entry_tag_and_pad(ys[k], seal_id, index) for k in active]
            probe = np.array([t for t, _ in pairs], dtype="S16")
            pos = np.searchsorted(tags, probe)
            pos_clipped = np.minimum(pos, len(tags) - 1)
            hit = (tags[pos_clipped] == probe) & (pos < len(tags))
            hit &= table.entry_seals[pos_clipped] == seal_index
            still = []
            for k, (_, pad), h, p in zip(active, pairs, hit.tolist(), pos_clipped.tolist()):
                if h:
                    found.append((p, pad))
                    still.append(k)
            active = still
            index += 1
    return found


def _open_table(state: RequestState, schema: Schema, table: SealedTable, derived: list[Derived]) -> pa.Table:
    secret = state.secret
    from matchkit.keyless.request import local_token

    z_map: dict[bytes, bytes] = {}
    for x, (_, z, _) in zip(state.inputs, derived):
        if z is not None:
            z_map[z] = local_token(secret, x)
    evidence = [(y, first) for y, _, first in derived if first is not None]
    keys: dict[bytes, dict[bytes, set[int]]] = {}
    for position, pad in _probe(table, [y for y, _ in evidence], [first for _, first in evidence]):
        payload = xor(table.entry_blobs[position].tobytes(), pad)
        if payload[ROW_ID_BYTES + 1:16] != b"\x00\x00\x00":
            continue
        row_id, slot, row_key = payload[:ROW_ID_BYTES], payload[ROW_ID_BYTES], payload[16:48]
        keys.setdefault(row_id, {}).setdefault(row_key, set()).add(slot)

    entity_names = [entity.name for entity in schema.entities]
    opened: list[tuple[dict[str, Any], set[int]]] = []
    for row_id, candidates in keys.items():
        if row_id not in table.rows:
            continue  # an entry of a row removed by a later delta
        _, blob = table.rows[row_id]
        for row_key, slots in candidates.items():
            try:
                plain = ChaCha20Poly1305(row_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                                          row_ad(schema.name, row_id))
            except InvalidTag:
                continue  # an old entry of a row re-added under a new key
            opened.append((json.loads(plain), slots))
            break
    opened.sort(key=lambda item: item[0]["l"])

    fp = str(table.manifest["key_fingerprint"]).encode("ascii")

    def opaque(z_hex: str) -> bytes:
        return hmac.new(secret, b"opaque|" + fp + b"|" + bytes.fromhex(z_hex), hashlib.sha256).digest()

    def big(z_hex: str | None) -> bytes | None:
        if z_hex is None:
            return None
        listed = z_map.get(bytes.fromhex(z_hex))
        return (listed if listed is not None else opaque(z_hex))[:16]

    def small(z_hex: str) -> int:
        listed = z_map.get(bytes.fromhex(z_hex))
        return local_int(listed if listed is not None else opaque(z_hex))

    # persons found by fuzzy evidence whose ID is not listed: name them by their signature where it is unique
    signatures: dict[str, bytes] = {}
    holders: dict[bytes, set[str]] = {}
    for content, slots in opened:
        for slot in slots:
            person = content["p"][entity_names[slot]]
            z_id = person.get("id")
            if z_id is None or bytes.fromhex(z_id) in z_map or z_id in signatures:
                continue
            listed = sorted(
                [b"n%d" % w + z_map[bytes.fromhex(z)] for w, z in enumerate(person.get("nr") or ())
                 if bytes.fromhex(z) in z_map]
                + [b"f" + z_map[bytes.fromhex(z)] for z in (person.get("nm") or ()) if bytes.fromhex(z) in z_map]
                + ([b"d" + z_map[bytes.fromhex(person["db"])]]
                   if person.get("db") and bytes.fromhex(person["db"]) in z_map else []))
            if listed:
                signature = hashlib.sha256(b"|".join(listed)).digest()
                signatures[z_id] = signature
                holders.setdefault(signature, set()).add(z_id)
    fuzzy_ids = {z_id: hmac.new(secret, b"fuzzy|" + signature, hashlib.sha256).digest()[:16]
                 for z_id, signature in signatures.items() if len(holders[signature]) == 1}

    arrow_schema = TableEncoder(schema, Encoder(PUBLIC_ENCODING_KEY, schema.purpose, ENCODING_VERSION)).arrow_schema
    columns: dict[str, list[Any]] = {f.name: [] for f in arrow_schema}
    token_names = {c for name in entity_names for c in token_columns(name)}
    for content, _ in opened:
        columns["_line"].append(content["l"])
        for name, value in content["c"].items():
            if name in columns and name not in token_names:
                columns[name].append(value)
        for name in entity_names:
            person = content["p"][name]
            id_col, near_col, name_col, dob_col = token_columns(name)
            z_id = person.get("id")
            if id_col in columns:
                columns[id_col].append(fuzzy_ids[z_id] if z_id in fuzzy_ids else big(z_id))
            if near_col in columns:
                columns[near_col].append(None if person.get("nr") is None else [small(z) for z in person["nr"]])
            if name_col in columns:
                columns[name_col].append(None if person.get("nm") is None else [small(z) for z in person["nm"]])
            if dob_col in columns:
                columns[dob_col].append(big(person.get("db")))
    arrays = []
    for schema_field in arrow_schema:
        values = columns[schema_field.name]
        if len(values) != len(opened):
            raise KeylessError(f"opened rows of {schema.name} lack column {schema_field.name}: table and matchkit "
                               "release disagree")
        if pa.types.is_date32(schema_field.type):
            values = [date.fromisoformat(v) if isinstance(v, str) else v for v in values]
        arrays.append(pa.array(values, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _hashed_manifest(schema: Schema, info: dict[str, Any], fingerprint: str, *, rows: int, input_name: str
                     ) -> Manifest:
    """The manifest of an opened file: a format-2 hashed file under the request's own key (its id and
    fingerprint), so that ``verify`` reads the opened files of one request together and no other file."""
    return Manifest(
        source=schema.name, schema_version=schema.version, schema_digest=schema.digest,
        encoding_version=ENCODING_VERSION, purpose=info["purpose"], key_id=f"request-{info['request_id'][:12]}",
        key_fingerprint=fingerprint, input_name=input_name, input_format="keyless", input_encoding=None,
        rows_in=rows, rows_hashed=rows, rows_rejected=0, tool_version=__version__, created=now(),
    )


def _write_hashed(target: Path, table: pa.Table, manifest: Manifest) -> None:
    writer = HashedFileWriter(target, table.schema)
    try:
        writer.write(table)
        writer.close(manifest)
    except BaseException:
        writer.abort()
        raise
