"""Shared secret keys: creation, safe loading, per-kind/per-purpose derivation and fingerprints.

A key custodian runs ``matchkit key new`` once and hands the file to every participating agency and to the tax
bureau's data-preparation team. The secret never appears on a command line, in a log or in an output file: it is
read from a file named by ``--key`` or by the ``MATCHKIT_KEY_FILE`` environment variable.

Derivation: every kind of value (person ID number, name, birth date, ...) and every purpose gets its own 32-byte
sub-key, ``HKDF-SHA256(secret, salt="matchkit/<encoding version>", info="<purpose>/<kind>")``. A claim's
``subject_id`` and an extract's ``student_id`` are the same kind (``person_id``) and so join; a name token is made
with another sub-key and can never equal an ID token; another purpose gives unrelated tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from matchkit.errors import KeyFileError
from matchkit.settings import KEY_ENV_VAR, key_file

KEY_FORMAT = "matchkit-key"
KEY_FORMAT_VERSION = 1
SECRET_BYTES = 32
DEFAULT_PURPOSE = "iit-special-deduction"


@dataclass(frozen=True)
class SharedKey:
    """A loaded shared secret. ``repr`` never shows the secret."""

    key_id: str
    secret: bytes = field(repr=False)
    created: str = ""
    path: str | None = None

    @property
    def fingerprint(self) -> str:
        """A public fingerprint that identifies the secret without revealing it (safe to print and store)."""
        digest = hmac.new(self.secret, b"matchkit key fingerprint v1", hashlib.sha256).hexdigest()
        return ":".join(digest[i : i + 4] for i in range(0, 32, 4))

    def derive(self, purpose: str, kind: str, encoding_version: str) -> bytes:
        """The 32-byte sub-key for one kind of value under one purpose and encoding version."""
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=f"matchkit/{encoding_version}".encode(),
            info=f"{purpose}/{kind}".encode(),
        )
        return hkdf.derive(self.secret)


def new_key() -> SharedKey:
    """A fresh 256-bit secret from the operating system's CSPRNG, with a random public key id."""
    return SharedKey(
        key_id="mk-" + secrets.token_hex(6),
        secret=secrets.token_bytes(SECRET_BYTES),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def write_key(key: SharedKey, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a key file readable by its owner only (mode 0600). Refuses to overwrite an existing file."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise KeyFileError("refusing to overwrite an existing key file", path=target)
    body = {
        "format": KEY_FORMAT,
        "version": KEY_FORMAT_VERSION,
        "key_id": key.key_id,
        "created": key.created,
        "secret": base64.b64encode(key.secret).decode("ascii"),
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file ({exc.strerror})", path=target) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(body, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # a full disk: no truncated key file left to be mistaken for a key
        target.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file ({exc.strerror or type(exc).__name__})", path=target) from exc
    return target


def load_key(path: str | Path | None = None) -> SharedKey:
    """Load a key from ``path`` or, when it is None, from the file named by ``MATCHKIT_KEY_FILE``."""
    if path is None:
        env_path = key_file()
        if not env_path:
            raise KeyFileError(f"no key given: use --key KEYFILE or set {KEY_ENV_VAR} to the key file's path")
        path = env_path
    source = Path(path)
    raw = read_key_file(source, private=True, label="key file")
    return parse_key(raw, source)


def read_key_file(source: Path, *, private: bool, label: str) -> bytes:
    """The bytes of a key file, refusing a missing or non-regular file and, for a private key, one that the
    group or others may read. Shared by shared-secret and signing keys."""
    try:
        info = source.stat()
    except FileNotFoundError as exc:
        raise KeyFileError("key file not found", path=source) from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file ({exc.strerror})", path=source) from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError("key file is not a regular file", path=source)
    if private and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{label} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); run 'chmod 600' on it",
            path=source,
        )
    try:
        return source.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file ({exc.strerror})", path=source) from exc


def key_file_body(raw: bytes, source: str | Path, *, key_format: str, version: int, what: str,
                  hint: str = "") -> dict[str, Any]:
    """The JSON object of a matchkit key file of one kind (``what``: "key file", "OPRF key file"), its format marker
    and version checked; every fault is reported without echoing the file's content."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"not a matchkit {what} (malformed or truncated JSON)", path=source) from exc
    if not isinstance(body, dict) or body.get("format") != key_format:
        raise KeyFileError(f"not a matchkit {what} (missing format marker{hint})", path=source)
    if body.get("version") != version:
        raise KeyFileError(f"unsupported {what} version {body.get('version')!r}", path=source)
    return body


def parse_key(raw: bytes, source: str | Path = "<key>") -> SharedKey:
    """Parse key-file bytes; every fault is reported without echoing the file's content."""
    body = key_file_body(raw, source, key_format=KEY_FORMAT, version=KEY_FORMAT_VERSION, what="key file")
    key_id = body.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError("key file has no key id", path=source)
    encoded = body.get("secret")
    if not isinstance(encoded, str):
        raise KeyFileError("key file has no secret", path=source)
    try:
        secret = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError("key file secret is not valid base64", path=source) from exc
    if len(secret) < SECRET_BYTES:
        raise KeyFileError(
            f"key secret is too short ({len(secret) * 8} bits; at least {SECRET_BYTES * 8} required)", path=source
        )
    return SharedKey(key_id=key_id, secret=secret, created=str(body.get("created", "")), path=str(source))
