"""The unit every encoder takes: the raw rows of one chunk of input, as columns of strings, with their line numbers.

Produced by the readers of raw extracts (:mod:`matchkit.io.readers`), which sit above the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Chunk:
    """Rows of one input chunk: ``columns[name]`` is an object array of ``str`` (``""`` when empty)."""

    columns: dict[str, np.ndarray]
    lines: np.ndarray
    rejects: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)
