"""The jobs a user runs, as library calls: hash one raw extract; verify hashed claims against hashed extracts.

The CLI commands are thin wrappers over these functions, so everything the CLI does is callable from Python.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matchkit import __version__
from matchkit.audit import audited
from matchkit.encode.link_table import field_spec, term_frequency_spec
from matchkit.encode.parallel import encode_chunks, make_table_encoder
from matchkit.encode.table import RecordIdChecker
from matchkit.encode.tokens import ENCODING_VERSION, Encoder
from matchkit.errors import MatchkitError
from matchkit.io.atomic import check_output_path, partial_file
from matchkit.io.hashed import FILE_FORMAT, FILE_FORMAT_VERSION, HashedFileWriter
from matchkit.io.readers import DEFAULT_CHUNK_ROWS, RawReader
from matchkit.keys import SharedKey
from matchkit.schema import Schema, load_schema
from matchkit.signing import SigningKey, TrustStore, load_trust_dir, verify_file_signature

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class HashResult:
    output: Path
    rejects: Path | None
    rows_in: int
    rows_hashed: int
    rows_rejected: int
    manifest: dict[str, Any]


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
) -> HashResult:
    """Hash one raw extract into a Parquet file with a manifest; write the rejects CSV if a path is given.

    Every row read is accounted for: ``rows_in == rows_hashed + rows_rejected``. Raises ``MatchkitError`` for a
    file, key or schema that cannot be used at all; row-level faults never stop the run. With ``signing_key`` the
    whole output file is signed (``matchkit.signing``); with ``audit_log`` the run appends one line to that log
    (``matchkit.audit``), whether it succeeds or not.
    """
    with audited(audit_log, "hash") as record:
        record.add_input(input_path)
        record.details.update(key_id=key.key_id, key_fingerprint=key.fingerprint,
                              source=source.name if isinstance(source, Schema) else Path(str(source)).name)
        if signing_key is not None:
            record.details.update(signer=signing_key.signer, signer_key_id=signing_key.key_id)
        result = _hash_file(source, input_path, key, output, rejects_path=rejects_path, encoding=encoding,
                            purpose=purpose, chunk_rows=chunk_rows, workers=workers, progress=progress,
                            signing_key=signing_key)
        record.add_output(result.output, rows=result.rows_hashed)
        record.add_output(result.rejects, rows=result.rows_rejected)
        record.details.update(rows_in=result.rows_in, rows_hashed=result.rows_hashed,
                              rows_rejected=result.rows_rejected, purpose=result.manifest["purpose"],
                              encoding_version=result.manifest["encoding_version"])
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
        rejects_writer = _RejectsWriter(Path(rejects_path)) if rejects_path else None
    except BaseException:
        writer.abort()  # no stray .partial output when the rejects file cannot be created
        raise
    rows_in = rows_hashed = rows_rejected = 0
    notes: dict[str, int] = {}
    try:
        for chunk_rows_read, (table, faults, chunk_notes) in encode_chunks(reader, table_encoder, key, purpose or schema.purpose,
                                                              workers):
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
        if rows_in != rows_hashed + rows_rejected:  # pragma: no cover - an internal invariant
            raise MatchkitError("row accounting failed (internal error): please report")
        manifest = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "source": schema.name,
            "schema_version": schema.version,
            "schema_digest": schema.digest,
            "encoding_version": encoder.encoding_version,
            "purpose": encoder.purpose,
            "key_id": key.key_id,
            "key_fingerprint": key.fingerprint,
            "input_name": Path(input_path).name,
            "input_format": reader.format,
            "input_encoding": reader.encoding,
            "rows_in": rows_in,
            "rows_hashed": rows_hashed,
            "rows_rejected": rows_rejected,
            "tool_version": __version__,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        if schema.kind == "link":
            manifest.update(
                kind="link",
                record_id=schema.record_id,
                fields={column.name: field_spec(column) for column in schema.fields},
                blocking={p.name: p.describe() for p in schema.blocking},
                kept_invalid={note.partition(":")[2]: count for note, count in sorted(notes.items())
                              if note.startswith("kept_invalid:")},
            )
            if term_frequency_spec(schema) is not None:  # only when the schema declares it: other manifests unchanged
                manifest["term_frequencies"] = term_frequency_spec(schema)
        if rejects_writer:
            rejects_writer.close()
        manifest = writer.close(manifest, signing_key=signing_key)
    except BaseException:
        writer.abort()
        if rejects_writer:
            rejects_writer.abort()
        raise
    return HashResult(output, Path(rejects_path) if rejects_path else None, rows_in, rows_hashed, rows_rejected,
                      manifest)


class _RejectsWriter:
    """``line,column,reason`` CSV, written to a temp file and renamed into place when complete."""

    def __init__(self, path: Path) -> None:
        fd, temp = partial_file(path, "rejects")
        self.path = path
        self._temp = Path(temp)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle)
        self._csv.writerow(["line", "column", "reason"])

    def write(self, faults: list[tuple[int, str, str]]) -> None:
        self._csv.writerows(faults)

    def close(self) -> None:
        self._handle.close()
        os.replace(self._temp, self.path)

    def abort(self) -> None:
        self._handle.close()
        self._temp.unlink(missing_ok=True)


EXTRACT_SOURCES = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


@dataclass(frozen=True)
class VerifyResult:
    flags: Any  # pandas.DataFrame, one row per claim line
    output: Path | None
    report: Path | None
    inputs: list[dict[str, Any]]
    key_id: str | None = None


def load_hashed_inputs(claims_path: str | Path, extract_paths: list[str | Path], *,
                       lazy_encodings: bool = True) -> tuple[Any, dict[str, Any], list[Any]]:
    """Open and check every hashed file, refuse mixed keys/purposes/encodings, and load what verify reads.

    Returns ``(claims, sources, files)``: the claims as a DataFrame, each extract source as a
    ``matchkit.verify.HashedExtract`` (a DataFrame of the columns the rules read, plus the people's fuzzy
    encodings, read from the files in batches only when the fuzzy linker asks and only for its candidates), or as
    one DataFrame of every column verify may read with ``lazy_encodings=False``. Only the columns verify reads are
    loaded. Token and encoding columns (16-byte tokens, near-token and name lists) stay Arrow-backed
    (``pd.ArrowDtype``, zero-copy from the Parquet read): one Python object per cell would cost more time and
    memory at a million claim lines than the whole verification.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from matchkit.errors import ManifestError
    from matchkit.io.hashed import check_compatible, open_hashed
    from matchkit.verify import HashedExtract
    from matchkit.verify.engine import input_columns
    from matchkit.verify.evidence import ENTITIES
    from matchkit.verify.linking import ENCODING_COLUMNS

    claims_file = open_hashed(claims_path)
    if claims_file.source != "claims":
        raise ManifestError(f"is a hashed '{claims_file.source}' extract, not a claims file", path=claims_path)
    extract_files = [open_hashed(path) for path in extract_paths]
    for extract in extract_files:
        if extract.source == "claims":
            raise ManifestError("is a hashed claims file; give it with --claims, not as an extract",
                                path=extract.path)
        if extract.source not in EXTRACT_SOURCES:
            raise ManifestError(
                f"is a hashed '{extract.source}' file, which verify does not use "
                f"(expects {', '.join(EXTRACT_SOURCES)})", path=extract.path)
    check_compatible([claims_file, *extract_files])

    def load(hashed: Any, lazy: bool) -> tuple[pd.DataFrame, Any]:
        # The handle stays open so that the encodings, read later, come from the same file as the columns read
        # now (not from a file put in its place since).
        handle: Any = open(hashed.path, "rb")  # noqa: SIM115 - closed by _ParquetEncodings or below
        try:
            parquet = pq.ParquetFile(handle)
            wanted = set(input_columns(hashed.source))
            if lazy:
                wanted -= {f"{entity}_{c}" for entity in ENTITIES[hashed.source] for c in ENCODING_COLUMNS}
            table = parquet.read(columns=[c for c in parquet.schema_arrow.names if c in wanted])
            del parquet  # a ParquetFile keeps its read buffers until it goes
        except Exception as exc:  # a damaged file can fail in any decoder
            handle.close()
            raise ManifestError("hashed file cannot be read (corrupt?)", path=hashed.path) from exc
        if not lazy:
            handle.close()
            handle = None
        return table.to_pandas(types_mapper=_verify_types), handle

    claims, _ = load(claims_file, lazy=False)
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for extract in extract_files:
        grouped.setdefault(extract.source, []).append(load(extract, lazy_encodings))
    sources: dict[str, Any] = {}
    for name, loaded in grouped.items():
        frames = [frame for frame, _ in loaded]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        sources[name] = (HashedExtract(frame, _ParquetEncodings([handle for _, handle in loaded]))
                         if lazy_encodings else frame)
    pa.default_memory_pool().release_unused()  # decoding buffers: give them back before verify allocates
    return claims, sources, [claims_file, *extract_files]


def _verify_types(arrow_type: Any) -> Any:
    """pandas dtypes for hashed columns: tokens, lists and dates Arrow-backed; integers and flags nullable."""
    import pandas as pd
    import pyarrow as pa

    if (pa.types.is_fixed_size_binary(arrow_type) or pa.types.is_binary(arrow_type)
            or pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
            or pa.types.is_date32(arrow_type)):
        return pd.ArrowDtype(arrow_type)
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


class _ParquetEncodings:
    """Person encodings of one source's hashed files, read in batches of rows when asked, never all at once
    (``matchkit.verify.linking.PersonEncodings``). Holds the files open; closes them when it goes."""

    BATCH_ROWS = 1 << 19

    def __init__(self, handles: list[Any]) -> None:
        import weakref

        self._handles = handles  # binary file objects, in the order their rows were concatenated
        weakref.finalize(self, _close_all, list(handles))

    def batches(self, columns: Any) -> Any:
        import numpy as np
        import pandas as pd
        import pyarrow.parquet as pq

        for handle in self._handles:
            handle.seek(0)
            parquet = pq.ParquetFile(handle)  # a new reader per pass: a reader keeps its buffers while it lives
            present = [c for c in columns if c in parquet.schema_arrow.names]
            if not present:
                yield pd.DataFrame({c: np.full(parquet.metadata.num_rows, None, dtype=object) for c in columns})
                continue
            for batch in parquet.iter_batches(columns=present, batch_size=self.BATCH_ROWS):
                frame = batch.to_pandas(types_mapper=pd.ArrowDtype)
                for column in columns:
                    if column not in frame.columns:
                        frame[column] = None
                yield frame[list(columns)]
            del parquet


def _close_all(handles: list[Any]) -> None:
    for handle in handles:
        handle.close()


def verify_files(claims_path: str | Path, extract_paths: list[str | Path], output: str | Path | None = None, *,
                 report_path: str | Path | None = None, progress: Callable[[str], None] | None = None,
                 trust: str | Path | TrustStore | None = None, audit_log: str | Path | None = None
                 ) -> VerifyResult:
    """Verify hashed claims against hashed extracts; write flags (CSV or Parquet by extension) and the report.

    With ``trust`` (a folder of trusted ``*.pub`` keys) every input must be signed by one of them and unchanged
    since; with ``audit_log`` the run appends one line to that log, whether it succeeds or not.
    """
    with audited(audit_log, "verify") as record:
        for path in [claims_path, *extract_paths]:
            record.add_input(path)
        result = _verify_files(claims_path, extract_paths, output, report_path=report_path, progress=progress,
                               trust=trust)
        for logged, described in zip(record.inputs, result.inputs):
            logged.update(source=described["source"], rows=described["rows"])
            if "signer" in described:
                logged["signer"] = described["signer"]
        record.add_output(result.output, rows=len(result.flags))
        record.add_output(result.report)
        statuses = result.flags["status"].value_counts() if len(result.flags) else {}
        record.details.update(key_id=result.key_id, claim_lines=len(result.flags),
                              statuses={str(k): int(v) for k, v in dict(statuses).items()},
                              trust=trust is not None)
    return result


def _verify_files(claims_path: str | Path, extract_paths: list[str | Path], output: str | Path | None, *,
                  report_path: str | Path | None, progress: Callable[[str], None] | None,
                  trust: str | Path | TrustStore | None) -> VerifyResult:
    from matchkit.verify import verify_tables

    for target, label in ((output, "flags output"), (report_path, "report")):
        _check_output_path(target, label)  # refuse a bad output path before the long run, not after it
    signers: dict[str, str] = {}
    if trust is not None:
        store = trust if isinstance(trust, TrustStore) else load_trust_dir(trust)
        for path in [claims_path, *extract_paths]:
            info = verify_file_signature(path, store)
            signers[str(path)] = f"{info.signer} ({info.key_id})"
    claims, sources, files = load_hashed_inputs(claims_path, extract_paths)
    flags = verify_tables(claims, sources, progress=progress)
    inputs = [{"name": f.path.name, "source": f.source, "rows": f.manifest.get("rows_hashed")} for f in files]
    for described, path in zip(inputs, [claims_path, *extract_paths]):
        if str(path) in signers:
            described["signer"] = signers[str(path)]
    out_path = Path(output) if output else None
    if out_path:
        write_flags(flags, out_path)
    report = Path(report_path) if report_path else None
    if report:
        from matchkit.report.html import write_report

        write_report(flags, report, meta={
            "tool_version": __version__,
            "key_id": files[0].manifest.get("key_id"),
            "encoding_version": files[0].manifest.get("encoding_version"),
            "purpose": files[0].manifest.get("purpose"),
            "inputs": inputs,
        })
    return VerifyResult(flags, out_path, report, inputs, key_id=files[0].manifest.get("key_id"))


def _check_output_path(path: str | Path | None, label: str) -> None:
    if path is None:
        return
    target = Path(path)
    check_output_path(target, label)
    if label == "flags output" and target.suffix.lower() not in (".csv", ".parquet"):
        raise MatchkitError("flags output must end in .csv or .parquet", path=target)


def write_flags(flags: Any, path: Path) -> None:
    """Flags as CSV (UTF-8 with BOM so Excel shows it right) or Parquet, chosen by extension; atomic."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise MatchkitError("flags output must end in .csv or .parquet", path=path)
    fd, temp_path = partial_file(path, "flags output")
    temp = str(temp_path)
    os.close(fd)
    try:
        if suffix == ".csv":
            flags.to_csv(temp, index=False, encoding="utf-8-sig", float_format="%.2f")
        else:
            flags.to_parquet(temp, index=False)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
