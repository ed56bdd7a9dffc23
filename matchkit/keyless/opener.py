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
    entry_label,
    now,
)
from matchkit.keyless.evidence import token_columns
from matchkit.keyless.request import RequestState, load_state, local_int
from matchkit.keyless.sealed import NONCE_BYTES, ROW_ID_BYTES, SealedTable, open_sealed, row_ad, sealed_parts
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
        for path in [*answers.values(), *(part for table in tables.values() for part in sealed_parts(table))]:
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
            for part in sealed_parts(table_path):  # a partitioned table: every part signed
                check_artefact_signature(part, store)  # the digest: checked as each is read below
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
    # one pass of the worker pool over every agency's answer: while this process probes, decrypts and writes one
    # agency's rows, the workers already finalize the next agency's elements
    flags = (np.asarray(state.content, dtype=np.uint8) | (np.asarray(state.evidence, dtype=np.uint8) << 1)).tobytes()
    inverses = b"".join(state.blinds)
    local = _LocalTokens(state)
    count = len(state.inputs)
    chunk = _OPEN_CHUNK
    tasks = (
        (state.inputs[start:start + chunk], inverses[32 * start:32 * (start + chunk)],
         b"".join(evaluated[start:start + chunk]), flags[start:start + chunk],
         tuple(bytes.fromhex(seal) for seal in table.chain))
        for _, _, table, evaluated in prepared for start in range(0, count, chunk)
    )
    per_agency = max(1, -(-count // chunk))
    results = oprf.parallel_imap(_finalize_packed, tasks, workers, window=max(4, per_agency))
    for name, schema, table, _ in prepared:
        parts = [next(results) for _ in range(per_agency)] if count else []
        derived = _Derived.join(parts, len(table.chain))
        opened = _open_table(state, schema, table, derived, local)
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


_OPEN_CHUNK = 4096


def _finalize_packed(task: tuple[list[bytes], bytes, bytes, bytes, tuple[bytes, ...]]) -> tuple[bytes, bytes, bytes]:
    """In a worker, for a run of elements: ``y = Finalize`` of each (64 bytes each, joined), the content value of
    each content element (16 bytes each), and each evidence element's first probe ``tag || pad`` (i = 0) in every
    seal of the table's chain (64 bytes each): most probes end there. Packed bytes, not a Python object per
    element, cross the pipe."""
    inputs, inverses, elements, flags, seals = task
    labels = [entry_label(seal, 0) for seal in seals]
    ys: list[bytes] = []
    zs: list[bytes] = []
    firsts: list[bytes] = []
    for k, x in enumerate(inputs):
        y = oprf.finalize_unblinded(x, inverses[32 * k:32 * k + 32], elements[32 * k:32 * k + 32])
        ys.append(y)
        flag = flags[k]
        if flag & 1:
            zs.append(content_value(y))
        if flag & 2:
            firsts.extend(hmac.digest(y, label, "sha512") for label in labels)
    return b"".join(ys), b"".join(zs), b"".join(firsts)


@dataclass
class _Derived:
    """What the workers derived for one agency: ``ys`` (n, 64), the content values of the content elements in
    order (m, 16) and the first probes of the evidence elements in order (e, seals, 64)."""

    ys: np.ndarray
    zs: np.ndarray
    firsts: np.ndarray

    @staticmethod
    def join(parts: list[tuple[bytes, bytes, bytes]], seals: int) -> _Derived:
        def stacked(index: int, shape: tuple[int, ...]) -> np.ndarray:
            return np.frombuffer(b"".join(part[index] for part in parts), dtype=np.uint8).reshape(-1, *shape)

        return _Derived(stacked(0, (64,)), stacked(1, (16,)), stacked(2, (seals, 64)))


class _LocalTokens:
    """The request-local token ``L(x)`` of each content element, computed once for every agency."""

    def __init__(self, state: RequestState) -> None:
        from matchkit.keyless.request import local_token

        self.content_index = np.flatnonzero(np.asarray(state.content, dtype=bool))
        self.evidence_index = np.flatnonzero(np.asarray(state.evidence, dtype=bool))
        self.tokens = [local_token(state.secret, state.inputs[i]) for i in self.content_index.tolist()]


def _probe(table: SealedTable, ys: list[bytes], first: np.ndarray | None = None) -> list[tuple[int, bytes]]:
    """(entry position, pad) of every entry opened by one of ``ys``: per seal, i = 0, 1, ... until absent.
    ``first[k, s]``: ``tag || pad`` of ``ys[k]`` at i = 0 in seal s, when already derived (by the workers)."""
    positions, pads = _probe_arrays(table, ys, first)
    return list(zip(positions.tolist(), [bytes(p) for p in pads]))


def _probe_arrays(table: SealedTable, ys: list[bytes], first: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    tags = table.entry_tags
    found_positions: list[np.ndarray] = []
    found_pads: list[np.ndarray] = []
    if len(tags) and ys:
        last = len(tags) - 1
        for seal_index, seal_hex in enumerate(table.chain):
            seal_id = bytes.fromhex(seal_hex)
            active = np.arange(len(ys))
            index = 0
            while len(active):
                if index == 0 and first is not None:
                    derived = np.ascontiguousarray(first[:, seal_index, :])
                else:
                    label = entry_label(seal_id, index)
                    derived = np.frombuffer(b"".join(hmac.digest(ys[k], label, "sha512") for k in active.tolist()),
                                            dtype=np.uint8).reshape(-1, 64)
                probe = np.ascontiguousarray(derived[:, :16]).view("S16").ravel()
                pos = np.searchsorted(tags, probe)
                clipped = np.minimum(pos, last)
                hit = (pos <= last) & (tags[clipped] == probe) & (table.entry_seals[clipped] == seal_index)
                found_positions.append(clipped[hit])
                found_pads.append(derived[hit, 16:])
                active = active[hit]
                index += 1
    if not found_positions:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 48), dtype=np.uint8)
    return np.concatenate(found_positions), np.concatenate(found_pads)


def _open_table(state: RequestState, schema: Schema, table: SealedTable, derived: _Derived,
                local: _LocalTokens) -> pa.Table:
    secret = state.secret
    z_bytes = derived.zs.tobytes()
    z_map: dict[str, bytes] = {z_bytes[16 * k:16 * k + 16].hex(): token for k, token in enumerate(local.tokens)}
    ev = local.evidence_index
    ys = derived.ys[ev].tobytes()
    positions, pads = _probe_arrays(table, [ys[64 * k:64 * k + 64] for k in range(len(ev))], derived.firsts)
    payloads = (table.entry_blobs[positions] ^ pads) if len(positions) else np.zeros((0, 48), dtype=np.uint8)
    payloads = payloads[(payloads[:, ROW_ID_BYTES + 1:16] == 0).all(axis=1)]
    keys: dict[bytes, dict[bytes, set[int]]] = {}
    packed = payloads.tobytes()
    for k in range(len(payloads)):
        payload = packed[48 * k:48 * k + 48]
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

    opaque_of: dict[str, bytes] = {}

    def token(z_hex: str) -> bytes:
        listed = z_map.get(z_hex)
        if listed is not None:
            return listed
        value = opaque_of.get(z_hex)
        if value is None:
            value = opaque_of[z_hex] = hmac.new(secret, b"opaque|" + fp + b"|" + bytes.fromhex(z_hex),
                                                hashlib.sha256).digest()
        return value

    def big(z_hex: str | None) -> bytes | None:
        return None if z_hex is None else token(z_hex)[:16]

    def small(z_hex: str) -> int:
        return local_int(token(z_hex))

    # persons found by fuzzy evidence whose ID is not listed: name them by their signature where it is unique
    signatures: dict[str, bytes] = {}
    holders: dict[bytes, set[str]] = {}
    for content, slots in opened:
        for slot in slots:
            person = content["p"][entity_names[slot]]
            z_id = person.get("id")
            if z_id is None or z_id in z_map or z_id in signatures:
                continue
            listed = sorted(
                [b"n%d" % w + z_map[z] for w, z in enumerate(person.get("nr") or ()) if z in z_map]
                + [b"f" + z_map[z] for z in (person.get("nm") or ()) if z in z_map]
                + ([b"d" + z_map[person["db"]]] if person.get("db") and person["db"] in z_map else []))
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
