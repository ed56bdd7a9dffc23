"""Verification of special additional deduction claims against hashed agency extracts (the tax domain).

``verify_tables(claims, sources)`` returns one flags row per claim line (SPEC §5); ``load_policy()`` reads the policy
figures from ``matchkit/data/policy.toml``. The rules are documented for officers in ``docs/RULES.md``.
"""

from __future__ import annotations

from matchkit.verify.engine import OUTPUT_COLUMNS, verify_tables
from matchkit.verify.linking import FrameEncodings, HashedExtract, PersonEncodings
from matchkit.verify.policy import Policy, load_policy
from matchkit.verify.reasons import REASON_CODES

__all__ = [
    "OUTPUT_COLUMNS",
    "REASON_CODES",
    "FrameEncodings",
    "HashedExtract",
    "PersonEncodings",
    "Policy",
    "load_policy",
    "verify_tables",
]
