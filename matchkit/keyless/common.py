"""Shared pieces of the keyless mode: the agency's OPRF key file, the public encoding key, KDFs, small file helpers.

Key derivation. An agency's OPRF key file holds a 32-byte random seed. The key that evaluates one (purpose, tax
year) is RFC 9497 ``DeriveKeyPair(seed, info="matchkit-keyless/v1|<purpose>|<year>")``: the same token under another
purpose or year gives an unrelated output, and the agency serves only the purposes and years its key file lists.
Every value derived from an OPRF output ``y`` (64 bytes, uniform) is ``HMAC-SHA512(y, label)`` with a label of its
own: the lookup tag and wrapping pad of an entry, and the *content value* ``z`` that stands for a token inside an
encrypted row. None of them lets anyone compute ``y``.

The public encoding key. Without a shared secret the ``mk1`` encodings are computed under a fixed, published key
(:data:`PUBLIC_ENCODING_KEY`): they are then plain deterministic encodings, reversible by brute force, and so are
never written anywhere except inside the OPRF inputs the tax bureau keeps in its request STATE (mode 0600). Secrecy
comes from the agency's OPRF key alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import stat
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matchkit.errors import KeyFileError, MatchkitError
from matchkit.io.atomic import AtomicFile
from matchkit.security import oprf
from matchkit.security.keys import DEFAULT_PURPOSE, SharedKey, key_file_body, read_key_file

OPRF_KEY_FORMAT = "matchkit-oprf-key"
OPRF_KEY_VERSION = 1
KEYLESS_VERSION = b"matchkit-keyless/v1"
FIRST_YEAR = 2019

# A documented constant, not a secret (see the module docstring): the mk1 encodings of the keyless mode.
PUBLIC_ENCODING_KEY = SharedKey(
    key_id="keyless-public-v1",
    secret=hashlib.sha256(b"matchkit keyless mode: public mk1 encoding key v1 (not a secret)").digest(),
    created="2026-12-05",
)

CONTENT_BYTES = 16  # a content value z: 128 bits


class KeylessError(MatchkitError):
    """A keyless artefact (table, request, answer, state) is unusable, mismatched or refused."""


@dataclass(frozen=True)
class OprfKey:
    """An agency's OPRF key file: a seed it never shares, and the purposes and tax years it serves."""

    key_id: str
    seed: bytes = field(repr=False)
    purposes: tuple[str, ...] = (DEFAULT_PURPOSE,)
    years: tuple[int, int] = (FIRST_YEAR, 2099)
    created: str = ""

    def serves(self, purpose: str, year: int) -> str | None:
        """None when this key serves (purpose, year), else the reason it does not."""
        if purpose not in self.purposes:
            return f"purpose {purpose!r} is not served by key {self.key_id} (serves {', '.join(self.purposes)})"
        if not self.years[0] <= year <= self.years[1]:
            return f"tax year {year} is not served by key {self.key_id} (serves {self.years[0]}-{self.years[1]})"
        return None

    def evaluation_key(self, purpose: str, year: int) -> EvaluationKey:
        info = KEYLESS_VERSION + b"|" + purpose.encode("utf-8") + b"|" + str(year).encode("ascii")
        secret, public = oprf.derive_key_pair(self.seed, info)
        return EvaluationKey(self.key_id, purpose, year, secret, public)


@dataclass(frozen=True)
class EvaluationKey:
    """The OPRF key of one (purpose, tax year). ``fingerprint`` names its public key ``pkS`` (safe to publish)."""

    key_id: str
    purpose: str
    year: int
    secret: bytes = field(repr=False)
    public: bytes = b""

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(b"matchkit oprf public key|" + self.public).hexdigest()
        return ":".join(digest[i:i + 4] for i in range(0, 32, 4))

    @property
    def row_id_key(self) -> bytes:
        """A secret of the agency only: keys the stable row ids of its tables."""
        return hmac.new(self.secret, KEYLESS_VERSION + b"|row-id", hashlib.sha256).digest()


def new_oprf_key(purposes: tuple[str, ...] = (DEFAULT_PURPOSE,), years: tuple[int, int] = (FIRST_YEAR, 2099)
                 ) -> OprfKey:
    return OprfKey(key_id="mko-" + secrets.token_hex(6), seed=secrets.token_bytes(32), purposes=purposes,
                   years=years, created=datetime.now(UTC).replace(microsecond=0).isoformat())


def write_oprf_key(key: OprfKey, path: str | Path) -> Path:
    """Write the key file with mode 0600; refuses to overwrite."""
    target = Path(path)
    body = {"format": OPRF_KEY_FORMAT, "version": OPRF_KEY_VERSION, "key_id": key.key_id, "created": key.created,
            "purposes": list(key.purposes), "years": list(key.years),
            "seed": base64.b64encode(key.seed).decode("ascii")}
    write_private(target, (json.dumps(body, indent=2) + "\n").encode("utf-8"), label="OPRF key file",
                  error=KeyFileError)
    return target


def load_oprf_key(path: str | Path) -> OprfKey:
    source = Path(path)
    raw = read_key_file(source, private=True, label="OPRF key file")
    body = key_file_body(raw, source, key_format=OPRF_KEY_FORMAT, version=OPRF_KEY_VERSION, what="OPRF key file",
                         hint=": one is made by 'matchkit key new-oprf'")
    try:
        seed = base64.b64decode(str(body.get("seed")), validate=True)
        purposes = tuple(str(p) for p in body["purposes"])
        first, last = (int(y) for y in body["years"])
        key_id = str(body["key_id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError("OPRF key file is damaged (seed, purposes, years or key id)", path=source) from exc
    if len(seed) != 32 or not purposes:
        raise KeyFileError("OPRF key file is damaged (seed must be 32 bytes, purposes non-empty)", path=source)
    return OprfKey(key_id=key_id, seed=seed, purposes=purposes, years=(first, last),
                   created=str(body.get("created", "")))


# --- derivations from an OPRF output ----------------------------------------------------------------------------------
_CONTENT_LABEL = KEYLESS_VERSION + b"|content"
_ENTRY_LABEL = KEYLESS_VERSION + b"|entry|"


def content_value(y: bytes) -> bytes:
    """``z``: what stands for a token inside an encrypted row (never ``y``: ``y`` would open that person's rows)."""
    return hmac.digest(y, _CONTENT_LABEL, "sha512")[:CONTENT_BYTES]


def entry_tag_and_pad(y: bytes, seal_id: bytes, index: int) -> tuple[bytes, bytes]:
    """The lookup tag (16 bytes) and the 48-byte pad of the ``index``-th entry of evidence ``y`` in seal ``seal_id``."""
    out = hmac.digest(y, _ENTRY_LABEL + seal_id + struct.pack(">I", index), "sha512")
    return out[:16], out[16:64]


def entry_label(seal_id: bytes, index: int) -> bytes:
    """The HMAC message of :func:`entry_tag_and_pad`: ``HMAC-SHA512(y, entry_label(seal, i))`` is ``tag || pad``."""
    return _ENTRY_LABEL + seal_id + struct.pack(">I", index)


def _seal_chunk(args: list[tuple[bytes, bytes, bytes, int, int]]) -> list[tuple[bytes, bytes]]:
    out = []
    for secret, seal_id, x, first, count in args:
        y = oprf.evaluate(secret, x)
        label = _ENTRY_LABEL + seal_id
        out.append((content_value(y), b"".join(hmac.digest(y, label + struct.pack(">I", i), "sha512")
                                               for i in range(first, first + count))))
    return out


def seal_values_many(secret: bytes, seal_id: bytes, inputs: list[tuple[bytes, int, int]], workers: int | None = None
                     ) -> list[tuple[bytes, bytes]]:
    """For each (OPRF input, first occurrence, occurrences): its content value ``z`` and, concatenated, the 64 bytes
    ``tag || pad`` of each occurrence ``first, first + 1, ...`` (see :func:`entry_tag_and_pad`), all derived in the
    worker processes (``y`` never leaves them). One bytes object per input, not one per entry."""
    return oprf.parallel_map(_seal_chunk, [(secret, seal_id, x, first, count) for x, first, count in inputs],
                             workers)


@dataclass(frozen=True)
class KeyRef:
    """Where a scheduler task finds the agency's evaluation key: the key file's path (which the task reads, as the
    command does) and the (purpose, tax year) — never the secret itself as a task argument (a Dask task's
    arguments pass through the scheduler)."""

    path: str
    purpose: str
    year: int


_KEY_CACHE: dict[KeyRef, bytes] = {}


def _secret_of(ref: KeyRef) -> bytes:
    secret = _KEY_CACHE.get(ref)
    if secret is None:
        secret = _KEY_CACHE[ref] = load_oprf_key(ref.path).evaluation_key(ref.purpose, ref.year).secret
    return secret


TASK_ITEMS = 8192  # OPRF evaluations per scheduler task: ~0.2-0.5 s of a core, against a task's ~1 ms overhead


def seal_task(task: tuple[KeyRef, bytes, list[tuple[bytes, int, int]]]) -> list[tuple[bytes, bytes]]:
    """A scheduler task of ``seal``: :func:`seal_values_many` for one run of inputs, the key read from its file."""
    ref, seal_id, inputs = task
    secret = _secret_of(ref)
    return _seal_chunk([(secret, seal_id, x, first, count) for x, first, count in inputs])


def answer_task(task: tuple[KeyRef, bytes]) -> tuple[bytes, list[int]]:
    """A scheduler task of ``answer``: ``BlindEvaluate`` of a run of 32-byte elements (joined); returns the
    evaluated elements joined (32 zero bytes in place of a malformed one) and the positions of malformed ones."""
    ref, elements = task
    secret = _secret_of(ref)
    out: list[bytes] = []
    bad: list[int] = []
    for k in range(len(elements) // oprf.ELEMENT_BYTES):
        element = elements[oprf.ELEMENT_BYTES * k:oprf.ELEMENT_BYTES * (k + 1)]
        if oprf.is_valid_element(element):
            out.append(oprf.blind_evaluate(secret, element))
        else:
            out.append(bytes(oprf.ELEMENT_BYTES))
            bad.append(k)
    return b"".join(out), bad


def xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


# --- files --------------------------------------------------------------------------------------------------------
def write_private(target: Path, data: bytes, *, label: str, error: type[MatchkitError] = KeylessError) -> None:
    """Create ``target`` with mode 0600 (never overwriting), through the one atomic writer (a temp file beside it,
    ``fsync``, then renamed into place; an OS fault is an ``OutputFileError`` naming the file)."""
    if target.exists():
        raise error(f"refusing to overwrite an existing {label}", path=target)
    private = AtomicFile(target, label, error, mode=0o600)
    try:
        with private.writing():
            private.handle.write(data)
        private.finish()
        if target.exists():
            raise error(f"refusing to overwrite an existing {label}", path=target)
        private.publish()
    except BaseException:
        private.abort()
        raise


def read_private(source: Path, *, label: str) -> bytes:
    """Read a file that must be private (mode 0600 or stricter): refuse one the group or others may read."""
    try:
        info = source.stat()
    except FileNotFoundError as exc:
        raise KeylessError(f"{label} not found", path=source) from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeylessError(f"{label} is not a regular file", path=source)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeylessError(f"{label} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                           "it holds the request's blinding factors: run 'chmod 600' on it", path=source)
    return source.read_bytes()


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def manifest_of(path: Path, meta_key: bytes, expected_format: str, label: str, *, check_digest: bool = True
                ) -> dict[str, Any]:
    """The JSON manifest in a Parquet footer, refusing anything that is not the expected keyless artefact; with
    ``check_digest`` also one whose whole-file digest (the hashed files' format-2 digest record) does not match."""
    import pyarrow.parquet as pq

    from matchkit.io.hashed.reader import check_artefact_digest

    if not path.is_file():
        raise KeylessError(f"{label} not found", path=path)
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except Exception as exc:  # a damaged footer can fail in any decoder
        raise KeylessError(f"not a Parquet file (a {label} is expected)", path=path) from exc
    raw = metadata.get(meta_key)
    try:
        manifest = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise KeylessError(f"not a {label} (no '{expected_format}' manifest)", path=path)
    if check_digest:
        check_artefact_digest(path, metadata, label.split(" (")[0], KeylessError)
    return manifest
