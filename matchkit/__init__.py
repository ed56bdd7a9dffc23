"""matchkit: privacy-preserving record matching for government data sharing."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
