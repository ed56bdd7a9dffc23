"""matchkit: privacy-preserving record matching for government data sharing.

The public API (everything the commands do is one of these calls)::

    from matchkit import dedupe_file, hash_file, link_files, load_key, verify_files

    key = load_key("shared.key")                     # or None: the file named by MATCHKIT_KEY_FILE
    hash_file("education", "education.csv", key, "education.parquet", rejects_path="rejects.csv")
    result = verify_files("claims.parquet", ["education.parquet"], "flags.csv")
    pairs = link_files("left.parquet", "right.parquet", "pairs.csv", one_to_one=True)
    clusters = dedupe_file("people.parquet", "clusters.csv")  # duplicates within one linkage file

Names load on first use (PEP 562), so ``import matchkit`` imports no data library and starts no process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matchkit.lazy import lazy_names

__version__ = "0.1.0"

if TYPE_CHECKING:
    from matchkit.errors import (
        IncompatibleFilesError,
        InputFileError,
        InternalError,
        KeyFileError,
        ManifestError,
        MatchkitError,
        SchemaError,
    )
    from matchkit.jobs.dedupe import dedupe_file
    from matchkit.jobs.hash import HashResult, hash_file
    from matchkit.jobs.link import link_files
    from matchkit.jobs.verify import VerifyResult, verify_files
    from matchkit.link.dedupe import DedupeResult
    from matchkit.link.engine import LinkResult
    from matchkit.link.stats import DedupeStats, LinkStats
    from matchkit.security.keys import SharedKey, load_key
    from matchkit.security.signing import SignatureError

_MODULE_OF = {
    "hash_file": "matchkit.jobs.hash", "HashResult": "matchkit.jobs.hash",
    "verify_files": "matchkit.jobs.verify", "VerifyResult": "matchkit.jobs.verify",
    "link_files": "matchkit.jobs.link", "LinkResult": "matchkit.link.engine", "LinkStats": "matchkit.link.stats",
    "load_key": "matchkit.security.keys", "SharedKey": "matchkit.security.keys",
    "MatchkitError": "matchkit.errors", "KeyFileError": "matchkit.errors", "SchemaError": "matchkit.errors",
    "InputFileError": "matchkit.errors", "ManifestError": "matchkit.errors",
    "IncompatibleFilesError": "matchkit.errors", "InternalError": "matchkit.errors",
    "SignatureError": "matchkit.security.signing",
    "dedupe_file": "matchkit.jobs.dedupe", "DedupeResult": "matchkit.link.dedupe", "DedupeStats": "matchkit.link.stats",
}

__all__ = [
    "DedupeResult",
    "DedupeStats",
    "HashResult",
    "IncompatibleFilesError",
    "InputFileError",
    "InternalError",
    "KeyFileError",
    "LinkResult",
    "LinkStats",
    "ManifestError",
    "MatchkitError",
    "SchemaError",
    "SharedKey",
    "SignatureError",
    "VerifyResult",
    "__version__",
    "dedupe_file",
    "hash_file",
    "link_files",
    "load_key",
    "verify_files",
]


__getattr__ = lazy_names(__name__, globals(), _MODULE_OF)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
