"""Encode an input on every core, in input order, with bounded memory.

CSV input is split into blocks of whole lines (the parent only finds line ends and counts them); each worker
decodes, parses and encodes its block, so parsing runs in parallel too and line numbers stay exact. XLSX and
Parquet are read in the parent and their chunks sent to the workers. A file of one unit is encoded in this process;
a small pool of worker processes starts only when a second unit exists (a small file is not worth the start-up).
A CSV file is cut into at least four blocks per worker, so the workers share it evenly and the parent writes early
blocks while later ones are still being encoded. Workers come from a preloaded fork server (``matchkit.runtime.workers``).
Each worker builds its own ``TableEncoder`` from the key, which travels to it over the pool's pipe, never through a
file or an argument list. At most ``2 × workers`` units are in flight, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeAlias

import pyarrow as pa

from matchkit.encode.fields_table import LinkTableEncoder
from matchkit.encode.person import Encoder
from matchkit.encode.person_table import TableEncoder
from matchkit.io.readers import Chunk, CsvBlock, CsvLayout, RawReader, parse_csv_block
from matchkit.runtime.process import lean_process
from matchkit.runtime.workers import default_workers, ignore_interrupts, pool_context
from matchkit.schema import Schema
from matchkit.security.keys import SharedKey

Faults = list[tuple[int, str, str]]
Notes = dict[str, int]
EncodedChunk = tuple[int, tuple[pa.Table, Faults, Notes]]
Unit: TypeAlias = Chunk | CsvBlock
AnyTableEncoder: TypeAlias = TableEncoder | LinkTableEncoder
_worker: tuple[AnyTableEncoder, CsvLayout | None] | None = None


def make_table_encoder(schema: Schema, encoder: Encoder) -> AnyTableEncoder:
    """The chunk encoder a schema needs: a source schema's, or a linkage schema's."""
    return LinkTableEncoder(schema, encoder) if schema.kind == "link" else TableEncoder(schema, encoder)


def _init_worker(schema: Schema, key: SharedKey, purpose: str, encoding_version: str,
                 layout: CsvLayout | None) -> None:
    global _worker
    ignore_interrupts()
    lean_process()
    _worker = (make_table_encoder(schema, Encoder(key, purpose, encoding_version)), layout)


def _encode_in_worker(unit: Unit) -> EncodedChunk:
    assert _worker is not None
    return encode_unit(_worker[0], _worker[1], unit)


def encode_unit(table_encoder: AnyTableEncoder, layout: CsvLayout | None, unit: Unit) -> EncodedChunk:
    if isinstance(unit, CsvBlock):
        assert layout is not None
        chunk = parse_csv_block(layout, unit)
    else:
        chunk = unit
    table, faults = table_encoder.encode(chunk)
    notes = table_encoder.take_notes() if isinstance(table_encoder, LinkTableEncoder) else {}
    return len(chunk) + len(chunk.rejects), (table, chunk.rejects + faults, notes)


def encode_chunks(reader: RawReader, table_encoder: AnyTableEncoder, key: SharedKey, purpose: str,
                  workers: int | None = None) -> Generator[EncodedChunk, None, None]:
    """Yield ``(rows read, (hashed table, faults, notes))`` per unit of input, in input order."""
    workers = default_workers() if workers is None else workers
    layout: CsvLayout | None = None
    units: Iterator[Unit]
    if reader.format == "csv":
        layout = reader.csv_layout()
        units = reader.csv_blocks(spread=4 * workers if workers > 1 else 1)
    else:
        units = reader.chunks()
    first = _next(units)
    if first is None:
        return
    second = _next(units)
    if second is None or workers <= 1:
        for unit in _chain(first, second, units):
            yield encode_unit(table_encoder, layout, unit)
        return
    context = pool_context()
    init_args = (table_encoder.schema, key, purpose, table_encoder.encoder.encoding_version, layout)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=init_args)
    try:
        pending: deque[Future[EncodedChunk]] = deque()
        for unit in _chain(first, second, units):
            pending.append(pool.submit(_encode_in_worker, unit))
            while len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:  # an error, Ctrl-C, SIGTERM, a consumer that stops early (GeneratorExit)
        # Queued units are cancelled and nothing more is waited for here: the caller's clean-up (removing its
        # .partial files) runs now, while the units already running finish in the background and the workers then
        # exit. The ``matchkit`` command, on SIGTERM, stops the workers themselves (``matchkit.runtime.process``).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _next(units: Iterator[Unit]) -> Unit | None:
    for unit in units:
        return unit
    return None


def _chain(first: Unit, second: Unit | None, rest: Iterator[Unit]) -> Iterator[Unit]:
    yield first
    if second is not None:
        yield second
    yield from rest
