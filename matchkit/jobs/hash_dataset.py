"""The hash job writing a partitioned dataset (``matchkit hash ... -o OUT_DIR/``), here or on Dask workers.

Parts are cut from the *input*, never from worker timing, so every run of one input writes the same parts: a CSV is
read in blocks of whole lines of a fixed size (``RawReader.block_bytes``), an XLSX or Parquet input in chunks of
``chunk_rows`` rows, and each part holds ``units_per_part`` consecutive blocks or chunks (the last one fewer). The
parts are written as the hashing goes (each block's rows are written as a row group of its part, so memory stays
bounded by a few blocks), then the index (:mod:`matchkit.io.hashed.dataset`), then the directory is published.

- In this process (no ``--scheduler``): the worker pool of :func:`matchkit.jobs.encoding.encode_chunks` encodes the
  blocks, this process writes them into the current part and starts the next part every ``units_per_part`` blocks.
- On Dask (``--scheduler``): one task per part (:func:`hash_part`). A task's argument holds paths, byte ranges of
  the input with their SHA-256 (a block that changed since it was planned is refused) and public facts (key id and
  fingerprint, purpose): never the key, never a value from the data. The task reads the key file itself (workers
  see the same paths), encodes its blocks in order with the same code as the pool and writes its part and its
  rejects into the run's temp directory. The parts are byte for byte those of the in-process run.

A linkage schema's record ids must be unique across the whole input (a repeat is a ``duplicate_record_id``
reject). Each task refuses repeats inside its part; the parent then reads the record-id column of the parts in
order and runs again, with the lines to reject, any part that repeats an id of an earlier part — which gives the
rows, parts and rejects of the in-process run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matchkit.encode.person import ENCODING_VERSION, Encoder
from matchkit.encode.person_table import RecordIdChecker
from matchkit.errors import EmptyInputError, InputFileError, KeyFileError, MatchkitError
from matchkit.io.hashed.dataset import DatasetWriter, PartEntry, file_digest_of, part_name
from matchkit.io.hashed.format import LINE_COLUMN, Manifest
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.io.readers import CsvBlock, CsvLayout, RawReader, safe_cut
from matchkit.jobs.encoding import AnyTableEncoder, Unit, encode_chunks, encode_unit, make_table_encoder
from matchkit.jobs.hash import ProgressCallback, RejectsWriter, build_manifest
from matchkit.runtime.cluster import INLINE, Scheduler, open_runner, parse_scheduler
from matchkit.schema import Schema, load_schema
from matchkit.security.keys import SharedKey, load_key
from matchkit.security.signing import SigningKey, load_signing_key

DATASET_BLOCK_BYTES = 1 << 22  # a CSV block of a dataset run: 4 MiB of whole lines
DATASET_PART_ROWS = 1_000_000  # about this many input rows per part, by default
UNITS_WITH_PARTITIONS = 4  # blocks per part when --partitions N sets the size: enough to keep a pool busy
MIN_BLOCK_BYTES = 256
Faults = list[tuple[int, str, str]]
PartManifest = Callable[[int, int, int, dict[str, int]], Manifest]


def plan_units(reader: RawReader, partitions: int | None) -> int:
    """Fix the reader's block (CSV) or chunk (other formats) size for a dataset run; return blocks per part.

    Without ``partitions``: 4 MiB CSV blocks, 16 to a part (about 64 MiB of CSV), or chunks of ``chunk_rows`` rows,
    about a million rows to a part. With ``partitions``: about that many parts of four blocks each (an XLSX,
    whose row count is not known before it is read, keeps the default)."""
    if partitions is None:
        if reader.format == "csv":
            reader.block_bytes = DATASET_BLOCK_BYTES
            return 16
        return max(1, DATASET_PART_ROWS // reader.chunk_rows)
    units = partitions * UNITS_WITH_PARTITIONS
    if reader.format == "csv":
        reader.block_bytes = max(MIN_BLOCK_BYTES, math.ceil(reader.path.stat().st_size / units))
        return UNITS_WITH_PARTITIONS
    if reader.format == "parquet":
        try:
            rows = pq.read_metadata(reader.path).num_rows
        except Exception as exc:  # a damaged footer can fail in any decoder
            raise InputFileError("not a readable Parquet file (corrupt or truncated)", path=reader.path) from exc
        reader.chunk_rows = max(1, math.ceil(rows / units))
        return UNITS_WITH_PARTITIONS
    return max(1, DATASET_PART_ROWS // reader.chunk_rows)


# ---- one part ---------------------------------------------------------------------------------------------------
class _Part:
    """One part being written: its rows, counts and notes; closed into a complete hashed file."""

    def __init__(self, path: Path, table_encoder: AnyTableEncoder, schema: Schema,
                 record_ids: RecordIdChecker | None = None) -> None:
        self.path = path
        unique = [schema.record_id] if schema.kind == "link" and schema.record_id else []
        self.writer = HashedFileWriter(path, table_encoder.arrow_schema, unique=unique)
        self.record_ids = record_ids or RecordIdChecker(schema.record_id)
        self.rows_in = self.rows_hashed = self.rows_rejected = 0
        self.notes: dict[str, int] = {}

    def add(self, rows_read: int, table: pa.Table, faults: Faults, notes: dict[str, int],
            exclude: frozenset[int] = frozenset()) -> Faults:
        """Write one block's rows (repeated record ids and the ``exclude`` lines rejected); its sorted faults."""
        for note, count in notes.items():
            self.notes[note] = self.notes.get(note, 0) + count
        table, repeats = self.record_ids.check(table)
        if exclude and table.num_rows:
            lines = table.column(LINE_COLUMN)
            dropped = pc.is_in(lines, value_set=pa.array(sorted(exclude), lines.type)).to_numpy(zero_copy_only=False)
            if dropped.any():
                assert self.record_ids.column is not None
                repeats = repeats + [(line, self.record_ids.column, "duplicate_record_id")
                                     for line in lines.to_numpy()[dropped].tolist()]
                table = table.filter(pa.array(~dropped))
        all_faults = sorted(faults + repeats)
        self.writer.write(table)
        self.rows_in += rows_read
        self.rows_hashed += table.num_rows
        self.rows_rejected += len(all_faults)
        return all_faults

    def close(self, part_manifest: PartManifest, signing_key: SigningKey | None) -> PartEntry:
        manifest = part_manifest(self.rows_in, self.rows_hashed, self.rows_rejected, self.notes)
        if self.rows_in != self.rows_hashed + self.rows_rejected:  # pragma: no cover - an internal invariant
            raise MatchkitError("row accounting failed (internal error): please report")
        self.writer.close(manifest, signing_key=signing_key)
        return PartEntry(self.path.name, file_digest_of(self.path), self.rows_in, self.rows_hashed,
                         self.rows_rejected)

    def abort(self) -> None:
        self.writer.abort()


@dataclass
class _Totals:
    entries: list[PartEntry] = field(default_factory=list)
    notes: list[dict[str, int]] = field(default_factory=list)  # per part

    def add(self, entry: PartEntry, notes: dict[str, int]) -> None:
        self.entries.append(entry)
        self.notes.append(notes)

    def count(self, name: str) -> int:
        return sum(getattr(entry, name) for entry in self.entries)

    def all_notes(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for notes in self.notes:
            for note, count in notes.items():
                merged[note] = merged.get(note, 0) + count
        return merged


# ---- the job ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HashDatasetResult:
    output: Path
    rejects: Path | None
    rows_in: int
    rows_hashed: int
    rows_rejected: int
    manifest: Manifest
    parts: int
    digest: str


def hash_to_dataset(source: str | Path | Schema, input_path: str | Path, key: SharedKey, output: str | Path, *,
                    rejects_path: str | Path | None, encoding: str, purpose: str | None, chunk_rows: int,
                    workers: int | None, progress: ProgressCallback | None, signing_key: SigningKey | None,
                    allow_empty: bool, scheduler: str | Scheduler | None, partitions: int | None
                    ) -> HashDatasetResult:
    """Hash one raw extract into a partitioned dataset at ``output`` (see the module docstring)."""
    chosen = parse_scheduler(scheduler)
    schema = source if isinstance(source, Schema) else load_schema(source)
    reader = RawReader(input_path, schema, encoding=encoding, chunk_rows=chunk_rows)
    units_per_part = plan_units(reader, partitions)
    encoder = Encoder(key, purpose or schema.purpose, ENCODING_VERSION)
    table_encoder = make_table_encoder(schema, encoder)
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    dataset = DatasetWriter(output)
    rejects: RejectsWriter | None = None
    try:
        rejects = RejectsWriter(Path(rejects_path)) if rejects_path else None

        def part_manifest(rows_in: int, rows_hashed: int, rows_rejected: int, notes: dict[str, int]) -> Manifest:
            return build_manifest(schema, encoder, key, input_path, reader, rows_in, rows_hashed, rows_rejected,
                                  notes, created)

        if chosen == INLINE:
            totals = _hash_here(reader, table_encoder, key, dataset, units_per_part, workers, rejects, progress,
                                part_manifest, signing_key)
        else:
            totals = _hash_on_scheduler(chosen, reader, schema, key, dataset, units_per_part, workers, rejects,
                                        progress, encoder.purpose, created, signing_key)
        rows_in, rows_hashed, rows_rejected = (totals.count(n) for n in ("rows_in", "rows_hashed", "rows_rejected"))
        if rows_in == 0 and not allow_empty:
            raise EmptyInputError("no data rows (only a header, or an empty sheet or table): refused, as an empty "
                                  "extract is usually a failed export; pass --allow-empty if it is expected",
                                  path=input_path)
        manifest = part_manifest(rows_in, rows_hashed, rows_rejected, totals.all_notes())
        if rejects:
            rejects.finish()  # on disk, published only after the dataset: a failed run leaves neither
        digest = dataset.publish(manifest, totals.entries, signing_key=signing_key)
        if rejects:
            try:
                rejects.publish()
            except BaseException:
                shutil.rmtree(dataset.path, ignore_errors=True)  # a failed run leaves none of its outputs
                raise
    except BaseException:
        dataset.abort()
        if rejects:
            rejects.abort()
        raise
    return HashDatasetResult(dataset.path, Path(rejects_path) if rejects_path else None, rows_in, rows_hashed,
                             rows_rejected, manifest, len(totals.entries), digest)


def _hash_here(reader: RawReader, table_encoder: AnyTableEncoder, key: SharedKey, dataset: DatasetWriter,
               units_per_part: int, workers: int | None, rejects: RejectsWriter | None,
               progress: ProgressCallback | None, part_manifest: PartManifest, signing_key: SigningKey | None
               ) -> _Totals:
    """The in-process pool encodes the blocks; this process writes them into the parts, a part every
    ``units_per_part`` blocks."""
    schema = table_encoder.schema
    totals = _Totals()
    seen_ids = RecordIdChecker(schema.record_id)  # across parts, as in a single-file run
    part = _Part(dataset.part_path(0), table_encoder, schema, seen_ids)
    try:
        with contextlib.closing(encode_chunks(reader, table_encoder, key, table_encoder.encoder.purpose,
                                              workers)) as encoded:
            for number, (rows_read, (table, faults, notes)) in enumerate(encoded):
                if number and number % units_per_part == 0:
                    totals.add(part.close(part_manifest, signing_key), part.notes)
                    part = _Part(dataset.part_path(len(totals.entries)), table_encoder, schema, seen_ids)
                all_faults = part.add(rows_read, table, faults, notes)
                if rejects is not None:
                    rejects.write(all_faults)
                if progress:
                    progress(rows_read)
        totals.add(part.close(part_manifest, signing_key), part.notes)
    except BaseException:
        part.abort()
        raise
    return totals


# ---- on a scheduler -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartTask:
    """Everything a Dask task needs to hash one part: paths and public facts only (never the key itself)."""

    number: int
    folder: str
    schema: Schema
    input_path: str
    encoding: str
    chunk_rows: int
    block_bytes: int | None
    layout: CsvLayout | None
    spans: tuple[tuple[int, int, int, str], ...]  # CSV: (offset, length, first line, SHA-256 hex) per block
    first_unit: int  # other formats: the chunks [first_unit, first_unit + unit_count) of RawReader.chunks()
    unit_count: int
    key_path: str
    key_fingerprint: str
    purpose: str
    sign_path: str | None
    created: str
    rejects: bool
    exclude_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class PartResult:
    entry: PartEntry
    notes: dict[str, int]


def rejects_name(number: int) -> str:
    return f".rejects-{number:05d}.csv"  # dot-prefixed: never taken for a part; removed before publishing


def hash_part(task: PartTask) -> PartResult:
    """A Dask task: hash one part of the input into ``task.folder`` (the part and, if asked, its rejects)."""
    key = load_key(task.key_path)
    if key.fingerprint != task.key_fingerprint:
        raise KeyFileError("key file changed during the run (its fingerprint differs on a worker)",
                           path=task.key_path)
    signing_key = load_signing_key(task.sign_path) if task.sign_path else None
    reader = RawReader(task.input_path, task.schema, encoding=task.encoding, chunk_rows=task.chunk_rows)
    reader.block_bytes = task.block_bytes
    table_encoder = make_table_encoder(task.schema, Encoder(key, task.purpose, ENCODING_VERSION))
    folder = Path(task.folder)
    part = _Part(folder / part_name(task.number), table_encoder, task.schema)
    exclude = frozenset(task.exclude_lines)
    try:
        with contextlib.ExitStack() as stack:
            writer = None
            if task.rejects:
                handle = stack.enter_context(open(folder / rejects_name(task.number), "w", encoding="utf-8",
                                                  newline=""))
                writer = csv.writer(handle)
            for unit in _task_units(task, reader):
                rows_read, (table, faults, notes) = encode_unit(table_encoder, task.layout, unit)
                all_faults = part.add(rows_read, table, faults, notes, exclude)
                if writer is not None:
                    writer.writerows(all_faults)
        def part_manifest(rows_in: int, rows_hashed: int, rows_rejected: int, notes: dict[str, int]) -> Manifest:
            return build_manifest(task.schema, table_encoder.encoder, key, task.input_path, reader, rows_in,
                                  rows_hashed, rows_rejected, notes, task.created)

        entry = part.close(part_manifest, signing_key)
    except BaseException:
        part.abort()
        raise
    return PartResult(entry, part.notes)


def _task_units(task: PartTask, reader: RawReader) -> Iterator[Unit]:
    if task.layout is not None:
        with open(task.input_path, "rb") as handle:
            for offset, length, first_line, digest in task.spans:
                handle.seek(offset)
                data = handle.read(length)
                if len(data) != length or hashlib.sha256(data).hexdigest() != digest:
                    raise InputFileError("input changed while it was being hashed: hash it again",
                                         path=task.input_path)
                yield CsvBlock(data, first_line)
        return
    for number, chunk in enumerate(reader.chunks()):
        if number >= task.first_unit + task.unit_count:
            return
        if number >= task.first_unit:
            yield chunk


def _csv_spans(reader: RawReader) -> list[tuple[int, int, int, str]]:
    """Where each block of ``reader.csv_blocks()`` lies in the file, with its line number and SHA-256."""
    with open(reader.path, "rb") as handle:
        buffer = b""
        while True:
            data = handle.read(1 << 20)
            buffer += data
            cut = safe_cut(buffer, first=True)
            if cut >= 0 or not data:
                offset = cut + 1 if cut >= 0 else len(buffer)
                break
    spans = []
    for block in reader.csv_blocks():
        spans.append((offset, len(block.data), block.first_line, hashlib.sha256(block.data).hexdigest()))
        offset += len(block.data)
    return spans


def _hash_on_scheduler(scheduler: Scheduler, reader: RawReader, schema: Schema, key: SharedKey,
                       dataset: DatasetWriter, units_per_part: int, workers: int | None,
                       rejects: RejectsWriter | None, progress: ProgressCallback | None, purpose: str, created: str, signing_key: SigningKey | None) -> _Totals:
    if key.path is None:
        raise KeyFileError("hashing on a scheduler needs the key from a key file (its workers read it there)")
    layout = reader.csv_layout() if reader.format == "csv" else None
    base = PartTask(
        number=0, folder=str(dataset.folder.resolve()), schema=schema, input_path=str(reader.path.resolve()),
        encoding=reader.encoding or "auto", chunk_rows=reader.chunk_rows, block_bytes=reader.block_bytes,
        layout=layout, spans=(), first_unit=0, unit_count=0, key_path=str(Path(key.path).resolve()),
        key_fingerprint=key.fingerprint, purpose=purpose,
        sign_path=str(Path(signing_key.path).resolve()) if signing_key is not None and signing_key.path else None,
        created=created, rejects=rejects is not None)
    if signing_key is not None and base.sign_path is None:
        raise KeyFileError("signing on a scheduler needs the signing key from a key file (its workers read it)")
    expected_rows: int | None = None
    if layout is not None:
        spans = _csv_spans(reader)
        groups = [spans[i:i + units_per_part] for i in range(0, len(spans), units_per_part)] or [[]]
        tasks = [replace(base, number=n, spans=tuple(group)) for n, group in enumerate(groups)]
    else:
        expected_rows = _parquet_rows(reader)
        if expected_rows is not None:  # Parquet batches are exactly chunk_rows rows, across row groups
            units = math.ceil(expected_rows / reader.chunk_rows)
        else:
            units = sum(1 for _ in reader.chunks())  # an XLSX: read once to count the chunks (no encoding)
        starts = list(range(0, units, units_per_part)) or [0]
        tasks = [replace(base, number=n, first_unit=start, unit_count=units_per_part)
                 for n, start in enumerate(starts)]
    with open_runner(scheduler, workers=workers) as runner:
        results = []
        for result in runner.imap(hash_part, tasks):
            results.append(result)
            if progress:
                progress(result.entry.rows_in)
        if schema.kind == "link" and schema.record_id and len(results) > 1:
            reruns = _repeated_across_parts(dataset.folder, schema.record_id, results)
            if reruns:
                redone = runner.map(hash_part, [replace(tasks[n], exclude_lines=lines) for n, lines in reruns])
                for (number, _), result in zip(reruns, redone):
                    results[number] = result
    totals = _Totals()
    for number, result in enumerate(results):
        totals.add(result.entry, result.notes)
        if rejects is not None:
            _append_rejects(dataset.folder / rejects_name(number), rejects)
    if layout is None and expected_rows is not None and totals.count("rows_in") != expected_rows:
        raise MatchkitError("a Parquet input was not read whole across the parts (internal error): please report",
                            path=reader.path)
    return totals


def _parquet_rows(reader: RawReader) -> int | None:
    if reader.format != "parquet":
        return None
    try:
        return int(pq.read_metadata(reader.path).num_rows)
    except Exception as exc:  # a damaged footer can fail in any decoder
        raise InputFileError("not a readable Parquet file (corrupt or truncated)", path=reader.path) from exc


def _repeated_across_parts(folder: Path, column: str, results: list[PartResult]
                           ) -> list[tuple[int, tuple[int, ...]]]:
    """Per part, the lines whose record id an earlier part already holds (each part is free of repeats itself)."""
    seen: set[object] = set()
    reruns = []
    for number, result in enumerate(results):
        parquet = pq.ParquetFile(folder / result.entry.name)
        repeated: list[int] = []
        kept: list[object] = []
        for batch in parquet.iter_batches(columns=[column, LINE_COLUMN]):
            ids = batch.column(0).to_pylist()
            lines = batch.column(1).to_numpy()
            hit = np.fromiter((value in seen for value in ids), dtype=bool, count=len(ids))
            repeated.extend(lines[hit].tolist())
            kept.extend(value for value, dup in zip(ids, hit.tolist()) if not dup)
        seen.update(kept)
        if repeated:
            reruns.append((number, tuple(repeated)))
    return reruns


def _append_rejects(path: Path, rejects: RejectsWriter) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        batch: Faults = []
        for line, column, reason in csv.reader(handle):
            batch.append((int(line), column, reason))
            if len(batch) >= 65536:
                rejects.write(batch)
                batch = []
        rejects.write(batch)
    path.unlink()
