"""Synthetic population, agency extracts, claims and ground truth for testing and benchmarking matchkit.

Everything produced is synthetic. ``generate`` writes a full data set; ``write_sample`` writes the small bundled
sample (``sample_data/``). The truth files are for tests and benchmarks only: matchkit itself never reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_CLAIMS", "SAMPLE_SEED", "generate", "write_sample"]

SAMPLE_SEED = 20240601
SAMPLE_CLAIMS = 80
SAMPLE_FAMILIES = 52


def generate(n_claims: int, seed: int, out_dir: str | Path, **options: Any) -> dict[str, Path]:
    """See :func:`matchkit.synth.dataset.generate`."""
    from matchkit.synth.dataset import generate as _generate

    return _generate(n_claims, seed, out_dir, **options)


def write_sample(out_dir: str | Path) -> dict[str, Path]:
    """The bundled sample: ~300 people, 80 claims covering every defect class, mixed formats and encodings."""
    from matchkit.synth.dataset import generate as _generate

    return _generate(SAMPLE_CLAIMS, SAMPLE_SEED, out_dir, noise=0.5, formats="mixed", tax_year=2024,
                     defect_rate=0.4, families=SAMPLE_FAMILIES)
