"""Encode a stream of chunks on every core, in input order, with bounded memory.

The first chunk is encoded in this process; only when a second one exists is a small pool of worker processes
started (a file of one chunk is not worth the start-up). Each worker builds its own ``TableEncoder`` from the key,
which travels to it over the pool's pipe, never through a file or an argument list. At most ``2 × workers`` chunks
are in flight, so memory stays bounded however large the input.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from matchkit.encode.table import TableEncoder
from matchkit.encode.tokens import Encoder
from matchkit.io.readers import Chunk, RawReader
from matchkit.keys import SharedKey
from matchkit.schema import Schema

EncodedChunk = tuple[int, tuple[pa.Table, list[tuple[int, str, str]]]]
_worker_encoder: TableEncoder | None = None


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _init_worker(schema: Schema, key: SharedKey, purpose: str, encoding_version: str) -> None:
    global _worker_encoder
    _worker_encoder = TableEncoder(schema, Encoder(key, purpose, encoding_version))


def _encode_in_worker(chunk: Chunk) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    assert _worker_encoder is not None
    return _encode(_worker_encoder, chunk)


def _encode(table_encoder: TableEncoder, chunk: Chunk) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    table, faults = table_encoder.encode(chunk)
    return table, chunk.rejects + faults


def encode_chunks(reader: RawReader, table_encoder: TableEncoder, key: SharedKey, purpose: str,
                  workers: int | None = None) -> Iterator[EncodedChunk]:
    """Yield ``(rows read, (hashed table, faults))`` per chunk, in input order."""
    workers = default_workers() if workers is None else workers
    chunks = reader.chunks()
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None or workers <= 1:
        for chunk in (first, second) if second is not None else (first,):
            yield len(chunk) + len(chunk.rejects), _encode(table_encoder, chunk)
        for chunk in chunks:
            yield len(chunk) + len(chunk.rejects), _encode(table_encoder, chunk)
        return
    context = multiprocessing.get_context("forkserver")
    init_args = (table_encoder.schema, key, purpose, table_encoder.encoder.encoding_version)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=init_args) as pool:
        pending: deque[tuple[int, Future]] = deque()
        for chunk in _chain(first, second, chunks):
            pending.append((len(chunk) + len(chunk.rejects), pool.submit(_encode_in_worker, chunk)))
            while len(pending) >= 2 * workers:
                rows, future = pending.popleft()
                yield rows, future.result()
        while pending:
            rows, future = pending.popleft()
            yield rows, future.result()


def _chain(first: Chunk, second: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield second
    yield from rest
