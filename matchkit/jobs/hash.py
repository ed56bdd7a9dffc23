"""The hash job: one raw extract in, one hashed file (and its rejects) out, every row accounted for."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from matchkit import __version__, settings
from matchkit.encode.person import ENCODING_VERSION, Encoder
from matchkit.encode.person_table import RecordIdChecker
from matchkit.errors import EmptyInputError, MatchkitError
from matchkit.io.atomic import AtomicFile, remove_published
from matchkit.io.hashed.dataset import is_dataset_path
from matchkit.io.hashed.format import BlockingSpec, FieldSpec, LinkageLayout, Manifest, TermFrequencySpec
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.io.readers import DEFAULT_CHUNK_ROWS, RawReader
from matchkit.jobs.encoding import encode_chunks, make_table_encoder
from matchkit.runtime.cluster import Scheduler
from matchkit.schema import Column, Schema, load_schema
from matchkit.security.audit import audited
from matchkit.security.keys import SharedKey
from matchkit.security.signing import SigningKey

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class HashResult:
    output: Path
    rejects: Path | None
    rows_in: int
    rows_hashed: int
    rows_rejected: int
    manifest: Manifest
    parts: int | None = None  # a partitioned dataset's part count (None: a single file)


def hash_file(
    source: str | Path | Schema,
    input_path: str | Path,
    key: SharedKey,
    output: str | Path,
    *,
    rejects_path: str | Path | None = None,
    encoding: str = "auto",
    purpose: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    signing_key: SigningKey | None = None,
    audit_log: str | Path | None = None,
    allow_empty: bool = False,
    scheduler: str | Scheduler | None = None,
    partitions: int | None = None,
) -> HashResult:
    """Hash one raw extract into a Parquet file with a manifest; write the rejects CSV if a path is given.

    Every row read is accounted for: ``rows_in == rows_hashed + rows_rejected``. Raises ``MatchkitError`` for a
    file, key or schema that cannot be used at all; row-level faults never stop the run. With ``signing_key`` the
    whole output file is signed (``matchkit.security.signing``); with ``audit_log`` the run appends one line to that log
    (``matchkit.security.audit``), whether it succeeds or not; left out (None), ``MATCHKIT_AUDIT_LOG`` names it
    (:mod:`matchkit.settings`), as for the ``hash`` command. An input with no data rows (a header only, an empty
    sheet or Parquet file) raises ``EmptyInputError`` and writes nothing, unless ``allow_empty`` (then an empty
    hashed file).

    An ``output`` written with a trailing ``/`` (or a directory holding a dataset already) receives a
    partitioned dataset (:mod:`matchkit.jobs.hash_dataset`, about ``partitions`` parts); ``scheduler``
    (:mod:`matchkit.runtime.cluster`) hashes its parts on Dask workers, which read the key from ``key.path``.
    """
    audit_log = audit_log if audit_log is not None else settings.audit_log()
    with audited(audit_log, "hash") as record:
        record.add_input(input_path)
        record.details.update(key_id=key.key_id, key_fingerprint=key.fingerprint,
                              source=source.name if isinstance(source, Schema) else Path(str(source)).name)
        if signing_key is not None:
            record.details.update(signer=signing_key.signer, signer_key_id=signing_key.key_id)
        if is_dataset_path(output):
            from matchkit.jobs.hash_dataset import hash_to_dataset

            written = hash_to_dataset(source, input_path, key, output, rejects_path=rejects_path,
                                      encoding=encoding, purpose=purpose, chunk_rows=chunk_rows, workers=workers,
                                      progress=progress, signing_key=signing_key, allow_empty=allow_empty,
                                      scheduler=scheduler, partitions=partitions)
            result = HashResult(written.output, written.rejects, written.rows_in, written.rows_hashed,
                                written.rows_rejected, written.manifest, written.parts)
            record.details.update(parts=written.parts)
        else:
            if scheduler is not None or partitions is not None:
                raise MatchkitError("--scheduler and --partitions write a partitioned dataset: give -o a directory "
                                    "(a path ending in /)", path=output)
            result = _hash_file(source, input_path, key, output, rejects_path=rejects_path, encoding=encoding,
                                purpose=purpose, chunk_rows=chunk_rows, workers=workers, progress=progress,
                                signing_key=signing_key, allow_empty=allow_empty)
        record.add_output(result.output, rows=result.rows_hashed)
        record.add_output(result.rejects, rows=result.rows_rejected)
        record.details.update(rows_in=result.rows_in, rows_hashed=result.rows_hashed,
                              rows_rejected=result.rows_rejected, purpose=result.manifest.purpose,
                              encoding_version=result.manifest.encoding_version)
    return result


def _hash_file(
    source: str | Path | Schema,
    input_path: str | Path,
    key: SharedKey,
    output: str | Path,
    *,
    rejects_path: str | Path | None,
    encoding: str,
    purpose: str | None,
    chunk_rows: int,
    workers: int | None,
    progress: ProgressCallback | None,
    signing_key: SigningKey | None,
    allow_empty: bool,
) -> HashResult:
    schema = source if isinstance(source, Schema) else load_schema(source)
    output = Path(output)
    reader = RawReader(input_path, schema, encoding=encoding, chunk_rows=chunk_rows)
    encoder = Encoder(key, purpose or schema.purpose, ENCODING_VERSION)
    table_encoder = make_table_encoder(schema, encoder)
    record_ids = RecordIdChecker(schema.record_id)
    writer = HashedFileWriter(output, table_encoder.arrow_schema,
                              unique=[schema.record_id] if schema.kind == "link" and schema.record_id else [])
    try:
        rejects_writer = RejectsWriter(Path(rejects_path)) if rejects_path else None
    except BaseException:
        writer.abort()  # no stray .partial output when the rejects file cannot be created
        raise
    rows_in = rows_hashed = rows_rejected = 0
    notes: dict[str, int] = {}
    try:
        # closing(): a failed write or an interrupt stops the workers at once, not when the generator is collected
        with contextlib.closing(encode_chunks(reader, table_encoder, key, purpose or schema.purpose,
                                              workers)) as encoded:
            for chunk_rows_read, (table, faults, chunk_notes) in encoded:
                for note, count in chunk_notes.items():
                    notes[note] = notes.get(note, 0) + count
                table, repeats = record_ids.check(table)
                all_faults = sorted(faults + repeats)
                writer.write(table)
                rows_in += chunk_rows_read
                rows_hashed += table.num_rows
                rows_rejected += len(all_faults)
                if rejects_writer:
                    rejects_writer.write(all_faults)
                if progress:
                    progress(chunk_rows_read)
        if rows_in == 0 and not allow_empty:
            raise EmptyInputError("no data rows (only a header, or an empty sheet or table): refused, as an empty "
                                  "extract is usually a failed export; pass --allow-empty if it is expected",
                                  path=input_path)
        if rows_in != rows_hashed + rows_rejected:  # pragma: no cover - an internal invariant
            raise MatchkitError("row accounting failed (internal error): please report")
        manifest = build_manifest(schema, encoder, key, input_path, reader, rows_in, rows_hashed, rows_rejected,
                                  notes, datetime.now(UTC).replace(microsecond=0).isoformat())
        if rejects_writer:
            rejects_writer.finish()  # on disk, published only after the hashed file: a failed run leaves neither
        manifest = writer.close(manifest, signing_key=signing_key)
        if rejects_writer:
            try:
                rejects_writer.publish()
            except BaseException:
                remove_published(output)
                raise
    except BaseException:
        writer.abort()
        if rejects_writer:
            rejects_writer.abort()
        raise
    return HashResult(output, Path(rejects_path) if rejects_path else None, rows_in, rows_hashed, rows_rejected,
                      manifest)


def build_manifest(schema: Schema, encoder: Encoder, key: SharedKey, input_path: str | Path, reader: RawReader,
                   rows_in: int, rows_hashed: int, rows_rejected: int, notes: dict[str, int], created: str
                   ) -> Manifest:
    """The manifest of a hashed file, or of one part of a dataset (its own counts and notes) or of the whole."""
    linkage = None
    if schema.kind == "link":
        linkage = LinkageLayout(
            record_id=schema.record_id,
            fields={column.name: field_spec(column) for column in schema.fields},
            blocking={p.name: BlockingSpec(p.parts) for p in schema.blocking},
            kept_invalid={note.partition(":")[2]: count for note, count in sorted(notes.items())
                          if note.startswith("kept_invalid:")},
            term_frequencies=term_frequency_spec(schema),
        )
    return Manifest(
        source=schema.name,
        schema_version=schema.version,
        schema_digest=schema.digest,
        encoding_version=encoder.encoding_version,
        purpose=encoder.purpose,
        key_id=key.key_id,
        key_fingerprint=key.fingerprint,
        input_name=Path(input_path).name,
        input_format=reader.format,
        input_encoding=reader.encoding,
        rows_in=rows_in,
        rows_hashed=rows_hashed,
        rows_rejected=rows_rejected,
        tool_version=__version__,
        created=created,
        linkage=linkage,
    )


class RejectsWriter:
    """``line,column,reason`` CSV, published atomically when complete (after the hashed file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = AtomicFile(path, "rejects", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file.handle)
        try:
            with self._file.writing():
                self._csv.writerow(["line", "column", "reason"])
        except BaseException:
            self._file.abort()
            raise

    def write(self, faults: list[tuple[int, str, str]]) -> None:
        with self._file.writing():
            self._csv.writerows(faults)

    def finish(self) -> None:
        self._file.finish()

    def publish(self) -> None:
        self._file.publish()

    def abort(self) -> None:
        self._file.abort()


def field_spec(column: Column) -> FieldSpec:
    """What two linkage files must agree on for a field to be compared (recorded in the manifest)."""
    if "bloom" in column.encodings:
        return FieldSpec(column.type, column.encodings, column.bloom_bits, column.bloom_k, column.salt)
    return FieldSpec(column.type, column.encodings)


def term_frequency_spec(schema: Schema) -> TermFrequencySpec | None:
    """What a linkage schema declares about term-frequency adjustment (``tf`` on a field, ``[[tf_group]]``), for
    the manifest; None when it declares nothing (then ``matchkit link`` adjusts names and texts by default)."""
    explicit = {column.name: column.tf for column in schema.fields if column.tf is not None}
    groups = {group.name: tuple(group.fields) for group in schema.tf_groups}
    if not explicit and not groups:
        return None
    return TermFrequencySpec(fields=explicit, groups=groups)
