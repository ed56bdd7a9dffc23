"""What the keyless mode reads from a raw input: the rows of ``matchkit hash``, encoded under the public encoding
key (:data:`~matchkit.keyless.common.PUBLIC_ENCODING_KEY`), in memory only.

Reading itself (the hash job's reader, normalisers, row checks, worker processes and rejects file) is orchestration
and lives in :mod:`matchkit.jobs.keyless`; ``seal`` and ``request`` receive it as an :class:`EncodeInput`, so that
every input row is sealed (or listed) or rejected with ``line,column,reason`` exactly as ``hash`` would, and an
input with no data rows is refused (``EmptyInputError``) unless the caller allows it. The encoded table's
public-key tokens are reversible and are never written out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from matchkit.schema import Schema


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
    # streaming (``stream=True``): ``table`` is empty and ``chunks`` yields the encoded rows chunk by chunk;
    # ``rows_in`` and ``rows_rejected`` are final once ``chunks`` is exhausted
    chunks: Iterator[pa.Table] | None = None


class EncodeInput(Protocol):
    """Read, check and encode the raw input under the public encoding key for ``schema`` and ``purpose``
    (``stream``: chunk by chunk, see :attr:`Encoded.chunks`)."""

    def __call__(self, schema: Schema, purpose: str, *, stream: bool = False) -> Encoded: ...
