"""The data files that ship inside the package: built-in source schemas and the policy figures.

They live in ``matchkit/data/`` (``schemas/<name>.toml``, ``policy.toml``) and are read with
:mod:`importlib.resources`, so a wheel installed anywhere finds them, not only a source checkout. Setting
``MATCHKIT_CONFIG_DIR`` to a folder with the same layout replaces the whole set: every built-in file is then read
from that folder, and a file missing there is an error (never a silent fall-back to the packaged copy, which would
mix two sets of figures in one run). A light module: it imports no data library.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from matchkit import settings

SCHEMAS_DIR = "schemas"
POLICY_FILE = "policy.toml"


def config_override() -> Path | None:
    """The folder named by ``MATCHKIT_CONFIG_DIR`` (:func:`matchkit.settings.config_dir`), if set (not checked
    here: a missing file names its path)."""
    value = (settings.config_dir() or "").strip()
    return Path(value) if value else None


def data_root() -> Traversable:
    """Where the built-in data files are read from: ``MATCHKIT_CONFIG_DIR`` if set, else the packaged copy."""
    override = config_override()
    if override is not None:
        return override
    return resources.files("matchkit").joinpath("data")


def data_file(*parts: str) -> Traversable:
    """One built-in data file, e.g. ``data_file("schemas", "education.toml")``; may not exist (callers check)."""
    return data_root().joinpath(*parts)


def schema_file(name: str) -> Traversable:
    """The TOML file of a built-in schema by name (``education``, ``febrl``)."""
    return data_file(SCHEMAS_DIR, f"{name}.toml")


def policy_file() -> Traversable:
    return data_file(POLICY_FILE)


def packaged_schema_names() -> list[str]:
    """The schema files shipped in the package (not the override folder), sorted by name."""
    folder = resources.files("matchkit").joinpath("data", SCHEMAS_DIR)
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))
