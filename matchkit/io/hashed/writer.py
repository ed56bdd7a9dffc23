"""Writing a hashed file: record batches streamed into Parquet, then the manifest, the whole-file digest and an
optional signature sealed into the footer, the file published atomically (:mod:`matchkit.io.atomic`).

What the footer holds and what the digest covers: :mod:`matchkit.io.hashed.format`. The digest is computed while
the file streams out (every byte passes through :class:`_HashingSink`, the digest's own slot still the placeholder
zeros) and written into its slot in place; a signed file is signed first (the signature reads the digest slot as
zeros) and then read back once for the digest, which covers the signature too.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from matchkit.errors import ManifestError
from matchkit.io.atomic import AtomicFile
from matchkit.io.hashed.format import (
    DIGEST_HEX,
    DIGEST_KEY,
    DIGEST_PLACEHOLDER,
    MANIFEST_KEY,
    Manifest,
    digest_record,
)
from matchkit.security.signing import (
    SIGNATURE_META_KEY,
    SigningKey,
    digest_with_zeroed_slots,
    find_footer_slot,
    sign_file_in_place,
    signature_placeholder,
)


class _HashingSink:
    """A write-only file object that hashes every byte that passes through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self._written = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self._written += len(view)
        return self._handle.write(view)

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
    """Streams record batches into ``path`` atomically; ``close(manifest)`` seals the footer and publishes."""

    def __init__(self, path: str | Path, schema: pa.Schema, *, unique: Sequence[str] = ()) -> None:
        """``unique``: columns whose values (nearly) never repeat, such as a record id."""
        self.path = Path(path)
        self._file = AtomicFile(self.path, "hashed output", ManifestError)
        self._sink = _HashingSink(self._file.handle)
        # Dictionary pages pay off only where values repeat (tokens and filters of common names, dates, places);
        # integer columns here are line numbers and keyed 64-bit blocking keys, as unique as a record id.
        repeating = [f.name for f in schema if f.name not in unique and not pa.types.is_integer(f.type)]
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd", use_dictionary=repeating)
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows:
            with self._file.writing():  # a full disk: OutputFileError naming the file
                self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self, manifest: Manifest, *, signing_key: SigningKey | None = None) -> Manifest:
        """Write the footer (manifest, digest placeholder, signer record), sign if a key is given, fill in the
        whole-file digest, publish."""
        metadata = {MANIFEST_KEY: manifest.to_bytes(), DIGEST_KEY: digest_record()}
        if signing_key is not None:
            metadata[SIGNATURE_META_KEY] = signature_placeholder(signing_key)
        with self._file.writing():
            self._writer.add_key_value_metadata(metadata)
            self._writer.close()
            self._file.handle.flush()
            temp = self._file.temp
            size = temp.stat().st_size
            with open(temp, "r+b") as handle:
                slot = find_footer_slot(handle, size, digest_record(), "digest", DIGEST_PLACEHOLDER, temp,
                                        ManifestError)
                if signing_key is None:
                    digest = self._sink.digest.hexdigest()  # every byte, the slot as the placeholder zeros
                else:
                    sign_file_in_place(temp, signing_key, unsigned_slots=[(slot, DIGEST_HEX)])
                    digest = digest_with_zeroed_slots(handle, size, [(slot, DIGEST_HEX)], temp).hex()
                handle.seek(slot)
                handle.write(digest.encode("ascii"))
        self._file.commit()
        return manifest

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # best effort on the error path; the temp file is removed below
            self._writer.close()
        self._file.abort()

