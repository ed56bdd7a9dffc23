"""Partitioned hashed datasets: a directory of hashed files (the parts) bound together by an index.

``matchkit hash ... -o OUT_DIR/`` writes::

    OUT_DIR/part-00000.parquet    each part a complete hashed file (format 2): the same manifest fields as a
    OUT_DIR/part-00001.parquet    single file, with the part's own row counts, its own whole-file digest and,
    ...                           with --sign, its own signature
    OUT_DIR/_matchkit_dataset.parquet
                                  the index (a Parquet artefact, ignored by ``pyarrow.dataset`` for its ``_``
                                  prefix): one row per part (name, whole-file digest, rows in/hashed/rejected) and,
                                  in its footer under ``matchkit.dataset``, the same list with the dataset's
                                  manifest (the totals), its own whole-file digest and, with --sign, a signature

Concatenating the parts' rows in index order gives exactly the rows a single-file run writes. The index binds the
parts: a part that is missing, extra, renamed, reordered, truncated or altered is refused (:func:`open_dataset`),
naming the directory and the part. The digest of a dataset (``HashedDataset.digest``, what the audit log records) is
the index's whole-file digest, which covers every part's digest and therefore every byte of every part.

A signature over the index binds, because it covers every byte of the index file: the dataset's manifest (source,
schema digest, key id and fingerprint, purpose, encoding version, input name, creation time, total rows), the
ordered list of part names with each part's whole-file digest and row counts, the index format and its version,
and the signer record. Each part is also signed on its own, so that a part read alone still names its producer;
:func:`check_dataset_signature` requires the index and every part to be signed by the same trusted key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from matchkit.errors import ManifestError
from matchkit.io.atomic import sync_folder
from matchkit.io.hashed.format import DIGEST_KEY, Manifest, parse_digest_record
from matchkit.io.hashed.reader import HashedFile, check_artefact_digest, check_artefact_signature
from matchkit.security.signing import SignatureError, SignatureInfo, SigningKey, TrustStore

INDEX_NAME = "_matchkit_dataset.parquet"
INDEX_META_KEY = b"matchkit.dataset"
DATASET_FORMAT = "matchkit-hashed-dataset"
DATASET_FORMAT_VERSION = 1
IGNORED_PREFIXES = (".", "_")  # what pyarrow.dataset skips, so what plain readers never see
INDEX_SCHEMA = pa.schema([
    ("part", pa.int32()), ("name", pa.string()), ("digest", pa.string()),
    ("rows_in", pa.int64()), ("rows_hashed", pa.int64()), ("rows_rejected", pa.int64()),
])
_PART_NAME = re.compile(r"part-[0-9]{5,}\.parquet")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Manifest fields that differ between a part and the dataset (the counts); everything else must be equal.
_COUNT_FIELDS = ("rows_in", "rows_hashed", "rows_rejected")


def part_name(number: int) -> str:
    """The file name of part ``number`` (``part-00000.parquet``): names sort in row order."""
    return f"part-{number:05d}.parquet"


def is_dataset_path(path: str | os.PathLike[str]) -> bool:
    """Whether an output path names a dataset: a path written with a trailing ``/``, or a directory that already
    holds a dataset (which the run replaces). Any other existing directory stays an error for a file output
    ("is a folder"): a name such as ``out.parquet`` given to a folder by mistake must not turn into a dataset."""
    text = os.fspath(path)
    return text.endswith(("/", os.sep)) or (Path(text) / INDEX_NAME).is_file()


@dataclass(frozen=True)
class PartEntry:
    """One line of the index: a part's file name, its whole-file digest and its row counts."""

    name: str
    digest: str
    rows_in: int
    rows_hashed: int
    rows_rejected: int

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def index_body(manifest: Manifest, parts: Sequence[PartEntry]) -> dict[str, Any]:
    """The index's footer record: what the index's digest and signature bind."""
    return {"format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, "manifest": manifest.to_json(),
            "part_count": len(parts), "parts": [part.to_json() for part in parts]}


def file_digest_of(path: Path) -> str:
    """The whole-file digest a hashed file (or artefact) records in its footer (checked by whoever opens it)."""
    metadata = pq.read_metadata(path).metadata or {}
    record = metadata.get(DIGEST_KEY)
    if record is None:
        raise ManifestError("has no digest record", path=path)
    return parse_digest_record(record, path)


# ---- writing ------------------------------------------------------------------------------------------------------
class DatasetWriter:
    """A dataset under construction: parts are written into a temp directory beside the target
    (``.NAME.*.partial``), the index last; :meth:`publish` then renames the directory into place (an old dataset
    there is replaced as a whole), :meth:`abort` removes it. A failed run leaves no part behind."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.path = Path(target)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise ManifestError("output dataset's parent folder does not exist", path=parent)
        if self.path.exists():
            if not self.path.is_dir():
                raise ManifestError("output dataset names a file, not a directory", path=self.path)
            visible = [p.name for p in self.path.iterdir()]
            if visible and INDEX_NAME not in visible:
                raise ManifestError("output directory is not empty and holds no matchkit dataset: give an empty or "
                                    "new directory (an existing dataset there is replaced)", path=self.path)
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=parent))
        except OSError as exc:
            raise ManifestError(f"cannot create the output dataset ({exc.strerror or type(exc).__name__})",
                                path=self.path) from exc
        self.done = False

    def part_path(self, number: int) -> Path:
        return self.folder / part_name(number)

    def publish(self, manifest: Manifest, parts: Sequence[PartEntry], *,
                signing_key: SigningKey | None = None) -> str:
        """Write the index (signed with ``signing_key``) and move the dataset into place; its digest."""
        from matchkit.io.hashed.writer import HashedFileWriter

        if not parts:
            raise ManifestError("a dataset needs at least one part (internal error): please report", path=self.path)
        index = self.folder / INDEX_NAME
        writer = HashedFileWriter(index, INDEX_SCHEMA)
        try:
            writer.write(pa.table({
                "part": pa.array(range(len(parts)), pa.int32()),
                "name": [p.name for p in parts], "digest": [p.digest for p in parts],
                "rows_in": pa.array([p.rows_in for p in parts], pa.int64()),
                "rows_hashed": pa.array([p.rows_hashed for p in parts], pa.int64()),
                "rows_rejected": pa.array([p.rows_rejected for p in parts], pa.int64()),
            }, schema=INDEX_SCHEMA))
            writer.close_artefact(index_body(manifest, parts), meta_key=INDEX_META_KEY, signing_key=signing_key)
        except BaseException:
            writer.abort()
            raise
        digest = file_digest_of(index)
        self._swap_in()
        return digest

    def _swap_in(self) -> None:
        parent = self.folder.parent
        old: Path | None = None
        try:
            if self.path.exists():
                old = parent / f".{self.path.name}.{secrets.token_hex(4)}.old"
                os.rename(self.path, old)
            try:
                os.rename(self.folder, self.path)
            except BaseException:
                if old is not None:
                    os.rename(old, self.path)
                raise
        except OSError as exc:
            raise ManifestError(f"cannot publish the output dataset ({exc.strerror or type(exc).__name__})",
                                path=self.path) from exc
        self.done = True
        sync_folder(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.folder, ignore_errors=True)


# ---- reading ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HashedDataset(HashedFile):
    """A partitioned dataset that passed :func:`open_dataset`: a ``HashedFile`` whose rows are its parts'.

    ``path`` is the directory, ``manifest`` the dataset's (the totals), ``digest`` the index's whole-file digest,
    ``parts`` the parts (each a checked ``HashedFile``) in row order."""

    parts: tuple[HashedFile, ...] = ()

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every part's rows, in order, as one table (the same table a single-file run's ``read`` gives)."""
        tables = [part.read(columns) for part in self.parts]
        try:
            return pa.concat_tables(tables)
        except pa.ArrowInvalid as exc:
            raise ManifestError("dataset parts have different columns (corrupt?)", path=self.path) from exc

    def iter_batches(self, columns: Sequence[str] | None = None, batch_rows: int = 1 << 18) -> Iterator[pa.RecordBatch]:
        """The rows in dataset order, part after part, ``batch_rows`` at a time at most."""
        for part in self.parts:
            yield from part.iter_batches(columns, batch_rows)


def _damaged(directory: Path, what: str) -> ManifestError:
    return ManifestError(f"dataset index {INDEX_NAME} is damaged ({what})", path=directory)


def _read_index(directory: Path, check_digest: bool) -> tuple[dict[str, Any], str | None]:
    index = directory / INDEX_NAME
    if not index.is_file():
        raise ManifestError(f"is a directory with no dataset index ({INDEX_NAME}): not a dataset written by "
                            "'matchkit hash -o DIR/', or its run did not finish", path=directory)
    try:
        metadata = dict(pq.read_metadata(index).metadata or {})
    except Exception as exc:  # a damaged footer can fail in any decoder
        raise ManifestError("dataset index is not a readable Parquet file (corrupt or truncated)",
                            path=index) from exc
    raw = metadata.get(INDEX_META_KEY)
    if raw is None:
        raise ManifestError("is not a matchkit dataset index (no dataset record)", path=index)
    digest = check_artefact_digest(index, metadata, "dataset index") if check_digest else None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(directory, "not JSON") from exc
    if not isinstance(body, dict) or body.get("format") != DATASET_FORMAT:
        raise _damaged(directory, "no format marker")
    if body.get("format_version") != DATASET_FORMAT_VERSION:
        raise ManifestError(f"dataset format version {body.get('format_version')!r} is not supported by this "
                            f"matchkit (supports {DATASET_FORMAT_VERSION}); use a matching release", path=directory)
    return body, digest


def _entries(directory: Path, body: dict[str, Any]) -> list[PartEntry]:
    listed = body.get("parts")
    if not isinstance(listed, list) or body.get("part_count") != len(listed) or not listed:
        raise _damaged(directory, "no list of parts, or a count that does not match it")
    entries = []
    for number, item in enumerate(listed):
        if not isinstance(item, dict):
            raise _damaged(directory, f"part {number} is not a record")
        name, digest = item.get("name"), item.get("digest")
        counts = [item.get(f) for f in _COUNT_FIELDS]
        if (not isinstance(name, str) or not isinstance(digest, str) or not _HEX64.fullmatch(digest)
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
            raise _damaged(directory, f"part {number} has a missing or mistyped field")
        if name != part_name(number):
            raise _damaged(directory, f"part {number} is named {name!r}, expected {part_name(number)!r}")
        entries.append(PartEntry(name, digest, *(int(c) for c in counts if isinstance(c, int))))
    return entries


def open_dataset(path: str | os.PathLike[str], *, check_digest: bool = True) -> HashedDataset:
    """Open a partitioned dataset, refusing, by directory and part, anything that is not exactly what its index
    lists: a part missing, extra, reordered, truncated or altered, a part from another run, an altered index."""
    from matchkit.io.hashed.reader import open_hashed

    directory = Path(path)
    if not directory.is_dir():
        raise ManifestError("dataset directory not found", path=directory)
    body, digest = _read_index(directory, check_digest)
    manifest = Manifest.from_bytes(json.dumps(body.get("manifest")).encode(), directory / INDEX_NAME)
    entries = _entries(directory, body)
    listed = {entry.name for entry in entries}
    extra = sorted(p.name for p in directory.iterdir()
                   if not p.name.startswith(IGNORED_PREFIXES) and p.name not in listed)
    if extra:
        raise ManifestError(f"holds {extra[0]!r}, which the dataset index does not list (an extra part, or a "
                            "file put there since): remove it or hash again", path=directory)
    for field_name in _COUNT_FIELDS:
        total = sum(getattr(entry, field_name) for entry in entries)
        if total != getattr(manifest, field_name):
            raise _damaged(directory, f"its parts' {field_name} add up to {total}, its manifest says "
                           f"{getattr(manifest, field_name)}")
    parts = []
    kept_invalid: dict[str, int] = {}
    for entry in entries:
        target = directory / entry.name
        if not target.is_file():
            raise ManifestError(f"part {entry.name} listed in the dataset index is missing", path=directory)
        if check_digest and file_digest_of_checked(target) != entry.digest:
            raise ManifestError(f"part {entry.name} is not the part the dataset index lists (its digest differs: "
                                "replaced, reordered or from another run)", path=directory)
        part = open_hashed(target, check_digest=check_digest)  # its own digest: truncated or altered bytes
        _check_part_manifest(directory, entry, part.manifest, manifest)
        if part.manifest.linkage is not None:
            for name, count in part.manifest.linkage.kept_invalid.items():
                kept_invalid[name] = kept_invalid.get(name, 0) + count
        parts.append(part)
    if manifest.linkage is not None and kept_invalid != dict(manifest.linkage.kept_invalid):
        raise _damaged(directory, "its parts' kept_invalid counts do not add up to its manifest's")
    return HashedDataset(directory, manifest, digest, parts=tuple(parts))


def file_digest_of_checked(path: Path) -> str:
    """The digest recorded in a part's footer, an unreadable part refused by name."""
    if not path.is_file():
        raise ManifestError("file not found", path=path)
    try:
        return file_digest_of(path)
    except ManifestError:
        raise
    except Exception as exc:  # a truncated part has no readable footer
        raise ManifestError("dataset part is not a readable Parquet file (truncated or corrupt)", path=path) from exc


def _check_part_manifest(directory: Path, entry: PartEntry, part: Manifest, dataset: Manifest) -> None:
    for field_name in _COUNT_FIELDS:
        if getattr(part, field_name) != getattr(entry, field_name):
            raise ManifestError(f"part {entry.name} holds {getattr(part, field_name)} {field_name}, the dataset "
                                f"index lists {getattr(entry, field_name)}", path=directory)
    mine = part.to_json()
    theirs = dataset.to_json()
    for field_name in (*_COUNT_FIELDS, "kept_invalid"):
        mine.pop(field_name, None)
        theirs.pop(field_name, None)
    different = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if different:
        raise ManifestError(f"part {entry.name} was not written by the run the dataset index describes (its "
                            f"manifest differs in {', '.join(different)})", path=directory)


def check_dataset_signature(path: str | os.PathLike[str], trust: TrustStore) -> SignatureInfo:
    """Refuse a dataset whose index or any part is not signed by a key in ``trust``, or whose parts are signed by
    another key than its index; then open it (:func:`open_dataset`) so that every digest is checked too."""
    directory = Path(path)
    _read_index(directory, check_digest=False)  # a directory with no index says so before any signature talk
    info = check_artefact_signature(directory / INDEX_NAME, trust)
    dataset = open_dataset(directory)
    for part in dataset.parts:  # digests checked by open_dataset: the signature alone is left to check
        part_info = check_artefact_signature(part.path, trust)
        if part_info.fingerprint != info.fingerprint:
            raise SignatureError(f"part {part.path.name} is signed by {part_info.signer} ({part_info.key_id}) but "
                                 f"the dataset index by {info.signer} ({info.key_id})", path=directory)
    return info


def is_dataset(hashed: object) -> bool:
    return isinstance(hashed, HashedDataset)


__all__ = ["INDEX_NAME", "DatasetWriter", "HashedDataset", "PartEntry", "check_dataset_signature",
           "is_dataset_path", "open_dataset", "part_name"]
