"""Output files appear under their final name only when complete: a temp file beside it, then ``os.replace``.

Any error of the operating system while an output is written (a full disk, a quota, an I/O error, a folder that went
away) becomes an :class:`~matchkit.errors.OutputFileError` naming the file (:func:`writing`), and the writer removes
its temp file, so nothing partial is left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from matchkit.errors import MatchkitError, OutputFileError


def check_output_path(path: str | Path, label: str, error: type[MatchkitError] = MatchkitError) -> Path:
    """Refuse an output whose folder is missing or which names a folder (before any long work starts)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{label} folder does not exist", path=folder)
    if target.is_dir():
        raise error(f"{label} is a folder; give a file name", path=target)
    return folder


def partial_file(path: str | Path, label: str, error: type[MatchkitError] = MatchkitError) -> tuple[int, Path]:
    """An open descriptor and the path of a ``.partial`` temp file in the output's folder."""
    folder = check_output_path(path, label, error)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise error(f"cannot write in the {label} folder ({exc.strerror})", path=folder) from exc
    return fd, Path(temp)


def os_reason(exc: OSError) -> str:
    """What the operating system said (``No space left on device``), never a path or a value from the data."""
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def writing(path: str | Path, label: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into an :class:`OutputFileError` that names it."""
    try:
        yield
    except OSError as exc:
        raise OutputFileError(f"cannot write the {label} ({os_reason(exc)})", path=path) from exc


def discard(handle: object, temp: str | Path) -> None:
    """Close a temp file's handle, whatever the state of its buffer (a flush can fail again on a full disk), and
    remove the temp file."""
    with contextlib.suppress(OSError, ValueError):
        handle.close()  # type: ignore[attr-defined]
    Path(temp).unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str, label: str, *, mode: int | None = None) -> Path:
    """Write a small text output (UTF-8) atomically: folder checked, temp file, fsync, rename. ``mode``: the file's
    permissions (default: those of the temp file, 0600)."""
    target = Path(path)
    fd, temp = partial_file(target, label, OutputFileError)
    handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    try:
        with writing(target, label):
            handle.write(text)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temp, target)
    except BaseException:
        discard(handle, temp)
        raise
    return target
