"""The tax bureau's request: blinded OPRF inputs of every token its listed claims need, and its private STATE.

The request file (Parquet, footer key ``matchkit.request``) holds only ``element``: 32-byte blinded ristretto255
elements, deduplicated across claims and shuffled with the OS CSPRNG, so neither their order, their count per claim
nor any repetition says anything about the claims; its manifest gives the purpose, the tax year, the element count
and a random request id. Blinds are fresh per request: the same list requested twice gives unrelated elements.

The STATE (a zip file, mode 0600, never overwritten, refused when the group or others may read it) holds the
request secret, the blinds with their OPRF inputs (public-key encodings: as sensitive as the claims themselves) and
the claims already re-expressed in the request's local token space: a listed token ``t`` (OPRF input ``x``) becomes
``L(x) = HMAC-SHA256(request secret, "local" || x)``. Delete it once the opened files have been verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from matchkit import __version__
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.keyless.common import KeylessError, now, read_private, write_private
from matchkit.keyless.evidence import Person, persons_of, token_columns
from matchkit.keyless.reading import EncodeInput
from matchkit.schema import Schema
from matchkit.security import oprf

REQUEST_META_KEY = b"matchkit.request"
REQUEST_FORMAT = "matchkit-request"
STATE_FORMAT = "matchkit-request-state"
FORMAT_VERSION = 1
ELEMENT_SCHEMA = pa.schema([pa.field("element", pa.binary(oprf.ELEMENT_BYTES), nullable=False)])


def local_token(secret: bytes, x: bytes) -> bytes:
    """``L(x)``: the request-local token of a listed OPRF input (32 bytes; columns keep 16 or 8 of them)."""
    return hmac.new(secret, b"local|" + x, hashlib.sha256).digest()


def local_int(token: bytes) -> int:
    return int.from_bytes(token[:8], "big", signed=True)


@dataclass(frozen=True)
class RequestState:
    """What ``open`` needs: loaded from the STATE file."""

    path: Path
    info: dict[str, Any]
    secret: bytes
    inputs: list[bytes]
    blinds: list[bytes]  # the inverse of each element's blind
    evidence: np.ndarray  # bool per element: probe it as evidence
    content: np.ndarray  # bool per element: a token of the claims (maps z -> L)
    claims: pa.Table

    @property
    def request_id(self) -> str:
        return str(self.info["request_id"])


@dataclass(frozen=True)
class RequestResult:
    output: Path
    state: Path
    rejects: Path | None
    rows_in: int
    rows_listed: int
    rows_rejected: int
    rows_other_years: int
    elements: int
    manifest: dict[str, Any]


def request_file(claims_input: str | Path, output: str | Path, state_path: str | Path, *,
                 encode_input: EncodeInput, claims_schema: Schema, rejects_path: str | Path | None = None,
                 tax_year: int | None = None, purpose: str | None = None, workers: int | None = None
                 ) -> RequestResult:
    """List the claims of ``claims_input`` (read by ``encode_input``, which writes ``rejects_path``) as one
    request for one tax year: :func:`matchkit.jobs.keyless.request_file` passes the hash job's reading."""
    state_target = Path(state_path)
    if state_target.exists():
        raise KeylessError("refusing to overwrite an existing request state", path=state_target)
    if Path(output).exists():
        raise KeylessError("refusing to overwrite an existing request", path=output)
    encoded = encode_input(claims_schema, purpose or claims_schema.purpose)
    table = encoded.table
    years = sorted({v for v in table.column("tax_year").to_pylist() if v is not None})
    if tax_year is None:
        if len(years) > 1:
            raise KeylessError(f"the claims cover several tax years ({', '.join(map(str, years))}); a request is for "
                               "one tax year: pass --tax-year YEAR (one request per year)", path=claims_input)
        if not years:
            raise KeylessError("no claim line was accepted: nothing to request", path=claims_input)
        tax_year = years[0]
    in_year = np.asarray(table.column("tax_year").to_numpy(zero_copy_only=False) == tax_year, dtype=bool)
    other_years = int((~in_year).sum())
    table = table.filter(pa.array(in_year))
    secret = secrets.token_bytes(32)
    request_id = secrets.token_hex(16)

    # every OPRF input the listed claims need, once
    content: dict[bytes, None] = {}
    evidence: dict[bytes, None] = {}
    entities = [entity for entity in encoded.schema.entities]
    for entity in entities:
        for person in persons_of(table, entity.name):
            if entity.fuzzy:
                for x in person.content_inputs():
                    content[x] = None
                for x in person.evidence_inputs(query=True):
                    evidence[x] = None
            else:  # the taxpayer: the bureau's own registered person, the exact ID only
                x_id = Person(person.id_tok, None, None, None).id_input()
                if x_id is not None:
                    content[x_id] = None
                    evidence[x_id] = None
    inputs = list(dict.fromkeys([*content, *evidence]))
    order = list(range(len(inputs)))
    secrets.SystemRandom().shuffle(order)
    inputs = [inputs[i] for i in order]
    pairs = oprf.blind_many_inverse(inputs, workers)  # the state keeps 1/blind: Finalize needs only that
    blinds = [b for b, _ in pairs]
    elements = [e for _, e in pairs]

    local = _local_claims(table, [e.name for e in entities], secret)
    manifest = {"format": REQUEST_FORMAT, "format_version": FORMAT_VERSION, "request_id": request_id,
                "purpose": encoded.purpose, "tax_year": int(tax_year), "element_count": len(elements),
                "oprf": "RFC9497 OPRF(ristretto255, SHA-512)", "tool_version": __version__, "created": now()}
    info = {"format": STATE_FORMAT, "format_version": FORMAT_VERSION, "request_id": request_id,
            "purpose": encoded.purpose, "tax_year": int(tax_year), "element_count": len(elements),
            "secret": base64.b64encode(secret).decode("ascii"), "schema_version": encoded.schema.version,
            "schema_digest": encoded.schema.digest, "input_name": encoded.input_name,
            "input_format": encoded.input_format, "input_encoding": encoded.input_encoding,
            "rows_in": encoded.rows_in, "rows_rejected": encoded.rows_rejected, "rows_other_years": other_years,
            "created": manifest["created"]}
    element_table = pa.table({
        "input": pa.array(inputs, pa.binary()), "unblind": pa.array(blinds, pa.binary(oprf.SCALAR_BYTES)),
        "evidence": pa.array([x in evidence for x in inputs], pa.bool_()),
        "content": pa.array([x in content for x in inputs], pa.bool_()),
    })
    write_private(state_target, _state_zip(info, element_table, local), label="request state")
    try:
        writer = HashedFileWriter(output, ELEMENT_SCHEMA, unique=["element"])
        try:
            writer.write(pa.table({"element": pa.array(elements, pa.binary(oprf.ELEMENT_BYTES))},
                                  schema=ELEMENT_SCHEMA))
            manifest = writer.close_artefact(manifest, meta_key=REQUEST_META_KEY)
        except BaseException:
            writer.abort()
            raise
    except BaseException:
        state_target.unlink(missing_ok=True)
        raise
    return RequestResult(Path(output), state_target, Path(rejects_path) if rejects_path else None, encoded.rows_in,
                         table.num_rows, encoded.rows_rejected, other_years, len(elements), manifest)


def _local_claims(table: pa.Table, entities: list[str], secret: bytes) -> pa.Table:
    """The claims with every token replaced by its request-local token ``L(x)``."""
    columns = {name: table.column(name) for name in table.column_names}
    for entity in entities:
        persons = persons_of(table, entity)
        id_col, near_col, name_col, dob_col = token_columns(entity)

        def big(x: bytes | None) -> bytes | None:
            return None if x is None else local_token(secret, x)[:16]

        if id_col in columns:
            columns[id_col] = pa.array([big(p.id_input()) for p in persons], pa.binary(16))
        if near_col in columns:
            columns[near_col] = pa.array([None if (xs := p.near_inputs()) is None
                                          else [local_int(local_token(secret, x)) for x in xs] for p in persons],
                                         pa.list_(pa.int64()))
        if name_col in columns:
            columns[name_col] = pa.array([None if (xs := p.name_inputs()) is None
                                          else [local_int(local_token(secret, x)) for x in xs] for p in persons],
                                         pa.list_(pa.int64()))
        if dob_col in columns:
            columns[dob_col] = pa.array([big(p.dob_input()) for p in persons], pa.binary(16))
    return pa.table(columns, schema=table.schema)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _state_zip(info: dict[str, Any], elements: pa.Table, claims: pa.Table) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("state.json", json.dumps(info, indent=1))
        archive.writestr("elements.parquet", _parquet_bytes(elements))
        archive.writestr("claims.parquet", _parquet_bytes(claims))
    return buffer.getvalue()


def load_state(path: str | Path) -> RequestState:
    source = Path(path)
    raw = read_private(source, label="request state")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            info = json.loads(archive.read("state.json"))
            elements = pq.read_table(io.BytesIO(archive.read("elements.parquet")))
            claims = pq.read_table(io.BytesIO(archive.read("claims.parquet")))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, pa.ArrowException) as exc:
        raise KeylessError("not a request state written by 'matchkit request' (damaged?)", path=source) from exc
    if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
        raise KeylessError("not a request state written by 'matchkit request'", path=source)
    secret = base64.b64decode(info["secret"])
    return RequestState(source, info, secret, elements.column("input").to_pylist(),
                        elements.column("unblind").to_pylist(),
                        np.asarray(elements.column("evidence").to_numpy(zero_copy_only=False), dtype=bool),
                        np.asarray(elements.column("content").to_numpy(zero_copy_only=False), dtype=bool), claims)
