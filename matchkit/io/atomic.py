"""The one atomic writer: every file matchkit writes appears under its final name only when complete.

:class:`AtomicFile` writes a ``.partial`` temp file beside the target; ``commit`` flushes it, ``fsync``\\s it, renames
it into place (``os.replace``) and ``fsync``\\s the folder, so after a crash or power loss the target is either the
old file or the whole new one, never a torn one; ``abort`` (or an exception inside ``with``) removes the temp file.
Hashed files, rejects, flags, pairs, candidates, link statistics and reports are all written through it.

Any error of the operating system while an output is written (a full disk, a quota, a file-size limit, an I/O
error, a folder that went away) becomes an :class:`~matchkit.errors.OutputFileError` naming the file, and the temp
file is removed, so nothing partial is left behind: inside ``with``, in ``commit``, and in writes the caller wraps
in :meth:`AtomicFile.writing` (for a writer used outside ``with``, such as the hashed-file writer).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from matchkit.errors import MatchkitError, OutputFileError


def check_output_path(path: str | Path, label: str, error: type[MatchkitError] = OutputFileError) -> Path:
    """Refuse an output whose folder is missing or which names a folder (before any long work starts)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{label} folder does not exist", path=folder)
    if target.is_dir():
        raise error(f"{label} is a folder; give a file name", path=target)
    return folder


def os_reason(exc: OSError) -> str:
    """What the operating system said (``No space left on device``), never a path or a value from the data."""
    return exc.strerror or type(exc).__name__


def output_error(path: str | Path, label: str, exc: OSError) -> OutputFileError:
    """The error for an OS fault while writing ``path``: it names the file and says what the system said."""
    return OutputFileError(f"cannot write the {label} ({os_reason(exc)})", path=path)


class AtomicFile:
    """A temp file beside ``path``, published by :meth:`commit`. ``handle`` is open for writing (binary unless
    ``encoding`` is given). ``mode``: the published file's permission bits (None: 0600, mkstemp's). ``error``: what
    a missing or unusable output folder raises (an OS fault while writing is always ``OutputFileError``)."""

    def __init__(self, path: str | os.PathLike[str], label: str, error: type[MatchkitError] = OutputFileError, *,
                 encoding: str | None = None, newline: str | None = None, mode: int | None = None) -> None:
        self.path = Path(path)
        self.label = label
        self._mode = mode
        self.folder = check_output_path(self.path, label, error)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.folder)
        except OSError as exc:
            raise error(f"cannot write in the {label} folder ({os_reason(exc)})", path=self.folder) from exc
        self.temp = Path(temp)
        self.handle: IO[Any] = (os.fdopen(fd, "w", encoding=encoding, newline=newline) if encoding
                                else os.fdopen(fd, "wb"))
        self.done = False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Turn an ``OSError`` raised inside into an :class:`OutputFileError` naming this file (the caller's error
        path then calls :meth:`abort`)."""
        try:
            yield
        except OSError as exc:
            raise output_error(self.path, self.label, exc) from exc

    def finish(self) -> None:
        """Flush, ``fsync`` and close the temp file: everything on disk, not yet under its name. For a caller that
        publishes several files only once all are complete (the hash job's rejects, after the hashed file)."""
        try:
            with self.writing():
                if not self.handle.closed:
                    self.handle.flush()
                    os.fsync(self.handle.fileno())
                    self.handle.close()
                else:
                    sync_file(self.temp)
        except BaseException:
            self.abort()
            raise

    def publish(self) -> Path:
        """Rename the finished temp file into place and ``fsync`` the folder."""
        try:
            with self.writing():
                if self._mode is not None:
                    os.chmod(self.temp, self._mode)
                os.replace(self.temp, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        sync_folder(self.folder)
        return self.path

    def commit(self) -> Path:
        """Flush and ``fsync`` the temp file, rename it into place, ``fsync`` the folder."""
        self.finish()
        return self.publish()

    def abort(self) -> None:
        """Close the handle whatever the state of its buffer (a flush can fail again on a full disk) and remove the
        temp file (best effort: this runs on the error path)."""
        with contextlib.suppress(OSError, ValueError):
            self.handle.close()
        if not self.done:
            self.temp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.commit()
            return
        self.abort()
        if isinstance(value, OSError):
            raise output_error(self.path, self.label, value) from value


def write_atomically(path: str | Path, label: str, write: Callable[[Path], object], *,
                     error: type[MatchkitError] = OutputFileError, mode: int | None = None) -> Path:
    """For writers that want a file name (``DataFrame.to_csv``): ``write(temp)`` then publish atomically."""
    target = AtomicFile(path, label, error, mode=mode)
    try:
        target.handle.close()
        with target.writing():
            write(target.temp)
    except BaseException:
        target.abort()
        raise
    return target.commit()


def remove_published(*paths: str | Path | None) -> None:
    """Take back outputs a run already published when a later output of the same run fails (a failed run leaves
    none of its outputs)."""
    for path in paths:
        if path is not None:
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)


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
