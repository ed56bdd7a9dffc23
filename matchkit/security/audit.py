"""Append-only, hash-chained audit log of ``hash`` and ``verify`` runs.

One JSON object per line (UTF-8, keys sorted, no spaces), written by one ``write`` on a file opened with
``O_APPEND`` while holding an exclusive ``flock``, so concurrent runs never interleave or fork the chain. Each line
carries:

- ``seq``: its 1-based line number;
- ``prev``: the SHA-256 of the previous line's bytes (without its newline), or 64 zeros for the first line;
- ``hash``: the SHA-256 of the line's own canonical JSON without the ``hash`` field;
- what ran: ``time`` (UTC), ``command``, ``status`` (``ok``/``error``/``interrupted``) and ``error`` (the message,
  which by the project's rules never holds a raw value), ``tool_version``, ``user``, ``uid``, ``host``, ``key_id``,
  ``inputs`` and ``outputs`` (file *names* with their SHA-256 and size, never a path or a value) and row counts.

``matchkit audit check LOG`` recomputes the chain: an edited line breaks its own ``hash`` (or the next line's
``prev``), a removed or reordered line breaks ``seq`` and ``prev``. A hash chain cannot tell that lines were cut
off the *end*, nor stop someone who rewrites the whole chain; for that, record the head hash that ``audit check``
prints somewhere else (a ticket, an e-mail) and later run ``audit check LOG --anchor HASH``: the check fails unless
the line with that hash is still in the log, unchanged, with an intact chain before it.

The log location comes from ``--audit-log FILE`` or ``MATCHKIT_AUDIT_LOG``; without either nothing is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matchkit import __version__
from matchkit.errors import MatchkitError

AUDIT_FORMAT = "matchkit-audit"
AUDIT_VERSION = 1
GENESIS = "0" * 64
_TAIL_BLOCK = 1 << 16


class AuditLogError(MatchkitError):
    """The audit log cannot be written, or ``audit check`` found it altered."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self.line = line
        super().__init__(message, path=path)


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def line_hash(entry: dict[str, Any]) -> str:
    """The SHA-256 of an entry's canonical form without its own ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


# A partitioned hashed dataset (``matchkit.io.hashed.dataset``, a layer above this one) is logged by its index:
DATASET_INDEX_NAME = "_matchkit_dataset.parquet"


def file_digest(path: str | Path) -> dict[str, Any] | None:
    """``{"name", "sha256", "bytes"}`` of a file (its name only, never its folder); None when it does not exist.

    A directory holding a partitioned dataset is logged by its name, the SHA-256 of its index (which lists every
    part's digest, so it identifies every byte of the dataset), the index's name and the bytes of all its files."""
    target = Path(path)
    if target.is_dir():
        index = file_digest(target / DATASET_INDEX_NAME)
        if index is None:
            return None
        total = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
        return {"name": target.name, "sha256": index["sha256"], "bytes": total, "index": DATASET_INDEX_NAME}
    digest = hashlib.sha256()
    try:
        with open(target, "rb") as handle:
            size = 0
            while block := handle.read(1 << 22):
                digest.update(block)
                size += len(block)
    except OSError:
        return None
    return {"name": target.name, "sha256": digest.hexdigest(), "bytes": size}


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: fall back on the uid
        return f"uid:{os.getuid()}"


# --- writing ------------------------------------------------------------------------------------------------------

class AuditLog:
    """One audit log file; every method takes the lock for the whole read-tail-then-append step."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise AuditLogError("audit log folder does not exist", path=folder)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditLogError(f"cannot open audit log ({exc.strerror})", path=self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # also releases the lock

    def _tail(self, fd: int) -> tuple[int, str]:
        """``(seq, sha256)`` of the last line, ``(0, GENESIS)`` for an empty log; refuses a damaged tail."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, GENESIS
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditLogError("audit log ends with an incomplete line; run 'matchkit audit check' on it",
                                path=self.path)
        start = size - 1
        chunk = b""
        while start > 0:
            read_from = max(0, start - _TAIL_BLOCK)
            chunk = os.pread(fd, start - read_from, read_from) + chunk
            start = read_from
            if b"\n" in chunk:
                break
        last = chunk.rsplit(b"\n", 1)[-1] if b"\n" in chunk else chunk
        try:
            entry = json.loads(last)
            seq = int(entry["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditLogError("the last line of the audit log is damaged; run 'matchkit audit check' on it",
                                path=self.path) from exc
        return seq, hashlib.sha256(last).hexdigest()

    def check_writable(self) -> None:
        """Fail before a run, not after it, when the log cannot take a line."""
        with self._locked() as fd:
            self._tail(fd)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain ``record`` to the last line and append it; returns the entry as written."""
        with self._locked() as fd:
            seq, previous = self._tail(fd)
            entry = {**record, "format": AUDIT_FORMAT, "version": AUDIT_VERSION, "seq": seq + 1, "prev": previous}
            entry["hash"] = line_hash(entry)
            data = canonical(entry) + b"\n"
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as exc:  # a full disk: take back the part of the line that was written
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise AuditLogError(f"cannot write the audit log ({exc.strerror or type(exc).__name__})",
                                    path=self.path) from exc
        return entry


@dataclass
class AuditRecord:
    """What one run contributes to its log line; the pipeline fills it in as it learns things."""

    command: str
    enabled: bool = True  # without a log, digests are not computed at all
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add_input(self, path: str | Path, **extra: Any) -> None:
        if not self.enabled:
            return
        digest = file_digest(path) or {"name": Path(path).name, "sha256": None, "bytes": None}
        self.inputs.append({**digest, **extra})

    def add_output(self, path: str | Path | None, **extra: Any) -> None:
        if path is not None and self.enabled:
            digest = file_digest(path) or {"name": Path(path).name, "sha256": None, "bytes": None}
            self.outputs.append({**digest, **extra})

    def entry(self, status: str, error: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "command": self.command,
            "status": status,
            "tool_version": __version__,
            "user": current_user(),
            "uid": os.getuid(),
            "host": socket.gethostname(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            **self.details,
        }
        if error is not None:
            entry["error"] = error
        return entry


@contextmanager
def audited(log_path: str | Path | None, command: str) -> Iterator[AuditRecord]:
    """Log one run: an ``ok`` line when the block ends, an ``error``/``interrupted`` line when it raises.

    With no log path it only yields a record nobody reads. The log is checked before the run starts, so a run
    whose log cannot be written never happens at all.
    """
    record = AuditRecord(command, enabled=log_path is not None)
    if log_path is None:
        yield record
        return
    log = AuditLog(log_path)
    log.check_writable()
    try:
        yield record
    except MatchkitError as exc:
        log.append(record.entry("error", str(exc)))
        raise
    except (KeyboardInterrupt, SystemExit):
        log.append(record.entry("interrupted"))
        raise
    except Exception as exc:
        log.append(record.entry("error", f"internal error ({type(exc).__name__})"))
        raise
    log.append(record.entry("ok"))


# --- checking -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditCheck:
    path: Path
    count: int
    head: str  # the ``hash`` of the last line, GENESIS for an empty log


def check_log(path: str | Path, *, anchor: str | None = None) -> AuditCheck:
    """Recompute the chain of an audit log; raise :class:`AuditLogError` naming the first bad line."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError as exc:
        raise AuditLogError("audit log not found", path=target) from exc
    except OSError as exc:
        raise AuditLogError(f"cannot read audit log ({exc.strerror})", path=target) from exc
    if data and not data.endswith(b"\n"):
        last = data.count(b"\n") + 1
        raise AuditLogError(f"line {last}: incomplete last line (no newline): cut off or edited", path=target,
                            line=last)
    lines = data.split(b"\n")[:-1] if data else []
    previous = GENESIS
    head = GENESIS
    anchor_seen = anchor is None
    for number, raw in enumerate(lines, start=1):
        def fail(problem: str, line: int = number) -> AuditLogError:
            return AuditLogError(f"line {line}: {problem}", path=target, line=line)

        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail("not valid JSON: the line was edited or damaged") from exc
        if not isinstance(entry, dict) or entry.get("format") != AUDIT_FORMAT:
            raise fail("not a matchkit audit line")
        if entry.get("version") != AUDIT_VERSION:
            raise fail(f"unsupported audit line version {entry.get('version')!r}")
        if entry.get("seq") != number:
            raise fail(f"carries sequence number {entry.get('seq')!r}: a line before it was removed, or lines "
                       "were reordered")
        if entry.get("prev") != previous:
            raise fail(f"does not chain to line {number - 1}: that line was edited, or lines were removed or "
                       "reordered" if number > 1 else "does not start the chain: lines before it were removed")
        if entry.get("hash") != line_hash(entry) or canonical(entry) != raw:
            raise fail("its content does not match its hash: the line was edited")
        previous = hashlib.sha256(raw).hexdigest()
        head = str(entry["hash"])
        if anchor is not None and head == anchor:
            anchor_seen = True
    if not anchor_seen:
        raise AuditLogError("no line has the anchored hash: the log was truncated or rewritten after the anchor "
                            "was recorded", path=target)
    return AuditCheck(target, len(lines), head)
