"""A link run's statistics, typed: what ``matchkit link`` prints and ``--stats`` writes as JSON.

The engine (:mod:`matchkit.link.engine`) notes its figures as it goes; :meth:`LinkStats.from_record` turns them into
this contract once, at the end, so a reader (the CLI, a benchmark, a library caller) never looks up string keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PassCounts:
    """One blocking pass: pairs it found, and the frequent keys skipped (``--max-block-size``)."""

    candidates: int
    skipped_keys: int
    skipped_pairs: int


@dataclass(frozen=True)
class EmSession:
    """One EM session (over one blocking pass's candidates, the fields it blocks on left out)."""

    pairs: int
    iterations: int
    converged: bool
    separating: bool
    match_share: float


@dataclass(frozen=True)
class EmEstimate:
    """The Fellegi-Sunter model's estimation: sessions, u per field and, when it could be trusted, m, the prior
    (P(match) of a random pair) and the expected number of links."""

    sessions: Mapping[str, EmSession]
    u: Mapping[str, list[float]]
    m: Mapping[str, list[float]] | None = None
    prior: float | None = None
    expected_links: float | None = None


@dataclass(frozen=True)
class LinkStats:
    fields: list[str]  # the fields compared (common to both files)
    left_records: int
    right_records: int
    load_seconds: float
    candidates: int  # candidate pairs, the union over the passes
    blocking_seconds: float
    passes: Mapping[str, PassCounts]
    reduction_ratio: float  # 1 - candidates / all pairs
    compare_seconds: float
    comparisons_per_second: float | None  # field comparisons
    method: str  # "em" or "threshold" (the one used)
    score_seconds: float
    threshold: float
    links: int
    links_found_by_pass: Mapping[str, int]
    em: EmEstimate | None = field(default=None)  # None when the plain threshold scored without trying EM

    @property
    def field_comparisons(self) -> int:
        return self.candidates * len(self.fields)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LinkStats:
        em = record.get("em")
        return cls(
            fields=list(record["fields"]),
            left_records=int(record["left_records"]),
            right_records=int(record["right_records"]),
            load_seconds=float(record["load_seconds"]),
            candidates=int(record["candidates"]),
            blocking_seconds=float(record["blocking_seconds"]),
            passes={name: PassCounts(**counts) for name, counts in record["passes"].items()},
            reduction_ratio=float(record["reduction_ratio"]),
            compare_seconds=float(record["compare_seconds"]),
            comparisons_per_second=record.get("comparisons_per_second"),
            method=str(record["method"]),
            score_seconds=float(record["score_seconds"]),
            threshold=float(record["threshold"]),
            links=int(record["links"]),
            links_found_by_pass=dict(record["links_found_by_pass"]),
            em=None if em is None else EmEstimate(
                sessions={name: EmSession(**session) for name, session in em["sessions"].items()},
                u=em["u"], m=em.get("m"), prior=em.get("prior"), expected_links=em.get("expected_links")),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--stats`` JSON: every figure, under the names of the fields above."""
        body = asdict(self)
        if self.em is not None and self.em.m is None:
            body["em"] = {k: v for k, v in body["em"].items() if k not in ("m", "prior", "expected_links")}
        if body["em"] is None:
            del body["em"]
        return body
