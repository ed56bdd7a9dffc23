"""Sealed tables: write (full or delta), read, merge.

A sealed table is a Parquet file with a JSON manifest (footer key ``matchkit.sealed``), its data digest and an
optional signature, as hashed files have. It holds three kinds of record (column ``kind``):

* ``ROW`` (0): ``row_id`` (12 bytes, stable: HMAC under an agency-only key of the row's content identity),
  ``seal`` (which seal run wrote it), ``blob`` = nonce || ChaCha20-Poly1305(row key, content, AD = format ||
  source || row id). The content is JSON: the row's clear attributes and, for each person of the row, the content
  values ``z`` of its tokens (never the OPRF output ``y``, never a token). The row key is random per row.
* ``ENTRY`` (1): ``tag`` (16 bytes) and ``blob`` = (row id || person slot || 000 || row key) XOR pad, where
  ``(tag, pad) = HMAC-SHA512(y, "entry" || seal id || i)`` and ``i`` counts the occurrences of evidence ``y`` in that
  seal run (0, 1, 2, ...): a person in several rows gets unrelated tags, so the table does not show group sizes; an
  opener probes ``i = 0, 1, ...`` until a tag is absent. Entries do not say which row they open.
* ``REMOVED`` (2, deltas only): the ``row_id`` of a row removed since the previous table.

Rows are ordered by row id and entries by tag, never by input order. The manifest's ``chain`` lists the seal ids of
the full table and of every delta merged into it; a delta names the chain it applies to, so ``merge`` refuses a
gap, a reordering, another key (public-key fingerprint) or another source. Removing a row leaves its entries in
place (they open nothing; re-sealing in full drops them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from matchkit import __version__
from matchkit.encode.person import ENCODING_VERSION
from matchkit.errors import OutputFileError
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.keyless.common import (
    TASK_ITEMS,
    EvaluationKey,
    KeylessError,
    KeyRef,
    OprfKey,
    now,
    seal_task,
    seal_values_many,
)
from matchkit.keyless.evidence import Person, persons_of, token_columns
from matchkit.keyless.reading import EncodeInput
from matchkit.runtime.cluster import Runner
from matchkit.schema import Schema
from matchkit.security.audit import audited
from matchkit.security.signing import SigningKey

SEALED_META_KEY = b"matchkit.sealed"
SEALED_FORMAT = "matchkit-sealed"
SEALED_FORMAT_VERSION = 1
ROW, ENTRY, REMOVED = 0, 1, 2
ROW_ID_BYTES = 12
ROW_KEY_BYTES = 32
ENTRY_BLOB_BYTES = 48
NONCE_BYTES = 12
_AD_PREFIX = b"matchkit-sealed/v1|"
TABLE_SCHEMA = pa.schema([
    pa.field("kind", pa.int8(), nullable=False),
    pa.field("row_id", pa.binary(ROW_ID_BYTES)),
    pa.field("seal", pa.int16()),
    pa.field("tag", pa.binary(16)),
    pa.field("blob", pa.binary()),
])


def row_ad(source: str, row_id: bytes) -> bytes:
    return _AD_PREFIX + source.encode("utf-8") + b"|" + row_id


@dataclass
class SealedTable:
    """A sealed table read into memory (the opener's and merger's view)."""

    path: Path
    manifest: dict[str, Any]
    rows: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # row id -> (seal, blob)
    entry_tags: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="S16"))  # sorted
    entry_seals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    entry_blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, ENTRY_BLOB_BYTES), dtype=np.uint8))
    removed: list[bytes] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.manifest["source"])

    @property
    def chain(self) -> list[str]:
        return list(self.manifest["chain"])


@dataclass(frozen=True)
class SealResult:
    output: Path
    rejects: Path | None
    rows_in: int
    rows_sealed: int
    rows_rejected: int
    rows_added: int
    rows_removed: int
    entries: int
    manifest: dict[str, Any]


# --- reading --------------------------------------------------------------------------------------------------------
def sealed_parts(path: str | Path) -> list[Path]:
    """The files of a sealed table: the file itself, or the ``part-NN.parquet`` files of a partitioned one (a
    directory written by ``seal -o DIR/``), refusing a directory with none or with a part missing."""
    target = Path(path)
    if not target.is_dir():
        return [target]
    parts = sorted(target.glob("part-*.parquet"))
    if not parts:
        raise KeylessError("is a folder without sealed table parts (part-NN.parquet)", path=target)
    return parts


def open_sealed(path: str | Path, *, check_digest: bool = True) -> SealedTable:
    """Read a sealed table (full, delta or merged; one file or a partitioned folder), refusing anything damaged or
    not a sealed table."""
    parts = sealed_parts(path)
    if len(parts) == 1 and not Path(path).is_dir():
        return _open_sealed_file(parts[0], check_digest=check_digest)
    tables = [_open_sealed_file(part, check_digest=check_digest) for part in parts]
    first = tables[0].manifest
    expected = first.get("partitions")
    if expected != len(tables) or sorted(int(t.manifest.get("partition", -1)) for t in tables) != list(range(len(tables))):
        raise KeylessError(f"holds {len(tables)} parts of a table sealed in {expected!r}: a part is missing or "
                           "foreign", path=path)
    for table in tables[1:]:
        for name in ("seal_id", "chain", "key_fingerprint", "source", "purpose", "tax_year", "table_kind"):
            if table.manifest.get(name) != first.get(name):
                raise KeylessError(f"mixes parts of different sealed tables ({name} differs)", path=table.path)
    merged = SealedTable(Path(path), dict(first))
    for table in tables:
        merged.rows.update(table.rows)
        merged.removed.extend(table.removed)
    tags = np.concatenate([np.frombuffer(t.entry_tags.tobytes(), dtype=np.uint8).reshape(-1, 16) for t in tables])
    entries = Entries(tags, np.concatenate([t.entry_seals for t in tables]),
                      np.concatenate([t.entry_blobs for t in tables])).sorted()
    merged.entry_tags = np.ascontiguousarray(entries.tags).view("S16").ravel()
    merged.entry_seals, merged.entry_blobs = entries.seals, entries.blobs
    return merged


def _open_sealed_file(path: str | Path, *, check_digest: bool = True) -> SealedTable:
    from matchkit.keyless.common import manifest_of

    target = Path(path)
    manifest = manifest_of(target, SEALED_META_KEY, SEALED_FORMAT, "sealed table (from 'matchkit seal')",
                           check_digest=False)
    if manifest.get("format_version") != SEALED_FORMAT_VERSION:
        raise KeylessError(f"sealed table format version {manifest.get('format_version')!r} is not supported",
                           path=target)
    if check_digest:
        manifest_of(target, SEALED_META_KEY, SEALED_FORMAT, "sealed table")
    try:
        table = pq.read_table(target)
    except Exception as exc:  # a damaged file can fail in any decoder
        raise KeylessError("sealed table cannot be read (corrupt?)", path=target) from exc
    kinds = table.column("kind").to_numpy()
    sealed = SealedTable(target, manifest)
    row_mask = kinds == ROW
    if row_mask.any():
        rows = table.filter(pa.array(row_mask))
        sealed.rows = {rid: (int(s), blob) for rid, s, blob in zip(rows.column("row_id").to_pylist(),
                                                                    rows.column("seal").to_pylist(),
                                                                    rows.column("blob").to_pylist())}
    entry_mask = kinds == ENTRY
    if entry_mask.any():
        entries = table.filter(pa.array(entry_mask))
        tags = _fixed_bytes(entries.column("tag"), 16, target)
        blobs = _fixed_bytes(entries.column("blob"), ENTRY_BLOB_BYTES, target)
        seals = entries.column("seal").to_numpy().astype(np.int16)
        order = _tag_order(tags)
        sealed.entry_tags = np.ascontiguousarray(tags[order]).view("S16").ravel()
        sealed.entry_seals = seals[order]
        sealed.entry_blobs = blobs[order]
    removed_mask = kinds == REMOVED
    if removed_mask.any():
        sealed.removed = table.filter(pa.array(removed_mask)).column("row_id").to_pylist()
    return sealed


def _fixed_bytes(column: pa.ChunkedArray, width: int, path: Path) -> np.ndarray:
    """A binary column whose every value has ``width`` bytes, as an ``(n, width)`` uint8 array (no Python object
    per value)."""
    array = column.combine_chunks()
    if array.null_count:
        raise KeylessError("sealed table has an entry without its tag or key (damaged?)", path=path)
    if pa.types.is_fixed_size_binary(array.type):
        data = array.buffers()[1]
        raw = np.frombuffer(data, dtype=np.uint8)[array.offset * width:(array.offset + len(array)) * width]
        return raw.reshape(-1, width)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    if len(array) and not (np.diff(offsets) == width).all():
        raise KeylessError("sealed table has an entry of the wrong size (damaged?)", path=path)
    raw = np.frombuffer(array.buffers()[2], dtype=np.uint8)
    start = int(offsets[0]) if len(offsets) else 0
    return raw[start:start + len(array) * width].reshape(-1, width)


def _tag_order(tags: np.ndarray) -> np.ndarray:
    """Row order sorting ``(n, 16)`` uint8 tags bytewise (as two big-endian 64-bit words)."""
    if len(tags) == 0:
        return np.zeros(0, dtype=np.int64)
    words = np.ascontiguousarray(tags).view(">u8").reshape(-1, 2)
    return np.lexsort((words[:, 1], words[:, 0]))


# --- row content ----------------------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def clear_columns(arrow_schema: pa.Schema, schema: Schema) -> list[str]:
    """Columns of the hashed layout kept in clear inside a row (everything but ``_line`` and the token columns)."""
    tokens = {c for entity in schema.entities for c in token_columns(entity.name)}
    return [f.name for f in arrow_schema if f.name != "_line" and f.name not in tokens]


def _identity(clear: dict[str, Any], persons: Sequence[Person]) -> bytes:
    """The canonical bytes of what a row says (not where it stands in the file): its stable identity."""
    body = {"c": clear, "p": [[p.id_tok.hex() if p.id_tok else None, list(p.near) if p.near else None,
                               list(p.names) if p.names else None, p.dob.hex() if p.dob else None]
                              for p in persons]}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _person_content(person: Person, z_of: dict[bytes, bytes]) -> dict[str, Any]:
    def z(x: bytes | None) -> str | None:
        return None if x is None else z_of[x].hex()

    near, names = person.near_inputs(), person.name_inputs()
    return {"id": z(person.id_input()), "nr": [z(x) for x in near] if near is not None else None,
            "nm": [z(x) for x in names] if names is not None else None, "db": z(person.dob_input())}


# --- sealing --------------------------------------------------------------------------------------------------------
def seal_file(
    source: str | Path | Schema,
    input_path: str | Path,
    key: OprfKey,
    output: str | Path,
    *,
    tax_year: int,
    encode_input: EncodeInput,
    purpose: str | None = None,
    rejects_path: str | Path | None = None,
    previous: str | Path | None = None,
    signing_key: SigningKey | None = None,
    audit_log: str | Path | None = None,
    workers: int | None = None,
    runner: Runner | None = None,
    key_path: str | Path | None = None,
) -> SealResult:
    """Seal one raw extract in full, or (``previous``) as the delta against a previous full or merged table.
    ``encode_input`` reads ``input_path`` (writing ``rejects_path``): :func:`matchkit.jobs.keyless.seal_file`
    passes the hash job's reading."""
    with audited(audit_log, "seal") as record:
        record.add_input(input_path)
        if previous is not None:
            for part in sealed_parts(previous):
                record.add_input(part)
        result = _seal_file(source, input_path, key, output, tax_year=tax_year, purpose=purpose,
                            rejects_path=rejects_path, encode_input=encode_input, previous=previous,
                            signing_key=signing_key, workers=workers, runner=runner, key_path=key_path)
        if result.output.is_dir():  # a partitioned table: every part, with its digest
            for part in sealed_parts(result.output):
                record.add_output(part)
        else:
            record.add_output(result.output, rows=result.rows_sealed)
        record.add_output(result.rejects, rows=result.rows_rejected)
        record.details.update(key_id=result.manifest["key_id"], key_fingerprint=result.manifest["key_fingerprint"],
                              source=result.manifest["source"], purpose=result.manifest["purpose"],
                              tax_year=result.manifest["tax_year"], table_kind=result.manifest["table_kind"],
                              rows_in=result.rows_in, rows_sealed=result.rows_sealed,
                              rows_rejected=result.rows_rejected, rows_added=result.rows_added,
                              rows_removed=result.rows_removed)
        if signing_key is not None:
            record.details.update(signer=signing_key.signer, signer_key_id=signing_key.key_id)
    return result


def _seal_file(source: str | Path | Schema, input_path: str | Path, key: OprfKey, output: str | Path, *,
               tax_year: int, purpose: str | None, rejects_path: str | Path | None, encode_input: EncodeInput,
               previous: str | Path | None, signing_key: SigningKey | None, workers: int | None,
               runner: Runner | None = None, key_path: str | Path | None = None) -> SealResult:
    from matchkit.schema import load_schema

    schema = source if isinstance(source, Schema) else load_schema(source)
    if schema.name == "claims":
        raise KeylessError("claims are not sealed: the tax bureau lists them with 'matchkit request'")
    purpose = purpose or schema.purpose
    refusal = key.serves(purpose, tax_year)
    if refusal:
        raise KeylessError(refusal)
    ekey = key.evaluation_key(purpose, tax_year)
    prev_ids: set[bytes] = set()
    chain: list[str] = []
    base_chain: list[str] | None = None
    if previous is not None:
        prev = open_sealed(previous)
        _check_same_table(prev, schema, ekey, purpose, tax_year)
        if prev.manifest.get("table_kind") == "delta":
            raise KeylessError("--previous must be a full or merged table (the whole previous state), not a delta;"
                               " merge the deltas first with 'matchkit seal --merge'", path=prev.path)
        prev_ids, chain, base_chain = set(prev.rows), list(prev.chain), list(prev.chain)
        del prev
    key_ref = None if key_path is None else KeyRef(str(Path(key_path).resolve()), purpose, tax_year)
    seal_id = secrets.token_bytes(16)
    chain.append(seal_id.hex())
    seal_index = len(chain) - 1
    encoded = encode_input(schema, purpose, stream=True)
    chunks = encoded.chunks if encoded.chunks is not None else iter([encoded.table])
    entity_names = [entity.name for entity in schema.entities]
    clear_names = clear_columns(encoded.arrow_schema, schema)
    id_key = ekey.row_id_key
    row_counts, evidence_counts = _Counts(), _Counts()
    z_cache: dict[bytes, bytes] = {}
    latest: set[bytes] = set()
    evaluations = rows_sealed = rows_added = entry_count = 0
    with _Spill(Path(output)) as spill:
        for table in chunks:
            rows_sealed += table.num_rows
            clear_values = {name: table.column(name).to_pylist() for name in clear_names}
            lines = table.column("_line").to_pylist()
            persons = {name: persons_of(table, name) for name in entity_names}

            # stable row ids (a repeated identical row gets its occurrence number, counted over the whole input)
            clear_rows = [{name: _json_value(clear_values[name][position]) for name in clear_names}
                          for position in range(table.num_rows)]
            identities = [_identity(clear_rows[position], [persons[name][position] for name in entity_names])
                          for position in range(table.num_rows)]
            occurrence = row_counts.occurrences([_digest(identity) for identity in identities])
            row_ids = [hmac.new(id_key, identity + b"|" + str(n).encode(), hashlib.sha256).digest()[:ROW_ID_BYTES]
                       for identity, n in zip(identities, occurrence)]
            latest.update(row_ids)
            keep = [i for i, rid in enumerate(row_ids) if rid not in prev_ids]
            rows_added += len(keep)

            # every distinct OPRF input of the chunk's kept rows, evaluated once on every core: its content value
            # z (from the cache when an earlier chunk had it) and the (tag, pad) of each of its occurrences as
            # evidence, numbered on from the occurrences of earlier chunks, derived in the workers
            if len(z_cache) > _Z_CACHE:  # before this chunk's inputs are looked up in it
                z_cache.clear()
            content: dict[bytes, None] = {}
            occurrences: dict[bytes, int] = {}
            for name in entity_names:
                for position in keep:
                    person = persons[name][position]
                    for x in person.content_inputs():
                        content[x] = None
                    for x in person.evidence_inputs():
                        occurrences[x] = occurrences.get(x, 0) + 1
            evidence = list(occurrences)
            first_index = dict(zip(evidence, evidence_counts.add([_digest(x) for x in evidence],
                                                                 list(occurrences.values()))))
            tasks = [(x, first_index.get(x, 0), occurrences.get(x, 0)) for x in
                     dict.fromkeys([*evidence, *(x for x in content if x not in z_cache)])]
            if runner is None or key_ref is None:
                values = seal_values_many(ekey.secret, seal_id, tasks, workers)
            else:  # on the scheduler (--scheduler): each task reads the key from its file
                values = [value for part in runner.map(seal_task, [
                    (key_ref, seal_id, tasks[start:start + TASK_ITEMS]) for start in range(0, len(tasks), TASK_ITEMS)
                ]) for value in part]
            evaluations += len(tasks)
            pads_of: dict[bytes, bytes] = {}
            for (x, _, count), (z, pads) in zip(tasks, values):
                z_cache[x] = z
                if count:
                    pads_of[x] = pads
            del values, tasks

            used: dict[bytes, int] = {}
            for position in keep:
                row_id = row_ids[position]
                row_key = secrets.token_bytes(ROW_KEY_BYTES)
                content_json = {"l": lines[position], "c": clear_rows[position],
                                "p": {name: _person_content(persons[name][position], z_cache)
                                      for name in entity_names}}
                nonce = secrets.token_bytes(NONCE_BYTES)
                blob = nonce + ChaCha20Poly1305(row_key).encrypt(
                    nonce, json.dumps(content_json, separators=(",", ":")).encode("utf-8"),
                    row_ad(schema.name, row_id))
                spill.add_row(row_id, blob)
                for slot, name in enumerate(entity_names):
                    payload = int.from_bytes(row_id + bytes([slot]) + b"\x00\x00\x00" + row_key, "big")
                    for x in persons[name][position].evidence_inputs():
                        index = used.get(x, 0)
                        used[x] = index + 1
                        derived = pads_of[x]
                        pad = int.from_bytes(derived[64 * index + 16:64 * index + 64], "big")
                        spill.add_entry(derived[64 * index:64 * index + 16],
                                        (payload ^ pad).to_bytes(ENTRY_BLOB_BYTES, "big"))
                        entry_count += 1
            del pads_of, used, clear_rows, identities, persons, clear_values
        removed = sorted(rid for rid in prev_ids if rid not in latest)
        del latest, prev_ids

        kind = "delta" if previous is not None else "full"
        manifest = _manifest(schema, ekey, purpose, tax_year, kind, chain, base_chain)
        manifest.update(seal_id=seal_id.hex(), rows=rows_added, entries=entry_count, removed=len(removed), oprf_evaluations=evaluations,
                        rows_in=encoded.rows_in, rows_sealed=rows_sealed, rows_rejected=encoded.rows_rejected,
                        input_name=encoded.input_name, input_format=encoded.input_format,
                        input_encoding=encoded.input_encoding)
        manifest = _write_spilled(output, manifest, spill, seal_index, removed, signing_key)
    return SealResult(Path(output), Path(rejects_path) if rejects_path else None, encoded.rows_in, rows_sealed,
                      encoded.rows_rejected, rows_added, len(removed), entry_count, manifest)


# --- streaming helpers ----------------------------------------------------------------------------------------------
_Z_CACHE = 1 << 20  # content values kept from one chunk to the next (birth dates, weak near tokens, parents repeat)
SPILL_BUCKETS = 16  # by the first 4 bits of a row id or tag: uniform (HMAC outputs), and in sort order


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class _Counts:
    """How often each 16-byte key was counted so far over a stream of chunks, in sorted runs (``S16`` keys, int64
    counts) merged whenever a run is no larger than half the one before it: ~24 bytes per distinct key and no
    Python object per key, whatever the input's size."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: list[bytes], counts: list[int]) -> list[int]:
        """Count distinct ``keys`` ``counts`` times each; returns how often each was counted before."""
        if not keys:
            return []
        array = np.frombuffer(b"".join(keys), dtype="S16")
        amounts = np.asarray(counts, dtype=np.int64)
        before = np.zeros(len(array), dtype=np.int64)
        for run_keys, run_counts in self.runs:
            pos = np.searchsorted(run_keys, array)
            clipped = np.minimum(pos, len(run_keys) - 1)
            hit = (pos < len(run_keys)) & (run_keys[clipped] == array)
            before[hit] += run_counts[clipped[hit]]
        order = np.argsort(array, kind="stable")
        self.runs.append((array[order], amounts[order]))
        while len(self.runs) >= 2 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            newer_keys, newer_counts = self.runs.pop()
            older_keys, older_counts = self.runs.pop()
            merged, inverse = np.unique(np.concatenate([older_keys, newer_keys]), return_inverse=True)
            totals = np.zeros(len(merged), dtype=np.int64)
            np.add.at(totals, inverse.ravel(), np.concatenate([older_counts, newer_counts]))
            self.runs.append((merged, totals))
        return before.tolist()

    def occurrences(self, keys: list[bytes]) -> list[int]:
        """For a chunk of (repeating) keys in order: each one's occurrence number over the whole stream."""
        within: dict[bytes, int] = {}
        rank = []
        for key in keys:
            n = within.get(key, 0)
            within[key] = n + 1
            rank.append(n)
        before = dict(zip(within, self.add(list(within), list(within.values()))))
        return [before[key] + n for key, n in zip(keys, rank)]


class _Spill:
    """Sealed rows and entries as they are made, in temporary files beside the output (``SPILL_BUCKETS`` each, by
    the first bits of the row id or tag), so that memory holds one chunk and, at the end, one bucket. What is
    spilled is what the table holds: encrypted rows and wrapped entries (no row key, no OPRF output)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.folder: Path | None = None
        self.rows: list[Any] = []
        self.entries: list[Any] = []

    def __enter__(self) -> Self:
        import tempfile

        parent = self.output.parent
        if not parent.is_dir():
            raise OutputFileError("cannot write the sealed table: its folder does not exist", path=self.output)
        self.folder = Path(tempfile.mkdtemp(prefix=".matchkit-seal-", dir=parent))
        self.rows = [open(self.folder / f"rows-{b:02d}", "wb") for b in range(SPILL_BUCKETS)]  # noqa: SIM115
        self.entries = [open(self.folder / f"entries-{b:02d}", "wb") for b in range(SPILL_BUCKETS)]  # noqa: SIM115
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        for handle in [*self.rows, *self.entries]:
            handle.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def add_row(self, row_id: bytes, blob: bytes) -> None:
        self.rows[row_id[0] >> 4].write(row_id + len(blob).to_bytes(4, "big") + blob)

    def add_entry(self, tag: bytes, blob: bytes) -> None:
        self.entries[tag[0] >> 4].write(tag + blob)

    def bucket_rows(self, bucket: int) -> list[tuple[bytes, bytes]]:
        """The rows of one bucket, sorted by row id."""
        assert self.folder is not None
        self.rows[bucket].flush()
        data = (self.folder / f"rows-{bucket:02d}").read_bytes()
        out, at = [], 0
        while at < len(data):
            size = int.from_bytes(data[at + ROW_ID_BYTES:at + ROW_ID_BYTES + 4], "big")
            start = at + ROW_ID_BYTES + 4
            out.append((data[at:at + ROW_ID_BYTES], data[start:start + size]))
            at = start + size
        out.sort()
        return out

    def bucket_entries(self, bucket: int, seal_index: int) -> Entries:
        assert self.folder is not None
        self.entries[bucket].flush()
        raw = np.fromfile(self.folder / f"entries-{bucket:02d}", dtype=np.uint8).reshape(-1, 16 + ENTRY_BLOB_BYTES)
        return Entries(raw[:, :16], np.full(len(raw), seal_index, dtype=np.int16), raw[:, 16:]).sorted()


def is_folder_output(output: str | Path) -> bool:
    """``-o DIR/`` (a trailing slash) or an existing folder: a partitioned sealed table."""
    text = str(output)
    return text.endswith(("/", os.sep)) or Path(output).is_dir()


def _write_spilled(output: str | Path, manifest: dict[str, Any], spill: _Spill, seal_index: int,
                   removed: list[bytes], signing_key: SigningKey | None) -> dict[str, Any]:
    """Write the spilled rows (by row id), removals, then entries (by tag), bucket by bucket: the same file as
    :func:`write_sealed` writes from memory — or, for a folder output, one part file per bucket."""
    if is_folder_output(output):
        return _write_partitioned(Path(output), manifest, spill, seal_index, removed, signing_key)
    writer = HashedFileWriter(output, TABLE_SCHEMA, unique=["row_id", "tag", "blob"])
    try:
        for bucket in range(SPILL_BUCKETS):
            _write_rows(writer, [(rid, seal_index, blob) for rid, blob in spill.bucket_rows(bucket)])
        _write_removed(writer, removed)
        for bucket in range(SPILL_BUCKETS):
            _write_entries(writer, spill.bucket_entries(bucket, seal_index))
        return _close_sealed(writer, manifest, signing_key)
    except BaseException:
        writer.abort()
        raise


def _manifest(schema: Schema, ekey: EvaluationKey, purpose: str, tax_year: int, kind: str, chain: list[str],
              base_chain: list[str] | None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": SEALED_FORMAT, "format_version": SEALED_FORMAT_VERSION, "table_kind": kind,
        "source": schema.name, "schema_version": schema.version, "schema_digest": schema.digest,
        "encoding_version": ENCODING_VERSION, "purpose": purpose, "tax_year": tax_year,
        "key_id": ekey.key_id, "key_fingerprint": ekey.fingerprint, "oprf": "RFC9497 OPRF(ristretto255, SHA-512)",
        "aead": "ChaCha20-Poly1305", "chain": chain, "tool_version": __version__, "created": now(),
    }
    if base_chain is not None:
        manifest["base_chain"] = base_chain
    return manifest


@dataclass
class Entries:
    """Entries as arrays: ``tags`` (n, 16) and ``blobs`` (n, 48) uint8, ``seals`` (n,) int16 — no Python object
    per entry (a table has ~20 per person)."""

    tags: np.ndarray
    seals: np.ndarray
    blobs: np.ndarray

    def __len__(self) -> int:
        return len(self.seals)

    def sorted(self) -> Entries:
        order = _tag_order(self.tags)
        return Entries(self.tags[order], self.seals[order], self.blobs[order])


def _write_partitioned(folder: Path, manifest: dict[str, Any], spill: _Spill, seal_index: int,
                       removed: list[bytes], signing_key: SigningKey | None) -> dict[str, Any]:
    """A partitioned table: ``part-NN.parquet`` holds the rows whose id and the entries whose tag start with bucket
    NN's four bits (and its removals), each a complete sealed file with the table's manifest plus its partition
    number. Concatenated in order, the parts hold the rows and entries of the one-file table in the same order."""
    folder.mkdir(exist_ok=True)
    written: list[Path] = []
    body: dict[str, Any] = {}
    try:
        for bucket in range(SPILL_BUCKETS):
            target = folder / f"part-{bucket:02d}.parquet"
            if target.exists():
                raise KeylessError("refusing to overwrite a part of an existing sealed table", path=target)
            writer = HashedFileWriter(target, TABLE_SCHEMA, unique=["row_id", "tag", "blob"])
            try:
                _write_rows(writer, [(rid, seal_index, blob) for rid, blob in spill.bucket_rows(bucket)])
                _write_removed(writer, [rid for rid in removed if rid[0] >> 4 == bucket])
                _write_entries(writer, spill.bucket_entries(bucket, seal_index))
                part_manifest = _close_sealed(writer, {**manifest, "partition": bucket,
                                                       "partitions": SPILL_BUCKETS}, signing_key)
            except BaseException:
                writer.abort()
                raise
            written.append(target)
            body = part_manifest
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return {key: value for key, value in body.items() if key != "partition"}


def write_sealed(output: str | Path, manifest: dict[str, Any], *, rows: list[tuple[bytes, int, bytes]],
                 entries: Entries, removed: list[bytes],
                 signing_key: SigningKey | None = None) -> dict[str, Any]:
    """Write rows (sorted by id), then removals, then entries (sorted by tag); atomic, digested, optionally signed."""
    writer = HashedFileWriter(output, TABLE_SCHEMA, unique=["row_id", "tag", "blob"])
    try:
        _write_rows(writer, rows)
        _write_removed(writer, removed)
        _write_entries(writer, entries.sorted())
        return _close_sealed(writer, manifest, signing_key)
    except BaseException:
        writer.abort()
        raise


def _write_rows(writer: HashedFileWriter, rows: list[tuple[bytes, int, bytes]]) -> None:
    step = 1 << 16
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        writer.write(pa.table({"kind": pa.array([ROW] * len(part), pa.int8()),
                               "row_id": pa.array([r[0] for r in part], pa.binary(ROW_ID_BYTES)),
                               "seal": pa.array([r[1] for r in part], pa.int16()),
                               "tag": pa.nulls(len(part), pa.binary(16)),
                               "blob": pa.array([r[2] for r in part], pa.binary())}, schema=TABLE_SCHEMA))


def _write_removed(writer: HashedFileWriter, removed: list[bytes]) -> None:
    if removed:
        writer.write(pa.table({"kind": pa.array([REMOVED] * len(removed), pa.int8()),
                               "row_id": pa.array(removed, pa.binary(ROW_ID_BYTES)),
                               "seal": pa.nulls(len(removed), pa.int16()),
                               "tag": pa.nulls(len(removed), pa.binary(16)),
                               "blob": pa.nulls(len(removed), pa.binary())}, schema=TABLE_SCHEMA))


def _write_entries(writer: HashedFileWriter, entries: Entries) -> None:
    """Entries already sorted by tag."""
    step = 1 << 20
    for start in range(0, len(entries), step):
        tags = np.ascontiguousarray(entries.tags[start:start + step])
        blobs = np.ascontiguousarray(entries.blobs[start:start + step])
        count = len(tags)
        offsets = (np.arange(count + 1, dtype=np.int32) * ENTRY_BLOB_BYTES)
        writer.write(pa.table({
            "kind": pa.array(np.full(count, ENTRY, dtype=np.int8)),
            "row_id": pa.nulls(count, pa.binary(ROW_ID_BYTES)),
            "seal": pa.array(entries.seals[start:start + step].astype(np.int16)),
            "tag": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), count, [None, pa.py_buffer(tags)]),
            "blob": pa.BinaryArray.from_buffers(pa.binary(), count,
                                                [None, pa.py_buffer(offsets), pa.py_buffer(blobs)]),
        }, schema=TABLE_SCHEMA))


def _close_sealed(writer: HashedFileWriter, manifest: dict[str, Any], signing_key: SigningKey | None
                  ) -> dict[str, Any]:
    return writer.close_artefact(manifest, signing_key=signing_key, meta_key=SEALED_META_KEY)


def _check_same_table(other: SealedTable, schema: Schema, ekey: EvaluationKey, purpose: str, tax_year: int) -> None:
    checks = (("source", schema.name, "source"), ("key_fingerprint", ekey.fingerprint, "agency key"),
              ("purpose", purpose, "purpose"), ("tax_year", tax_year, "tax year"),
              ("schema_digest", schema.digest, "schema"))
    for field_name, expected, label in checks:
        if other.manifest.get(field_name) != expected:
            raise KeylessError(f"was sealed with another {label} ({other.manifest.get(field_name)!r}, this run "
                               f"{expected!r})", path=other.path)


# --- merging --------------------------------------------------------------------------------------------------------
def _entries_of(table: SealedTable) -> Entries:
    tags = np.frombuffer(table.entry_tags.tobytes(), dtype=np.uint8).reshape(-1, 16)
    return Entries(tags, table.entry_seals, table.entry_blobs)


def merge_tables(base: str | Path, deltas: Sequence[str | Path], output: str | Path, *,
                 signing_key: SigningKey | None = None, audit_log: str | Path | None = None) -> dict[str, Any]:
    """Apply deltas to a full (or merged) base, in order; refuse a gap, a reordering, another key or source."""
    with audited(audit_log, "seal-merge") as record:
        for path in [base, *deltas]:
            for part in sealed_parts(path):
                record.add_input(part)
        manifest = _merge_tables(base, deltas, output, signing_key=signing_key)
        record.add_output(output, rows=manifest["rows"])
        record.details.update(key_id=manifest["key_id"], key_fingerprint=manifest["key_fingerprint"],
                              source=manifest["source"], chain_length=len(manifest["chain"]))
    return manifest


def _merge_tables(base: str | Path, deltas: Sequence[str | Path], output: str | Path, *,
                  signing_key: SigningKey | None) -> dict[str, Any]:
    table = open_sealed(base)
    if table.manifest.get("table_kind") == "delta":
        raise KeylessError("the base of a merge must be a full or merged table, not a delta", path=table.path)
    rows = dict(table.rows)
    parts = [_entries_of(table)]
    chain = table.chain
    same = ("source", "key_fingerprint", "purpose", "tax_year", "schema_digest", "encoding_version")
    for path in deltas:
        delta = open_sealed(path)
        if delta.manifest.get("table_kind") != "delta":
            raise KeylessError("is not a delta (made by 'matchkit seal --previous')", path=delta.path)
        for field_name in same:
            if delta.manifest.get(field_name) != table.manifest.get(field_name):
                raise KeylessError(
                    f"has {field_name} {delta.manifest.get(field_name)!r} but the base has "
                    f"{table.manifest.get(field_name)!r}: a delta applies only to its own agency's table of the "
                    "same source", path=delta.path)
        base_chain = delta.manifest.get("base_chain")
        if base_chain != chain:
            if isinstance(base_chain, list) and len(base_chain) > len(chain) and base_chain[:len(chain)] == chain:
                problem = "a delta is missing before it (gap)"
            elif isinstance(base_chain, list) and len(base_chain) < len(chain):
                problem = "it is older than the table it is applied to (reordered or applied twice)"
            else:
                problem = "it was made against another table"
            raise KeylessError(f"does not apply here: {problem}; deltas must be merged in the order they were "
                               "sealed", path=delta.path)
        for rid in delta.removed:
            rows.pop(rid, None)
        rows.update(delta.rows)
        parts.append(_entries_of(delta))
        chain = list(delta.manifest["chain"])
    manifest = dict(table.manifest)
    for drop in ("content_digest", "base_chain", "seal_id", "partition", "partitions"):
        manifest.pop(drop, None)
    entries = Entries(np.concatenate([p.tags for p in parts]), np.concatenate([p.seals for p in parts]),
                      np.concatenate([p.blobs for p in parts]))
    manifest.update(table_kind="merged", chain=chain, rows=len(rows), entries=len(entries), removed=0,
                    created=now(), tool_version=__version__)
    for count in ("rows_in", "rows_sealed", "rows_rejected", "input_name", "input_format", "input_encoding"):
        manifest.pop(count, None)
    row_list = sorted((rid, seal, blob) for rid, (seal, blob) in rows.items())
    return write_sealed(output, manifest, rows=row_list, entries=entries, removed=[], signing_key=signing_key)
