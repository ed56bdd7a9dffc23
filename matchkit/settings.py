"""Every environment variable matchkit reads, and the defaults shared by the library and the command line.

The library reads these, not only the CLI, so a Python caller and a command behave alike: ``load_key()`` with no
path reads ``MATCHKIT_KEY_FILE``, ``verify_files()`` with no ``trust`` reads ``MATCHKIT_TRUST_DIR``, ``hash_file()``
and ``verify_files()`` with no ``audit_log`` read ``MATCHKIT_AUDIT_LOG``. Nothing else in matchkit reads
``os.environ``. A light module on purpose: the command line builds every subcommand's help from it without
importing numpy, pandas or pyarrow.
"""

from __future__ import annotations

import os

DEFAULT_MAX_BLOCK_SIZE = 1000  # a blocking key held by more right-hand records than this is skipped (reported)
EM_THRESHOLD = 0.5  # posterior P(match) at which a pair is a link when no threshold is given
FALLBACK_THRESHOLD = 0.85  # mean field similarity, when the plain fallback scores

KEY_ENV_VAR = "MATCHKIT_KEY_FILE"  # the shared key file, when no --key / path is given
TRUST_ENV_VAR = "MATCHKIT_TRUST_DIR"  # folder of trusted *.pub keys for verify, when no --trust is given
AUDIT_ENV_VAR = "MATCHKIT_AUDIT_LOG"  # the audit log hash and verify append to, when no --audit-log is given
WORKERS_ENV_VAR = "MATCHKIT_WORKERS"  # encoding worker processes and comparison threads
CONFIG_DIR_ENV_VAR = "MATCHKIT_CONFIG_DIR"  # a folder overriding the built-in schemas and policy


def _path(name: str) -> str | None:
    return os.environ.get(name) or None


def key_file() -> str | None:
    return _path(KEY_ENV_VAR)


def trust_dir() -> str | None:
    return _path(TRUST_ENV_VAR)


def audit_log() -> str | None:
    return _path(AUDIT_ENV_VAR)


def config_dir() -> str | None:
    return _path(CONFIG_DIR_ENV_VAR)


def workers() -> int | None:
    """``MATCHKIT_WORKERS`` when it is a positive integer, else None (the caller picks by the cores)."""
    configured = os.environ.get(WORKERS_ENV_VAR, "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else None
