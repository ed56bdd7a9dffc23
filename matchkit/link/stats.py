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
class TermFrequencyCounts:
    """One term-frequency term (a field, or a ``[[tf_group]]``): the fields it combines and its distinct values."""

    fields: list[str]
    values: int


@dataclass(frozen=True)
class RepeatedFields:
    """Name fields found to repeat others (:mod:`matchkit.link.repeats`) and the agreement levels set to missing."""

    fields: Mapping[str, list[str]]  # A -> the fields A repeats
    levels_masked: int


def _em(record: Mapping[str, Any]) -> EmEstimate | None:
    em = record.get("em")
    if em is None:
        return None
    return EmEstimate(sessions={name: EmSession(**session) for name, session in em["sessions"].items()},
                      u=em["u"], m=em.get("m"), prior=em.get("prior"), expected_links=em.get("expected_links"))


def _term_frequencies(record: Mapping[str, Any]) -> Mapping[str, TermFrequencyCounts] | None:
    terms = record.get("term_frequencies")
    if terms is None:
        return None
    return {name: TermFrequencyCounts(fields=list(term["fields"]), values=int(term["values"]))
            for name, term in terms.items()}


def _repeated_fields(record: Mapping[str, Any]) -> RepeatedFields | None:
    found = record.get("repeated_fields")
    if found is None:
        return None
    return RepeatedFields(fields={a: list(bs) for a, bs in found["fields"].items()},
                          levels_masked=int(found["levels_masked"]))


def _model_json(body: dict[str, Any], em: EmEstimate | None) -> dict[str, Any]:
    """The ``--stats`` JSON of a run: figures not measured (no EM, no term frequencies, no repeated field, no
    warning) are left out rather than written as null."""
    if em is not None and em.m is None:
        body["em"] = {k: v for k, v in body["em"].items() if k not in ("m", "prior", "expected_links")}
    for optional in ("em", "term_frequencies", "repeated_fields"):
        if body.get(optional) is None:
            body.pop(optional, None)
    if not body.get("warnings"):
        body.pop("warnings", None)
    return body


def _run_figures(record: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a link run and a dedupe run share (blocking, comparison, model, links), typed."""
    return {
        "fields": list(record["fields"]),
        "load_seconds": float(record["load_seconds"]),
        "candidates": int(record["candidates"]),
        "blocking_seconds": float(record["blocking_seconds"]),
        "passes": {name: PassCounts(**counts) for name, counts in record["passes"].items()},
        "reduction_ratio": float(record["reduction_ratio"]),
        "compare_seconds": float(record["compare_seconds"]),
        "method": str(record["method"]),
        "score_seconds": float(record["score_seconds"]),
        "threshold": float(record["threshold"]),
        "links": int(record["links"]),
        "em": _em(record),
        "term_frequencies": _term_frequencies(record),
        "repeated_fields": _repeated_fields(record),
        "warnings": list(record.get("warnings", [])),
    }


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
    term_frequencies: Mapping[str, TermFrequencyCounts] | None = None  # the adjusted terms (None: no adjustment)
    repeated_fields: RepeatedFields | None = None  # None: no field repeats another
    warnings: list[str] = field(default_factory=list)  # what the run wants a person to know (the CLI prints them)

    @property
    def field_comparisons(self) -> int:
        return self.candidates * len(self.fields)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LinkStats:
        return cls(
            left_records=int(record["left_records"]),
            right_records=int(record["right_records"]),
            comparisons_per_second=record.get("comparisons_per_second"),
            links_found_by_pass=dict(record["links_found_by_pass"]),
            **_run_figures(record),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--stats`` JSON: every figure, under the names of the fields above."""
        return _model_json(asdict(self), self.em)


@dataclass(frozen=True)
class DedupeStats:
    """A dedupe run's statistics (``matchkit dedupe``, :mod:`matchkit.link.dedupe`): pairs within one file, the
    same model as a link run, then clusters."""

    fields: list[str]
    records: int
    load_seconds: float
    candidates: int  # pairs within the file (each once), the union over the passes
    blocking_seconds: float
    passes: Mapping[str, PassCounts]
    reduction_ratio: float  # 1 - candidates / (n (n - 1) / 2)
    compare_seconds: float
    method: str
    score_seconds: float
    threshold: float
    links: int  # pairs scoring at least the threshold
    clustering: str  # "average" or "components"
    cluster_seconds: float
    clusters: int
    records_in_clusters_of_two_or_more: int
    largest_cluster: int
    em: EmEstimate | None = None
    term_frequencies: Mapping[str, TermFrequencyCounts] | None = None
    repeated_fields: RepeatedFields | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DedupeStats:
        return cls(
            records=int(record["records"]),
            clustering=str(record["clustering"]),
            cluster_seconds=float(record["cluster_seconds"]),
            clusters=int(record["clusters"]),
            records_in_clusters_of_two_or_more=int(record["records_in_clusters_of_two_or_more"]),
            largest_cluster=int(record["largest_cluster"]),
            **_run_figures(record),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--stats`` JSON of ``matchkit dedupe``."""
        return _model_json(asdict(self), self.em)
