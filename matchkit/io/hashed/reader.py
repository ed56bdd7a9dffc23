"""Hashed files: Parquet with a manifest in the footer metadata, written atomically, checked on read.

The manifest (JSON under the key ``matchkit.manifest``) says which source, schema, encoding version, purpose and
key produced the file, how many rows went in and out, and carries ``content_digest``: the SHA-256 of every byte
between the leading ``PAR1`` magic and the footer, i.e. all data pages. A reader recomputes it, so a changed byte
in the data is caught. The file appears under its final name only when complete (temp file + ``os.replace``), so a
killed run never leaves a file a later step would accept. With a signing key, the whole finished file is signed
(see ``matchkit.security.signing``) before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from matchkit.errors import IncompatibleFilesError, ManifestError
from matchkit.io.atomic import partial_file
from matchkit.security.signing import (
    SIGNATURE_META_KEY,
    SigningKey,
    sign_file_in_place,
    signature_placeholder,
)

MANIFEST_KEY = b"matchkit.manifest"
FILE_FORMAT = "matchkit-hashed"
FILE_FORMAT_VERSION = 1
_MAGIC = b"PAR1"


class _HashingSink:
    """A write-only file object that hashes what passes through it after the leading magic, until sealed."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self._written = 0
        self._sealed = False
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        if not self._sealed:
            skip = max(0, len(_MAGIC) - self._written)
            self._digest.update(view[skip:])
        self._written += len(view)
        return self._handle.write(view)

    def seal(self) -> str:
        self._sealed = True
        return self._digest.hexdigest()

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


class HashedFileWriter:
    """Streams record batches into ``path`` atomically; ``close(manifest)`` seals the digest into the footer."""

    def __init__(self, path: str | Path, schema: pa.Schema, *, unique: Sequence[str] = ()) -> None:
        """``unique``: columns whose values (nearly) never repeat, such as a record id."""
        self.path = Path(path)
        fd, self._temp = partial_file(self.path, "output", ManifestError)
        self._handle = os.fdopen(fd, "wb")
        self._sink = _HashingSink(self._handle)
        # Dictionary pages pay off only where values repeat (tokens and filters of common names, dates, places);
        # integer columns here are line numbers and keyed 64-bit blocking keys, as unique as a record id.
        repeating = [f.name for f in schema if f.name not in unique and not pa.types.is_integer(f.type)]
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd", use_dictionary=repeating)
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self, manifest: dict[str, Any], *, signing_key: SigningKey | None = None) -> dict[str, Any]:
        """Seal the digest into the manifest, write the footer, sign the whole file if a key is given, publish."""
        manifest = dict(manifest, content_digest=self._sink.seal())
        metadata = {MANIFEST_KEY: json.dumps(manifest, sort_keys=True).encode()}
        if signing_key is not None:
            metadata[SIGNATURE_META_KEY] = signature_placeholder(signing_key)
        self._writer.add_key_value_metadata(metadata)
        self._writer.close()
        self._handle.flush()
        if signing_key is not None:
            sign_file_in_place(self._temp, signing_key)
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temp, self.path)
        return manifest

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # best effort on the error path; the temp file is removed below
            self._writer.close()
        self._handle.close()
        self._temp.unlink(missing_ok=True)


@dataclass(frozen=True)
class HashedFile:
    path: Path
    manifest: dict[str, Any]

    @property
    def source(self) -> str:
        return str(self.manifest.get("source"))

    def read(self, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(self.path, columns=columns)
        except Exception as exc:  # a damaged footer can fail in any decoder (e.g. UnicodeDecodeError)
            raise ManifestError("hashed file cannot be read (corrupt?)", path=self.path) from exc


def open_hashed(path: str | Path, *, check_digest: bool = True) -> HashedFile:
    """Open a hashed file, refusing anything that is not a complete, unaltered matchkit file."""
    target = Path(path)
    if not target.is_file():
        raise ManifestError("file not found", path=target)
    try:
        metadata = pq.read_metadata(target).metadata or {}
    except Exception as exc:  # a damaged footer can fail in any decoder (e.g. UnicodeDecodeError)
        raise ManifestError("not a Parquet file (a hashed file from 'matchkit hash' is expected)", path=target) from exc
    raw = metadata.get(MANIFEST_KEY)
    if raw is None:
        raise ManifestError("Parquet file has no matchkit manifest: it was not written by 'matchkit hash'",
                            path=target)
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ManifestError("matchkit manifest is damaged", path=target) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FILE_FORMAT:
        raise ManifestError("matchkit manifest is damaged (no format marker)", path=target)
    if manifest.get("format_version") != FILE_FORMAT_VERSION:
        raise ManifestError(
            f"file format version {manifest.get('format_version')!r} is not supported by this matchkit "
            f"(supports {FILE_FORMAT_VERSION}); use a matching release", path=target)
    from matchkit.encode import SUPPORTED_ENCODINGS

    if manifest.get("encoding_version") not in SUPPORTED_ENCODINGS:
        raise ManifestError(
            f"encoding version {manifest.get('encoding_version')!r} is not supported by this matchkit "
            f"(supports {', '.join(sorted(SUPPORTED_ENCODINGS))}); use a matching release", path=target)
    if check_digest:
        actual = data_digest(target)
        if actual != manifest.get("content_digest"):
            raise ManifestError("content does not match its manifest digest: the file was altered or truncated",
                                path=target)
    return HashedFile(target, manifest)


def data_digest(path: Path) -> str:
    """SHA-256 of the bytes between the leading magic and the footer of a Parquet file."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(4) != _MAGIC:
            raise ManifestError("not a Parquet file", path=path)
        handle.seek(size - 8)
        tail = handle.read(8)
        if len(tail) != 8 or tail[4:] != _MAGIC:
            raise ManifestError("Parquet footer missing: the file is truncated", path=path)
        (footer_length,) = struct.unpack("<i", tail[:4])
        end = size - 8 - footer_length
        if end < 4:
            raise ManifestError("Parquet footer is damaged", path=path)
        handle.seek(4)
        digest = hashlib.sha256()
        remaining = end - 4
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 22))
            if not block:
                raise ManifestError("file ended early: truncated", path=path)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


COMPATIBILITY_FIELDS = (("key_id", "key id"), ("key_fingerprint", "key fingerprint"), ("purpose", "purpose"),
                        ("encoding_version", "encoding version"))


def check_compatible(files: list[HashedFile]) -> None:
    """Refuse, by name, files hashed under different keys, purposes or encoding versions."""
    if not files:
        return
    reference = files[0]
    for other in files[1:]:
        for field_name, label in COMPATIBILITY_FIELDS:
            if other.manifest.get(field_name) != reference.manifest.get(field_name):
                raise IncompatibleFilesError(
                    f"{other.path.name} was hashed with {label} {other.manifest.get(field_name)!r} but "
                    f"{reference.path.name} with {reference.manifest.get(field_name)!r}; all files of one run "
                    "must be hashed with the same key, purpose and encoding version"
                )
