"""One exception tree for matchkit.

Every error a user can cause is a :class:`MatchkitError`; the CLI maps it to exit 1 with its message. Messages name
files, columns, line numbers and rules, never a raw value from the data (an ID number, a name or a birth date).
An :class:`InternalError` is a bug in matchkit and says so.
"""

from __future__ import annotations

from pathlib import Path


class MatchkitError(Exception):
    """Base class for errors caused by input, configuration or environment (exit code 1)."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in a Dask worker, re-raised here: rebuilt as it was (same class, message and attributes), not by
        # calling __init__ again with the formatted message.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[MatchkitError], args: tuple[object, ...], state: dict[str, object]) -> MatchkitError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class KeyFileError(MatchkitError):
    """A key file is missing, unreadable, too open, malformed or too short."""


class SchemaError(MatchkitError):
    """A source schema or policy file is invalid. ``problems`` lists every fault with its path."""

    def __init__(self, problems: list[str], *, path: str | Path | None = None) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n  {lines}", path=path)


class InputFileError(MatchkitError):
    """An input data file cannot be used as a whole (encoding, format, missing columns, empty)."""


class EmptyInputError(InputFileError):
    """An input file has a header but no data rows (refused unless the caller says an empty extract is expected)."""


class OutputFileError(MatchkitError):
    """An output file cannot be written: its folder is missing, the disk is full, permission is denied, or any other
    error of the operating system while writing it. Nothing partial is left under its name."""


class ManifestError(MatchkitError):
    """A hashed file is not a matchkit file, is damaged, or does not fit with the other files of the run."""


class IncompatibleFilesError(ManifestError):
    """Files hashed under different keys, purposes or encoding versions were given to one run."""


class InternalError(Exception):
    """A bug in matchkit. Please report it with the command you ran (never attach data)."""
