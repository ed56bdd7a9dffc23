"""Signed hashed files: Ed25519 signing keys for agencies, signing at hash time, checking against a trust folder.

The shared secret says *how* values are tokenised; it cannot say *who* produced a hashed file, because every
agency and the tax bureau's data-preparation team hold the same secret. So each agency also holds its own Ed25519
signing key (``matchkit key new-signing``), signs what it hashes (``matchkit hash --sign AGENCY.key``), and the
people who run ``matchkit verify --trust DIR`` keep the agencies' public keys (``*.pub``) in a folder.

What is signed — every byte of the file. The signature lives inside the file, in the Parquet key-value metadata
under ``matchkit.signature``: a JSON record naming the signer, its key id and public-key fingerprint, and the
signature itself as 128 hex digits. The file is first written complete with those 128 digits all ``0`` (a fixed-
size *slot*); then the SHA-256 of the whole file — leading magic, data pages, footer with schema, row-group
metadata, manifest and the signer record, footer length, trailing magic — is signed, and the signature is written
into the slot in place. A checker finds the slot inside the footer, puts the zeros back, hashes the whole file and
checks the signature. A changed byte outside the slot changes the hash; a changed byte inside the slot changes the
signature (or makes it unreadable). Either way the file is refused. The signed message is
``b"matchkit signed file v2\\0" + SHA-256(file with the slots zeroed)``.

Version 2 (hashed-file format 2): the file also carries a whole-file digest (``matchkit.io.hashed.format``) that
covers every byte but its own 64 digits, the signature included. The digest is filled in *after* signing, so the
signature reads its slot as zeros too (``unsigned_slots``); the digest, a function of every other byte, is checked
by every reader, with or without a trust folder.

Nothing here needs the shared secret, so verify operators can check signatures without holding it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from matchkit.errors import KeyFileError, ManifestError
from matchkit.security.keys import read_key_file

SIGNATURE_META_KEY = b"matchkit.signature"
SIGNATURE_FORMAT = "matchkit-signature"
SIGNATURE_VERSION = 2
SIGNATURE_SCOPE = "whole-file-with-signature-and-digest-slots-zeroed"
SIGNING_KEY_FORMAT = "matchkit-signing-key"
PUBLIC_KEY_FORMAT = "matchkit-signing-public-key"
KEY_FORMAT_VERSION = 1
_SIGNED_PREFIX = b"matchkit signed file v2\x00"
_SIGNATURE_HEX = 128  # an Ed25519 signature is 64 bytes
_PLACEHOLDER = "0" * _SIGNATURE_HEX
_HEX = re.compile(r"[0-9a-f]{128}")
_MAGIC = b"PAR1"


class SignatureError(ManifestError):
    """A hashed file is unsigned, signed by an unknown key, or was changed after it was signed."""


@dataclass(frozen=True)
class PublicSigningKey:
    """An agency's public key: safe to copy anywhere."""

    signer: str
    key_id: str
    public_bytes: bytes = field(repr=False)
    created: str = ""
    path: str | None = None

    @property
    def fingerprint(self) -> str:
        return public_fingerprint(self.public_bytes)

    def describe(self) -> str:
        return f"'{self.signer}' (key id {self.key_id}, fingerprint {self.fingerprint})"


@dataclass(frozen=True)
class SigningKey:
    """An agency's private signing key. ``repr`` never shows the private part."""

    signer: str
    key_id: str
    private_bytes: bytes = field(repr=False)
    created: str = ""
    path: str | None = None

    @property
    def public(self) -> PublicSigningKey:
        raw = Ed25519PrivateKey.from_private_bytes(self.private_bytes).public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicSigningKey(self.signer, self.key_id, raw, self.created)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.private_bytes).sign(message)


def public_fingerprint(public_bytes: bytes) -> str:
    digest = hashlib.sha256(b"matchkit signing key fingerprint v1\x00" + public_bytes).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


# --- key files ----------------------------------------------------------------------------------------------------

def new_signing_key(signer: str) -> SigningKey:
    _check_signer_name(signer)
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return SigningKey(signer=signer, key_id="ms-" + secrets.token_hex(6), private_bytes=private,
                      created=datetime.now(UTC).replace(microsecond=0).isoformat())


def public_key_path(private_path: str | Path) -> Path:
    """``AGENCY.key`` -> ``AGENCY.pub``; any other name gets ``.pub`` appended."""
    path = Path(private_path)
    return path.with_suffix(".pub") if path.suffix == ".key" else path.with_name(path.name + ".pub")


def write_signing_key(key: SigningKey, path: str | Path) -> tuple[Path, Path]:
    """Write the private key (mode 0600) and the public key beside it (mode 0644). Refuses to overwrite either."""
    private_path = Path(path)
    public_path = public_key_path(private_path)
    for target in (private_path, public_path):
        if target.exists():
            raise KeyFileError("refusing to overwrite an existing key file", path=target)
    public = key.public
    common = {"signer": key.signer, "key_id": key.key_id, "created": key.created,
              "public_key": base64.b64encode(public.public_bytes).decode("ascii")}
    private_body = {"format": SIGNING_KEY_FORMAT, "version": KEY_FORMAT_VERSION, **common,
                    "private_key": base64.b64encode(key.private_bytes).decode("ascii")}
    public_body = {"format": PUBLIC_KEY_FORMAT, "version": KEY_FORMAT_VERSION, **common,
                   "fingerprint": public.fingerprint}
    _write_json(private_path, private_body, 0o600)
    try:
        _write_json(public_path, public_body, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def _write_json(target: Path, body: dict[str, Any], mode: int) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file ({exc.strerror})", path=target) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            json.dump(body, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # a full disk: no truncated key file left behind
        target.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file ({exc.strerror or type(exc).__name__})", path=target) from exc


def load_signing_key(path: str | Path) -> SigningKey:
    """Load a private signing key; refuses group/world-readable, malformed or inconsistent files."""
    source = Path(path)
    body = _read_key_json(source, private=True)
    if body.get("format") == PUBLIC_KEY_FORMAT:
        raise KeyFileError("this is a public key (.pub); --sign needs the private signing key", path=source)
    if body.get("format") == "matchkit-key":
        raise KeyFileError("this is the shared secret key; --sign needs an agency signing key "
                           "('matchkit key new-signing')", path=source)
    _check_format(body, SIGNING_KEY_FORMAT, source)
    private = _decode_b64(body.get("private_key"), 32, "private key", source)
    key = SigningKey(signer=_field(body, "signer", source), key_id=_field(body, "key_id", source),
                     private_bytes=private, created=str(body.get("created", "")), path=str(source))
    if "public_key" in body and _decode_b64(body.get("public_key"), 32, "public key", source) != \
            key.public.public_bytes:
        raise KeyFileError("signing key file is inconsistent (its public key does not belong to its private key)",
                           path=source)
    return key


def load_public_key(path: str | Path) -> PublicSigningKey:
    source = Path(path)
    body = _read_key_json(source, private=False)
    if "private_key" in body or "secret" in body:
        raise KeyFileError("contains a private key or secret: a trust folder must hold public keys only; "
                           "remove it and rotate that key", path=source)
    _check_format(body, PUBLIC_KEY_FORMAT, source)
    public = _decode_b64(body.get("public_key"), 32, "public key", source)
    try:
        Ed25519PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise KeyFileError("public key is not a valid Ed25519 key", path=source) from exc
    return PublicSigningKey(signer=_field(body, "signer", source), key_id=_field(body, "key_id", source),
                            public_bytes=public, created=str(body.get("created", "")), path=str(source))


def _read_key_json(source: Path, *, private: bool) -> dict[str, Any]:
    raw = read_key_file(source, private=private, label="signing key file")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError("not a matchkit key file (malformed or truncated JSON)", path=source) from exc
    if not isinstance(body, dict):
        raise KeyFileError("not a matchkit key file (missing format marker)", path=source)
    return body


def _check_format(body: dict[str, Any], expected: str, source: Path) -> None:
    if body.get("format") != expected:
        raise KeyFileError(f"not a matchkit {expected.replace('matchkit-', '').replace('-', ' ')} file "
                           "(missing format marker)", path=source)
    if body.get("version") != KEY_FORMAT_VERSION:
        raise KeyFileError(f"unsupported key file version {body.get('version')!r}", path=source)


def _field(body: dict[str, Any], name: str, source: Path) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise KeyFileError(f"key file has no {name.replace('_', ' ')}", path=source)
    return value


def _decode_b64(value: Any, size: int, label: str, source: Path) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"key file has no {label}", path=source)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"key file {label} is not valid base64", path=source) from exc
    if len(raw) != size:
        raise KeyFileError(f"key file {label} has the wrong length (truncated?)", path=source)
    return raw


def _check_signer_name(signer: str) -> None:
    if not signer.strip() or len(signer) > 100 or any(ord(c) < 32 for c in signer):
        raise KeyFileError("signer name must be 1-100 printable characters")


# --- trust folder -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrustStore:
    """The public keys a verify operator accepts, by fingerprint."""

    path: Path
    keys: dict[str, PublicSigningKey]

    def find(self, fingerprint: str) -> PublicSigningKey | None:
        return self.keys.get(fingerprint)


def load_trust_dir(path: str | Path) -> TrustStore:
    folder = Path(path)
    if not folder.is_dir():
        raise KeyFileError("trust folder not found (a folder of trusted *.pub files is expected)", path=folder)
    keys: dict[str, PublicSigningKey] = {}
    for pub in sorted(folder.glob("*.pub")):
        key = load_public_key(pub)
        keys[key.fingerprint] = key
    if not keys:
        raise KeyFileError("trust folder holds no *.pub public keys", path=folder)
    return TrustStore(folder, keys)


# --- signing and checking files -----------------------------------------------------------------------------------

def signature_placeholder(key: SigningKey) -> bytes:
    """The signer record with an all-zero signature slot, to be written into the footer before signing."""
    return _signature_record(key.public, _PLACEHOLDER)


def _signature_record(public: PublicSigningKey, signature_hex: str) -> bytes:
    record = {"format": SIGNATURE_FORMAT, "version": SIGNATURE_VERSION, "algorithm": "ed25519",
              "scope": SIGNATURE_SCOPE, "signer": public.signer, "key_id": public.key_id,
              "fingerprint": public.fingerprint, "signature": signature_hex}
    return json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")


Slot = tuple[int, int]  # (offset, length) of hex digits read as "0" when a digest is computed


def _slot_needle(name: str, value: str) -> bytes:
    return f'"{name}": "{value}"'.encode("ascii")


def footer_bounds(handle: Any, size: int, path: Path) -> tuple[int, int]:
    """``(start, end)`` of the Parquet footer (the thrift metadata) in a file of ``size`` bytes."""
    if size < 12:
        raise SignatureError("file is too short to be a Parquet file (truncated?)", path=path)
    handle.seek(0)
    head = handle.read(4)
    handle.seek(size - 8)
    tail = handle.read(8)
    if head != _MAGIC or tail[4:] != _MAGIC:
        raise SignatureError("not a complete Parquet file (truncated or damaged)", path=path)
    (footer_length,) = struct.unpack("<i", tail[:4])
    start = size - 8 - footer_length
    if footer_length <= 0 or start < 4:
        raise SignatureError("Parquet footer is damaged", path=path)
    return start, size - 8


def find_footer_slot(handle: Any, size: int, record: bytes, name: str, value: str, path: Path,
                     error: type[ManifestError] = SignatureError) -> int:
    """Offset of the digits of ``"name": "value"`` in a JSON ``record`` of the footer: the whole record must occur
    in the footer exactly once, and the field in it exactly once."""
    start, end = footer_bounds(handle, size, path)
    handle.seek(start)
    footer = handle.read(end - start)
    first = footer.find(record)
    needle = _slot_needle(name, value)
    inside = record.find(needle)
    if first < 0 or footer.find(record, first + 1) >= 0 or inside < 0 or record.find(needle, inside + 1) >= 0:
        raise error(f"{name} record is damaged (its slot cannot be located in the footer)", path=path)
    return start + first + inside + len(_slot_needle(name, "")) - 1  # the digits start after the opening quote


def digest_with_zeroed_slots(handle: Any, size: int, slots: Sequence[Slot], path: Path) -> bytes:
    """SHA-256 of the whole file with the hex digits of each slot read as ``0``."""
    digest = hashlib.sha256()
    handle.seek(0)
    position = 0
    for offset, length in [*sorted(slots), (size, 0)]:
        while position < offset:
            block = handle.read(min(offset - position, 1 << 22))
            if not block:
                raise ManifestError("file ended early: truncated", path=path)
            digest.update(block)
            position += len(block)
        if length:
            digest.update(b"0" * length)
            position += length
            handle.seek(position)
    return digest.digest()


def sign_file_in_place(path: str | Path, key: SigningKey, *, unsigned_slots: Sequence[Slot] = ()) -> str:
    """Fill the zeroed signature slot of a freshly written file (see the module docstring); returns the hex.
    ``unsigned_slots``: other slots, filled after signing, that the signature reads as zeros."""
    target = Path(path)
    size = target.stat().st_size
    with open(target, "r+b") as handle:
        slot = find_footer_slot(handle, size, signature_placeholder(key), "signature", _PLACEHOLDER, target)
        zeroed = [(slot, _SIGNATURE_HEX), *unsigned_slots]
        signature = key.sign(_SIGNED_PREFIX + digest_with_zeroed_slots(handle, size, zeroed, target)).hex()
        handle.seek(slot)
        handle.write(signature.encode("ascii"))
        handle.flush()
        os.fsync(handle.fileno())
    return signature


@dataclass(frozen=True)
class SignatureInfo:
    signer: str
    key_id: str
    fingerprint: str
    trusted_key: str | None  # the trust-folder file that holds the key


def read_signature_record(path: str | Path) -> dict[str, Any] | None:
    """The file's signer record (None when unsigned). Raises ``ManifestError`` for an unreadable file."""
    target = Path(path)
    raw = _signature_record_bytes(target)
    return None if raw is None else _parse_signature_record(raw, target)


def _signature_record_bytes(target: Path) -> bytes | None:
    import pyarrow.parquet as pq

    if not target.is_file():
        raise ManifestError("file not found", path=target)
    try:
        metadata = pq.read_metadata(target).metadata or {}
    except Exception as exc:  # a damaged footer can fail in any decoder (e.g. UnicodeDecodeError)
        raise ManifestError("not a readable Parquet file (a hashed file from 'matchkit hash' is expected)",
                            path=target) from exc
    return metadata.get(SIGNATURE_META_KEY)


def _parse_signature_record(raw: bytes, target: Path) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureError("signature record is damaged", path=target) from exc
    if not isinstance(record, dict) or record.get("format") != SIGNATURE_FORMAT:
        raise SignatureError("signature record is damaged (no format marker)", path=target)
    if record.get("version") == 1:
        raise SignatureError("was signed by an older matchkit (signature version 1): hash and sign the raw extract "
                             "again with this matchkit", path=target)
    if record.get("version") != SIGNATURE_VERSION or record.get("algorithm") != "ed25519" \
            or record.get("scope") != SIGNATURE_SCOPE:
        raise SignatureError("signature record has an unsupported version, algorithm or scope", path=target)
    for name in ("signer", "key_id", "fingerprint", "signature"):
        if not isinstance(record.get(name), str):
            raise SignatureError(f"signature record is damaged (no {name})", path=target)
    return record


def verify_file_signature(path: str | Path, trust: TrustStore, *, unsigned_slots: Sequence[Slot] = ()
                          ) -> SignatureInfo:
    """Refuse, naming the file, anything not signed by a key in ``trust`` or changed after signing (the bytes
    of ``unsigned_slots`` read as zeros, as when it was signed)."""
    target = Path(path)
    raw = _signature_record_bytes(target)
    if raw is None:
        raise SignatureError(f"file is not signed, but verify was given a trust folder ({trust.path}); every "
                             "file must be signed by a trusted agency ('matchkit hash --sign')", path=target)
    record = _parse_signature_record(raw, target)
    signature_hex = record["signature"]
    if not _HEX.fullmatch(signature_hex):
        raise SignatureError("signature is damaged (not 128 hex digits)", path=target)
    trusted = trust.find(record["fingerprint"])
    if trusted is None:
        raise SignatureError(
            f"signed by an unknown signer '{record['signer']}' (key id {record['key_id']}, fingerprint "
            f"{record['fingerprint']}), whose public key is not in the trust folder {trust.path}", path=target)
    size = target.stat().st_size
    with open(target, "rb") as handle:
        slot = find_footer_slot(handle, size, raw, "signature", signature_hex, target)
        digest = digest_with_zeroed_slots(handle, size, [(slot, _SIGNATURE_HEX), *unsigned_slots], target)
    try:
        Ed25519PublicKey.from_public_bytes(trusted.public_bytes).verify(bytes.fromhex(signature_hex),
                                                                        _SIGNED_PREFIX + digest)
    except InvalidSignature as exc:
        raise SignatureError(
            f"signature by {trusted.describe()} does not match the file's bytes: the file was changed after "
            "it was signed, or is damaged", path=target) from exc
    return SignatureInfo(trusted.signer, trusted.key_id, trusted.fingerprint, trusted.path)
