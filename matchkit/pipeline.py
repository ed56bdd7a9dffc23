"""The jobs a user runs, as library calls: hash one raw extract; verify hashed claims against hashed extracts.

The CLI commands are thin wrappers over these functions, so everything the CLI does is callable from Python.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from matchkit import __version__
from matchkit.encode.table import TableEncoder
from matchkit.encode.tokens import ENCODING_VERSION, Encoder
from matchkit.errors import MatchkitError
from matchkit.io.hashed import FILE_FORMAT, FILE_FORMAT_VERSION, HashedFileWriter
from matchkit.io.readers import DEFAULT_CHUNK_ROWS, RawReader
from matchkit.keys import SharedKey
from matchkit.schema import Schema, load_schema

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
    progress: ProgressCallback | None = None,
) -> HashResult:
    """Hash one raw extract into a Parquet file with a manifest; write the rejects CSV if a path is given.

    Every row read is accounted for: ``rows_in == rows_hashed + rows_rejected``. Raises ``MatchkitError`` for a
    file, key or schema that cannot be used at all; row-level faults never stop the run.
    """
    schema = source if isinstance(source, Schema) else load_schema(source)
    output = Path(output)
    reader = RawReader(input_path, schema, encoding=encoding, chunk_rows=chunk_rows)
    encoder = Encoder(key, purpose or schema.purpose, ENCODING_VERSION)
    table_encoder = TableEncoder(schema, encoder)
    writer = HashedFileWriter(output, table_encoder.arrow_schema)
    rejects_writer = _RejectsWriter(Path(rejects_path)) if rejects_path else None
    rows_in = rows_hashed = rows_rejected = 0
    try:
        for chunk in reader.chunks():
            table, faults = table_encoder.encode(chunk)
            all_faults = sorted(chunk.rejects + faults)
            writer.write(table)
            rows_in += len(chunk) + len(chunk.rejects)
            rows_hashed += table.num_rows
            rows_rejected += len(all_faults)
            if rejects_writer:
                rejects_writer.write(all_faults)
            if progress:
                progress(len(chunk) + len(chunk.rejects))
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
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        }
        if rejects_writer:
            rejects_writer.close()
        manifest = writer.close(manifest)
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
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise MatchkitError("rejects folder does not exist", path=directory)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
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
