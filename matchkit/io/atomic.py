"""Output files appear under their final name only when complete: a temp file beside it, then ``os.replace``."""

from __future__ import annotations

import tempfile
from pathlib import Path

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


def partial_file(path: str | Path, label: str, error: type[MatchkitError] = MatchkitError) -> tuple[int, Path]:
    """An open descriptor and the path of a ``.partial`` temp file in the output's folder."""
    folder = check_output_path(path, label, error)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise error(f"cannot write in the {label} folder ({exc.strerror})", path=folder) from exc
    return fd, Path(temp)
