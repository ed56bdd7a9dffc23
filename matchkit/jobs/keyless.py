"""The five jobs of the keyless mode (SPEC §7) over files and key paths: what the ``seal``, ``request``, ``answer``
and ``open`` commands (and ``key new-oprf``) run. Each loads its keys from files (never from an argument value),
calls the library in :mod:`matchkit.keyless`, and returns its typed result."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from matchkit.encode.person import ENCODING_VERSION, Encoder
from matchkit.encode.person_table import RecordIdChecker
from matchkit.errors import EmptyInputError, MatchkitError
from matchkit.io.atomic import remove_published
from matchkit.io.readers import DEFAULT_CHUNK_ROWS, RawReader
from matchkit.jobs.encoding import encode_chunks, make_table_encoder
from matchkit.jobs.hash import RejectsWriter
from matchkit.keyless import request as request_lib
from matchkit.keyless import sealed as sealed_lib
from matchkit.keyless.answer import AnswerResult, answer_file
from matchkit.keyless.common import (
    PUBLIC_ENCODING_KEY,
    KeylessError,
    OprfKey,
    load_oprf_key,
    new_oprf_key,
    write_oprf_key,
)
from matchkit.keyless.opener import OpenResult, open_request
from matchkit.keyless.reading import Encoded, EncodeInput
from matchkit.keyless.request import RequestResult
from matchkit.keyless.sealed import SealResult, merge_tables
from matchkit.runtime.cluster import Runner, Scheduler, open_runner
from matchkit.schema import Schema, load_schema
from matchkit.security.signing import SigningKey, load_signing_key

__all__ = ["answer_job", "encode_input", "load_oprf_key", "merge_job", "new_oprf_key_job", "open_job", "request_file", "request_job",
           "seal_file", "seal_job"]


def encode_input(schema: Schema, purpose: str, *, input_path: str | Path, rejects_path: str | Path | None = None,
                 encoding: str = "auto", workers: int | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 allow_empty: bool = False, held: list[RejectsWriter] | None = None, stream: bool = False
                 ) -> Encoded:
    """Read, normalise and encode a raw input exactly as ``matchkit hash`` does (its reader, worker processes,
    row checks and rejects file, published only when complete), under the public encoding key, in memory. An
    input with no data rows raises ``EmptyInputError`` (nothing written) unless ``allow_empty``. With ``held``
    the finished rejects file is appended there, not yet published (:func:`_reading` publishes it after the
    output, as the hash job does: a failed run leaves neither). With ``stream`` the rows come chunk by chunk
    (:attr:`Encoded.chunks`, never the whole input in memory); the counts are final once it is exhausted."""
    if schema.kind != "source":
        raise KeylessError(f"schema '{schema.name}' is a linkage schema; the keyless mode seals source extracts")
    reader = RawReader(input_path, schema, encoding=encoding, chunk_rows=chunk_rows)
    if chunk_rows < 1024:  # CSV blocks are at least 1 MiB otherwise; tiny chunks are for tests of the streaming
        reader.block_bytes = 96 * chunk_rows
    encoder = Encoder(PUBLIC_ENCODING_KEY, purpose, ENCODING_VERSION)
    table_encoder = make_table_encoder(schema, encoder)
    encoded = Encoded(schema, purpose, table_encoder.arrow_schema.empty_table(), table_encoder.arrow_schema, 0, 0,
                      Path(input_path).name, reader.format, reader.encoding)

    def chunks() -> Iterator[pa.Table]:
        record_ids = RecordIdChecker(schema.record_id)
        rejects = RejectsWriter(Path(rejects_path)) if rejects_path else None
        rows_out = 0
        try:
            with contextlib.closing(encode_chunks(reader, table_encoder, PUBLIC_ENCODING_KEY, purpose,
                                                  workers)) as parts:
                for read, (table, faults, _notes) in parts:
                    table, repeats = record_ids.check(table)
                    all_faults = sorted(faults + repeats)
                    encoded.rows_in += read
                    encoded.rows_rejected += len(all_faults)
                    if rejects:
                        rejects.write(all_faults)
                    if table.num_rows:
                        rows_out += table.num_rows
                        yield table
            if encoded.rows_in == 0 and not allow_empty:
                raise EmptyInputError("no data rows (only a header, or an empty sheet or table): refused, as an "
                                      "empty extract is usually a failed export; pass --allow-empty if it is "
                                      "expected", path=input_path)
            if rejects:
                rejects.finish()
                if held is None:
                    rejects.publish()
                else:
                    held.append(rejects)
        except BaseException:
            if rejects:
                rejects.abort()
            raise
        if encoded.rows_in != rows_out + encoded.rows_rejected:  # pragma: no cover - an internal invariant
            raise MatchkitError("row accounting failed (internal error): please report")
        encoded.input_format, encoded.input_encoding = reader.format, reader.encoding

    if stream:
        encoded.chunks = chunks()
        return encoded
    parts = list(chunks())
    table = pa.concat_tables(parts) if parts else table_encoder.arrow_schema.empty_table()
    encoded.table = table.combine_chunks()
    return encoded


@contextlib.contextmanager
def _reading(input_path: str | Path, outputs: Sequence[str | Path], **options: Any) -> Iterator[EncodeInput]:
    """The hash job's reading for ``seal``/``request``; the rejects file is published only once the run's
    ``outputs`` are (and those are removed again if it cannot be): a failed run leaves no rejects behind."""
    held: list[RejectsWriter] = []
    try:
        yield partial(encode_input, input_path=input_path, held=held, **options)
    except BaseException:
        for rejects in held:
            rejects.abort()
        raise
    for rejects in held:
        try:
            rejects.publish()
        except BaseException:
            remove_published(*outputs)
            raise


def seal_file(source: str | Path | Schema, input_path: str | Path, key: OprfKey, output: str | Path, *,
              tax_year: int, purpose: str | None = None, rejects_path: str | Path | None = None,
              encoding: str = "auto", previous: str | Path | None = None, signing_key: SigningKey | None = None,
              audit_log: str | Path | None = None, workers: int | None = None, allow_empty: bool = False,
              chunk_rows: int = DEFAULT_CHUNK_ROWS, runner: Runner | None = None,
              key_path: str | Path | None = None) -> SealResult:
    """Seal one raw extract (:func:`matchkit.keyless.sealed.seal_file`), read as ``hash`` reads it, chunk by
    chunk (``chunk_rows`` rows of the input at a time: memory is set by the chunk, not by the input)."""
    with _reading(input_path, [output], rejects_path=rejects_path, encoding=encoding, workers=workers,
                  allow_empty=allow_empty, chunk_rows=chunk_rows) as read:
        return sealed_lib.seal_file(source, input_path, key, output, tax_year=tax_year, encode_input=read,
                                    purpose=purpose, rejects_path=rejects_path, previous=previous,
                                    signing_key=signing_key, audit_log=audit_log, workers=workers,
                                    runner=runner, key_path=key_path)


def request_file(claims_input: str | Path, output: str | Path, state_path: str | Path, *,
                 rejects_path: str | Path | None = None, encoding: str = "auto", tax_year: int | None = None,
                 purpose: str | None = None, workers: int | None = None, allow_empty: bool = False
                 ) -> RequestResult:
    """List the claims as one request (:func:`matchkit.keyless.request.request_file`), read as ``hash`` reads
    them."""
    with _reading(claims_input, [output, state_path], rejects_path=rejects_path, encoding=encoding,
                  workers=workers, allow_empty=allow_empty) as read:
        return request_lib.request_file(claims_input, output, state_path, encode_input=read,
                                        claims_schema=load_schema("claims"), rejects_path=rejects_path,
                                        tax_year=tax_year, purpose=purpose, workers=workers)


def new_oprf_key_job(output: str | Path, *, purposes: Sequence[str], years: tuple[int, int]) -> OprfKey:
    if years[0] > years[1]:
        raise KeylessError(f"--years {years[0]}-{years[1]}: the first year is after the last")
    key = new_oprf_key(tuple(purposes), years)
    write_oprf_key(key, output)
    return key


def seal_job(source: str, input_path: str | Path, oprf_key: str | Path, output: str | Path, *, tax_year: int,
             rejects: str | Path | None = None, previous: str | Path | None = None, sign: str | Path | None = None,
             encoding: str = "auto", purpose: str | None = None, audit_log: str | Path | None = None,
             allow_empty: bool = False, scheduler: str | Scheduler | None = None) -> SealResult:
    """``scheduler`` (``--scheduler``): the OPRF evaluations run as tasks of the scheduler layer
    (:mod:`matchkit.runtime.cluster`), each reading the key from ``oprf_key``."""
    key = load_oprf_key(oprf_key)
    signing_key = load_signing_key(sign) if sign else None
    with _runner(scheduler) as runner:
        return seal_file(source, input_path, key, output, tax_year=tax_year, purpose=purpose, rejects_path=rejects,
                         encoding=encoding, previous=previous, signing_key=signing_key, audit_log=audit_log,
                         allow_empty=allow_empty, runner=runner, key_path=oprf_key if runner else None)


@contextlib.contextmanager
def _runner(scheduler: str | Scheduler | None) -> Iterator[Runner | None]:
    """No scheduler: None (this process's own worker pool); else the scheduler layer's runner."""
    if scheduler is None:
        yield None
        return
    with open_runner(scheduler) as runner:
        yield runner


def merge_job(base: str | Path, deltas: Sequence[str | Path], output: str | Path, *, sign: str | Path | None = None,
              audit_log: str | Path | None = None) -> dict[str, Any]:
    signing_key = load_signing_key(sign) if sign else None
    return merge_tables(base, deltas, output, signing_key=signing_key, audit_log=audit_log)


def request_job(claims_input: str | Path, output: str | Path, state: str | Path, *, rejects: str | Path | None = None,
                encoding: str = "auto", tax_year: int | None = None, allow_empty: bool = False) -> RequestResult:
    return request_file(claims_input, output, state, rejects_path=rejects, encoding=encoding, tax_year=tax_year,
                        allow_empty=allow_empty)


def answer_job(request: str | Path, oprf_key: str | Path, output: str | Path, *, max_elements: int | None = None,
               audit_log: str | Path | None = None, sign: str | Path | None = None,
               scheduler: str | Scheduler | None = None) -> AnswerResult:
    key = load_oprf_key(oprf_key)
    signing_key = load_signing_key(sign) if sign else None
    with _runner(scheduler) as runner:
        return answer_file(request, key, output, max_elements=max_elements, audit_log=audit_log,
                           signing_key=signing_key, runner=runner, key_path=oprf_key if runner else None)


def open_job(state: str | Path, answers: dict[str, str | Path], tables: dict[str, str | Path], output_dir: str | Path,
             *, trust: str | Path | None = None, audit_log: str | Path | None = None) -> OpenResult:
    return open_request(state, answers, tables, output_dir, trust=trust, audit_log=audit_log)
