"""Defaults shared by the library and the command line.

A light module on purpose: the command line builds every subcommand's help from it without importing numpy,
pandas or pyarrow, so a command starts its own work (and its worker processes) before paying for those imports.
"""

from __future__ import annotations

DEFAULT_MAX_BLOCK_SIZE = 1000  # a blocking key held by more right-hand records than this is skipped (reported)
EM_THRESHOLD = 0.5  # posterior P(match) at which a pair is a link when no threshold is given
FALLBACK_THRESHOLD = 0.85  # mean field similarity, when the plain fallback scores
