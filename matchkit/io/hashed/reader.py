"""Reading a hashed file back: refuse anything that is not a complete, unaltered matchkit file, then read columns.

:func:`open_hashed` checks, in this order, that the file is Parquet with a matchkit manifest of the current format
version, that the SHA-256 of every byte (the digest's own 64 digits read as zeros) matches the digest record, and
only then parses and validates the :class:`~matchkit.io.hashed.format.Manifest`. What the footer holds:
:mod:`matchkit.io.hashed.format`. :func:`check_signature` checks a signed file against a trust folder.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from matchkit import encode
from matchkit.errors import IncompatibleFilesError, ManifestError, MatchkitError
from matchkit.io.hashed.format import (
    DIGEST_HEX,
    DIGEST_KEY,
    FILE_FORMAT_VERSION,
    MANIFEST_KEY,
    Manifest,
    digest_record,
    parse_digest_record,
)
from matchkit.security.signing import (
    SignatureInfo,
    TrustStore,
    digest_with_zeroed_slots,
    find_footer_slot,
    verify_file_signature,
)


@dataclass(frozen=True)
class HashedFile:
    """A hashed file that passed :func:`open_hashed`, with its manifest. A partitioned dataset
    (:class:`matchkit.io.hashed.dataset.HashedDataset`) is one too: the same interface over its parts."""

    path: Path
    manifest: Manifest
    digest: str | None = None  # the whole-file SHA-256 from the digest record (hex), when it was checked

    @property
    def source(self) -> str:
        return self.manifest.source

    def read(self, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(self.path, columns=columns)
        except Exception as exc:  # a damaged footer can fail in any decoder (e.g. UnicodeDecodeError)
            raise ManifestError("hashed file cannot be read (corrupt?)", path=self.path) from exc

    def iter_batches(self, columns: Sequence[str] | None = None, batch_rows: int = 1 << 18) -> Iterator[pa.RecordBatch]:
        """The rows in file order, ``batch_rows`` at a time (never the whole file in memory); only ``columns``
        (those the file has, in the order asked) when given."""
        try:
            parquet = pq.ParquetFile(self.path)
            present = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
            yield from parquet.iter_batches(columns=present, batch_size=batch_rows)
        except MatchkitError:
            raise
        except Exception as exc:  # a damaged file can fail in any decoder
            raise ManifestError("hashed file cannot be read (corrupt?)", path=self.path) from exc


def _footer_metadata(target: Path) -> dict[bytes, bytes]:
    if not target.is_file():
        raise ManifestError("file not found", path=target)
    try:
        return dict(pq.read_metadata(target).metadata or {})
    except Exception as exc:  # a damaged footer can fail in any decoder (e.g. UnicodeDecodeError)
        raise ManifestError("not a Parquet file (a hashed file from 'matchkit hash' is expected)", path=target) from exc


def _format_version(raw: bytes) -> object:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body.get("format_version") if isinstance(body, dict) else None


def open_hashed(path: str | Path, *, check_digest: bool = True) -> HashedFile:
    """Open a hashed file, refusing anything that is not a complete, unaltered matchkit file; a directory is opened
    as a partitioned dataset (:func:`matchkit.io.hashed.dataset.open_dataset`), with the same interface."""
    target = Path(path)
    if target.is_dir():
        from matchkit.io.hashed.dataset import open_dataset

        return open_dataset(target, check_digest=check_digest)
    metadata = _footer_metadata(target)
    raw = metadata.get(MANIFEST_KEY)
    if raw is None:
        raise ManifestError("Parquet file has no matchkit manifest: it was not written by 'matchkit hash'",
                            path=target)
    record = metadata.get(DIGEST_KEY)
    if record is None or _format_version(raw) != FILE_FORMAT_VERSION:
        Manifest.from_bytes(raw, target)  # says what is wrong: an older format, a damaged manifest
        raise ManifestError("file has no digest record: it was altered", path=target)
    expected: str | None = None
    if check_digest:
        expected = parse_digest_record(record, target)
        if whole_file_digest(target, record) != expected:
            raise ManifestError("content does not match its digest: the file was altered or truncated", path=target)
    manifest = Manifest.from_bytes(raw, target)
    supported = encode.SUPPORTED_ENCODINGS
    if manifest.encoding_version not in supported:
        raise ManifestError(
            f"encoding version {manifest.encoding_version!r} is not supported by this matchkit "
            f"(supports {', '.join(sorted(supported))}); use a matching release", path=target)
    return HashedFile(target, manifest, expected)


def _digest_slot(handle: BinaryIO, size: int, record: bytes, target: Path) -> int:
    digest = parse_digest_record(record, target)
    return find_footer_slot(handle, size, digest_record(digest), "digest", digest, target, ManifestError)


def whole_file_digest(path: Path, record: bytes) -> str:
    """SHA-256 of every byte of the file, the digest's own digits (located by its ``record``) read as zeros."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        slot = _digest_slot(handle, size, record, path)
        return digest_with_zeroed_slots(handle, size, [(slot, DIGEST_HEX)], path).hex()


def check_artefact_digest(path: str | Path, metadata: Mapping[bytes, bytes], label: str,
                          error: type[MatchkitError] = ManifestError) -> str:
    """Check the whole-file digest of a file written with :meth:`HashedFileWriter.close_artefact` (``metadata``:
    its footer's key-value metadata); return the hex digest. ``error`` (naming the file) when it was altered."""
    target = Path(path)
    record = metadata.get(DIGEST_KEY)
    if record is None:
        raise error(f"{label} has no digest record: it was altered", path=target)
    expected = parse_digest_record(record, target)
    if whole_file_digest(target, record) != expected:
        raise error(f"{label} does not match its digest: the file was altered or truncated", path=target)
    return expected


def check_artefact_signature(path: str | Path, trust: TrustStore) -> SignatureInfo:
    """:func:`check_signature` for a file written with :meth:`HashedFileWriter.close_artefact` (the signature
    reads the digest's slot as zeros; the caller checks the digest itself, with :func:`check_artefact_digest`)."""
    target = Path(path)
    record = _footer_metadata(target).get(DIGEST_KEY)
    if record is None:
        raise ManifestError("file has no digest record: it was altered", path=target)
    size = target.stat().st_size
    with open(target, "rb") as handle:
        slot = _digest_slot(handle, size, record, target)
    return verify_file_signature(target, trust, unsigned_slots=[(slot, DIGEST_HEX)])


def check_signature(path: str | Path, trust: TrustStore) -> SignatureInfo:
    """Refuse, naming the file, a hashed file not signed by a key in ``trust`` or changed after it was signed.
    The signature reads the digest's slot as zeros (the digest is filled in after signing), so the digest is
    checked too: together they cover every byte. A directory is checked as a partitioned dataset: its index and
    every part (:func:`matchkit.io.hashed.dataset.check_dataset_signature`)."""
    target = Path(path)
    if target.is_dir():
        from matchkit.io.hashed.dataset import check_dataset_signature

        return check_dataset_signature(target, trust)
    record = _footer_metadata(target).get(DIGEST_KEY)
    if record is None:
        open_hashed(target)  # says what is wrong: not a matchkit file, an older format
        raise ManifestError("file has no digest record: it was altered", path=target)
    size = target.stat().st_size
    with open(target, "rb") as handle:
        slot = _digest_slot(handle, size, record, target)
    info = verify_file_signature(target, trust, unsigned_slots=[(slot, DIGEST_HEX)])
    open_hashed(target)
    return info


COMPATIBILITY_FIELDS = (("key_id", "key id"), ("key_fingerprint", "key fingerprint"), ("purpose", "purpose"),
                        ("encoding_version", "encoding version"))


def check_compatible(files: Sequence[HashedFile]) -> None:
    """Refuse, by name, files hashed under different keys, purposes or encoding versions."""
    if not files:
        return
    reference = files[0]
    for other in files[1:]:
        for field_name, label in COMPATIBILITY_FIELDS:
            mine, theirs = getattr(other.manifest, field_name), getattr(reference.manifest, field_name)
            if mine != theirs:
                raise IncompatibleFilesError(
                    f"{other.path.name} was hashed with {label} {mine!r} but {reference.path.name} with "
                    f"{theirs!r}; all files of one run must be hashed with the same key, purpose and encoding "
                    "version"
                )


# ---- columns as pandas, for verify ------------------------------------------------------------------------------
def read_frame(hashed: HashedFile, wanted: set[str], *, keep_open: bool) -> tuple[Any, Any]:
    """The columns of ``hashed`` named in ``wanted`` (those it has) as a DataFrame (:func:`pandas_types`), and, with
    ``keep_open``, the open file, so that columns read later (:class:`ColumnBatches`) come from the same file as
    these, not from a file put in its place since. For a dataset, the parts' rows in order and, with
    ``keep_open``, the list of the parts' open files (:class:`ColumnBatches` takes either)."""
    from matchkit.io.hashed.dataset import HashedDataset

    if isinstance(hashed, HashedDataset):
        return _read_dataset_frame(hashed, wanted, keep_open=keep_open)
    handle: Any = open(hashed.path, "rb")  # noqa: SIM115 - closed below or by ColumnBatches
    try:
        parquet = pq.ParquetFile(handle)
        table = parquet.read(columns=[c for c in parquet.schema_arrow.names if c in wanted])
        del parquet  # a ParquetFile keeps its read buffers until it goes
    except Exception as exc:  # a damaged file can fail in any decoder
        handle.close()
        raise ManifestError("hashed file cannot be read (corrupt?)", path=hashed.path) from exc
    if not keep_open:
        handle.close()
        handle = None
    return table.to_pandas(types_mapper=pandas_types), handle


def _read_dataset_frame(dataset: Any, wanted: set[str], *, keep_open: bool) -> tuple[Any, Any]:
    import pandas as pd

    frames, handles = [], []
    try:
        for part in dataset.parts:
            frame, handle = read_frame(part, wanted, keep_open=keep_open)
            frames.append(frame)
            if handle is not None:
                handles.append(handle)
    except BaseException:
        _close_all(handles)
        raise
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, (handles if keep_open else None)


def pandas_types(arrow_type: Any) -> Any:
    """pandas dtypes for hashed columns: tokens, lists and dates Arrow-backed; integers and flags nullable."""
    import pandas as pd

    if (pa.types.is_fixed_size_binary(arrow_type) or pa.types.is_binary(arrow_type)
            or pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
            or pa.types.is_date32(arrow_type)):
        return pd.ArrowDtype(arrow_type)
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


class ColumnBatches:
    """Columns of one or more open hashed files read in batches of rows when asked, never all at once, as
    DataFrames with exactly the asked columns (all-null where a file lacks one), every row once, in file order.
    Holds the files open; closes them when it goes."""

    BATCH_ROWS = 1 << 19

    def __init__(self, handles: Sequence[BinaryIO | Sequence[BinaryIO]]) -> None:
        # binary file objects, in the order their rows were concatenated; a dataset's parts come as a list
        flat: list[BinaryIO] = []
        for handle in handles:
            if isinstance(handle, (list, tuple)):
                flat.extend(handle)
            else:
                flat.append(handle)  # type: ignore[arg-type]
        self._handles = flat
        weakref.finalize(self, _close_all, list(flat))

    def batches(self, columns: Sequence[str]) -> Iterator[Any]:
        import numpy as np
        import pandas as pd

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


def _close_all(handles: list[BinaryIO]) -> None:
    for handle in handles:
        handle.close()
