"""The one atomic writer: every file matchkit writes appears under its final name only when complete.

:class:`AtomicFile` writes a ``.partial`` temp file beside the target; ``commit`` flushes it, ``fsync``\\s it, renames
it into place (``os.replace``) and ``fsync``\\s the folder, so after a crash or power loss the target is either the
old file or the whole new one, never a torn one; ``abort`` (or an exception inside ``with``) removes the temp file.
Hashed files, rejects, flags, pairs, candidates, link statistics and reports are all written through it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from matchkit.errors import MatchkitError


def check_output_path(path: str | Path, label: str, error: type[MatchkitError] = MatchkitError) -> Path:
    """Refuse an output whose folder is missing or which names a folder (before any long work starts)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{label} folder does not exist", path=folder)
    if target.is_dir():
        raise error(f"{label} is a folder; give a file name", path=target)
    return folder


class AtomicFile:
    """A temp file beside ``path``, published by :meth:`commit`. ``handle`` is open for writing (binary unless
    ``encoding`` is given). ``mode``: the published file's permission bits (None: 0600, mkstemp's)."""

    def __init__(self, path: str | os.PathLike[str], label: str, error: type[MatchkitError] = MatchkitError, *,
                 encoding: str | None = None, newline: str | None = None, mode: int | None = None) -> None:
        self.path = Path(path)
        self.label = label
        self._error = error
        self._mode = mode
        self.folder = check_output_path(self.path, label, error)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.folder)
        except OSError as exc:
            raise error(f"cannot write in the {label} folder ({exc.strerror})", path=self.folder) from exc
        self.temp = Path(temp)
        self.handle: IO[Any] = (os.fdopen(fd, "w", encoding=encoding, newline=newline) if encoding
                                else os.fdopen(fd, "wb"))
        self.done = False

    def commit(self) -> Path:
        """Flush and ``fsync`` the temp file, rename it into place, ``fsync`` the folder."""
        try:
            if not self.handle.closed:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
            else:
                sync_file(self.temp)
            if self._mode is not None:
                os.chmod(self.temp, self._mode)
            os.replace(self.temp, self.path)
            self.done = True
            sync_folder(self.folder)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Remove the temp file (best effort: this runs on the error path)."""
        with contextlib.suppress(OSError):
            self.handle.close()
        if not self.done:
            self.temp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_atomically(path: str | Path, label: str, write: Callable[[Path], object], *,
                     error: type[MatchkitError] = MatchkitError, mode: int | None = None) -> Path:
    """For writers that want a file name (``DataFrame.to_csv``): ``write(temp)`` then publish atomically."""
    target = AtomicFile(path, label, error, mode=mode)
    try:
        target.handle.close()
        write(target.temp)
    except BaseException:
        target.abort()
        raise
    return target.commit()


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """``fsync`` a folder so a rename in it survives a power loss (not possible on every platform: skipped)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
