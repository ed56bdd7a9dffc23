"""Keyed tokens and fuzzy encodings, versioned. See docs/DESIGN.md ("Encoding mk1")."""

from __future__ import annotations

from matchkit.encode.person import ENCODING_VERSION, SUPPORTED_ENCODINGS, Encoder

__all__ = ["ENCODING_VERSION", "SUPPORTED_ENCODINGS", "Encoder"]
