"""Read, normalise and encode a raw input exactly as ``matchkit hash`` does, under the public encoding key.

The hash pipeline's reader, normalisers, row checks and rejects are reused unchanged, so every input row is sealed
(or listed) or rejected with ``line,column,reason``. The encoded table stays in memory: its public-key tokens are
reversible and are never written out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from matchkit.encode.parallel import encode_chunks, make_table_encoder
from matchkit.encode.table import RecordIdChecker, TableEncoder
from matchkit.encode.tokens import ENCODING_VERSION, Encoder
from matchkit.errors import MatchkitError
from matchkit.io.readers import DEFAULT_CHUNK_ROWS, RawReader
from matchkit.keyless.common import PUBLIC_ENCODING_KEY, KeylessError
from matchkit.pipeline import _RejectsWriter
from matchkit.schema import Schema, load_schema


@dataclass
class Encoded:
    schema: Schema
    purpose: str
    table: pa.Table
    arrow_schema: pa.Schema
    rows_in: int
    rows_rejected: int
    input_name: str
    input_format: str
    input_encoding: str | None


def encode_input(source: str | Path | Schema, input_path: str | Path, *, purpose: str | None = None,
                 rejects_path: str | Path | None = None, encoding: str = "auto", workers: int | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Encoded:
    schema = source if isinstance(source, Schema) else load_schema(source)
    if schema.kind != "source":
        raise KeylessError(f"schema '{schema.name}' is a linkage schema; the keyless mode seals source extracts")
    purpose = purpose or schema.purpose
    reader = RawReader(input_path, schema, encoding=encoding, chunk_rows=chunk_rows)
    encoder = Encoder(PUBLIC_ENCODING_KEY, purpose, ENCODING_VERSION)
    table_encoder = make_table_encoder(schema, encoder)
    assert isinstance(table_encoder, TableEncoder)
    record_ids = RecordIdChecker(schema.record_id)
    rejects = _RejectsWriter(Path(rejects_path)) if rejects_path else None
    parts: list[pa.Table] = []
    rows_in = rows_rejected = 0
    try:
        for read, (table, faults, _notes) in encode_chunks(reader, table_encoder, PUBLIC_ENCODING_KEY, purpose,
                                                            workers):
            table, repeats = record_ids.check(table)
            all_faults = sorted(faults + repeats)
            rows_in += read
            rows_rejected += len(all_faults)
            if rejects:
                rejects.write(all_faults)
            if table.num_rows:
                parts.append(table)
        if rejects:
            rejects.close()
    except BaseException:
        if rejects:
            rejects.abort()
        raise
    table = pa.concat_tables(parts) if parts else table_encoder.arrow_schema.empty_table()
    if rows_in != table.num_rows + rows_rejected:  # pragma: no cover - an internal invariant
        raise MatchkitError("row accounting failed (internal error): please report")
    return Encoded(schema, purpose, table.combine_chunks(), table_encoder.arrow_schema, rows_in, rows_rejected,
                   Path(input_path).name, reader.format, reader.encoding)
