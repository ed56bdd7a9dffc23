"""Deduplicate one hashed linkage file: the pairs within it, scored like ``matchkit link``, then clusters.

The engine is :func:`matchkit.link.engine.link_tables`' steps with the file on both sides, and three differences:

- **Pairs within the file**: every blocking pass joins the file with itself; a pair is kept once, ``(i, j)`` with
  ``i < j`` in file order (a record is never its own candidate).
- **The prior** is P(match) among the ``n (n - 1) / 2`` pairs of one file, not among ``n_left x n_right``.
- **Clusters**, by sparse average linkage (:func:`average_link_clusters`, the default): pairs scoring at least
  the threshold join clusters, best first, when the average score of all the scored pairs between the two
  clusters reaches the threshold too. Plain connected components of the pairs above the threshold
  (``clusters="components"``, :func:`connected_components`) chain: A-B and B-C put A and C together although
  A-C scores low, and on Splink's historical_50k one chance link after another made a cluster of 5,000 records
  (cluster F1 0.04, against 0.79 by average linkage; benchmarks/RESULTS.md).

The result: the cluster of every record of the file (a record without duplicates is a cluster of one), clusters
numbered from 0 in the order of their first record, and the links. This module reads and writes no file: the job
around it (opening the file, writing ``record_id,cluster_id``, the pairs and the statistics) is
:mod:`matchkit.jobs.dedupe`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matchkit.errors import MatchkitError
from matchkit.link.blocking import DEFAULT_MAX_BLOCK_SIZE, CandidatePairs, PassStats, block
from matchkit.link.engine import (
    RANDOM_PAIRS,
    BlockingPass,
    FieldPlan,
    LinkSide,
    Progress,
    check_method,
    comparison_rows,
    comparison_table,
    default_terms,
    score_candidates,
    shares_key,
)
from matchkit.link.stats import DedupeStats
from matchkit.link.tf import TfTerm
from matchkit.settings import EM_THRESHOLD, FALLBACK_THRESHOLD

CLUSTERINGS = ("average", "components")


@dataclass
class DedupeResult:
    record_ids: np.ndarray  # every record, in file order
    cluster_ids: np.ndarray  # its cluster, numbered from 0 in order of first record
    pair_left: np.ndarray  # the links (i < j in file order), as record ids
    pair_right: np.ndarray
    scores: np.ndarray
    stats: DedupeStats
    output: Path | None = None  # the clusters file, once the job has written it

    @property
    def clusters(self) -> int:
        return int(self.cluster_ids.max(initial=-1)) + 1


def connected_components(count: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each of ``count`` nodes joined by the edges ``(left[k], right[k])``: the smallest node of
    its component. Label propagation with pointer jumping, all in numpy (a few dozen rounds for any graph a
    blocking step produces)."""
    labels = np.arange(count, dtype=np.int64)
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    if not len(left):
        return labels
    while True:
        smaller = np.minimum(labels[left], labels[right])
        before = labels.copy()
        np.minimum.at(labels, left, smaller)
        np.minimum.at(labels, right, smaller)
        while True:  # pointer jumping: every node points at its label's label until stable
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels


def number_clusters(labels: np.ndarray) -> np.ndarray:
    """Component labels renumbered 0, 1, ... in the order of each component's first node."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def average_link_clusters(count: int, left: np.ndarray, right: np.ndarray, scores: np.ndarray,
                          threshold: float) -> np.ndarray:
    """Cluster label of each of ``count`` records by sparse average linkage over the scored pairs.

    Pairs are taken best first; a pair scoring at least ``threshold`` joins its two records' clusters when the
    *average* score of every scored pair between the two clusters (below-threshold candidates included) is at
    least ``threshold`` too. Where connected components let one chance link chain two groups together, a merge here
    needs the two groups to agree on the whole. Pairs never scored (not candidates) do not count either way.
    Labels are the smallest record of each cluster."""
    strong = scores >= threshold
    # merges only ever happen inside a connected component of the pairs at or above the threshold: a pair across
    # two components (or touching a record with no such pair) can never enter an average that is compared
    component = connected_components(count, left[strong], right[strong])
    relevant = component[left] == component[right]
    left, right, scores = left[relevant], right[relevant], scores[relevant]
    parent = list(range(count))
    size = [1] * count
    links: dict[int, dict[int, list[float]]] = {}  # cluster -> neighbour cluster -> [score sum, pair count]
    for a, b, s in zip(left.tolist(), right.tolist(), scores.tolist()):
        if a == b:
            continue
        for x, y in ((a, b), (b, a)):
            cell = links.setdefault(x, {}).setdefault(y, [0.0, 0])
            cell[0] += s
            cell[1] += 1

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    order = np.argsort(-scores, kind="stable")
    for k in order.tolist():
        if scores[k] < threshold:
            break
        ra, rb = root(int(left[k])), root(int(right[k]))
        if ra == rb:
            continue
        total, pairs = links[ra][rb]
        if total / pairs < threshold:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
        moved = links.pop(rb, {})
        kept = links.setdefault(ra, {})
        kept.pop(rb, None)
        for neighbour, (total, pairs) in moved.items():
            if neighbour == ra:
                continue
            cell = kept.setdefault(neighbour, [0.0, 0])
            cell[0] += total
            cell[1] += pairs
            other = links[neighbour]
            other.pop(rb, None)
            other[ra] = cell
    labels = np.array([root(x) for x in range(count)], dtype=np.int64)
    smallest = np.full(count, count, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(count))
    return smallest[labels]


def check_clustering(clusters: str) -> None:
    if clusters not in CLUSTERINGS:
        raise MatchkitError(f"unknown clustering {clusters!r}: average or components")


def dedupe_side(
    side: LinkSide,
    plans: list[FieldPlan],
    passes: list[BlockingPass],
    *,
    threshold: float | None = None,
    method: str = "auto",
    clusters: str = "average",
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    random_pairs: int = RANDOM_PAIRS,
    seed: int = 0,
    terms: Sequence[TfTerm] | None = None,
    load_seconds: float = 0.0,
    progress: Progress | None = None,
) -> DedupeResult:
    """Deduplicate one loaded side (:func:`matchkit.link.engine.load_side`). ``threshold``, ``method`` and
    ``terms`` as in :func:`matchkit.link.engine.link_tables`; ``clusters``: ``"average"`` (sparse average
    linkage) or ``"components"`` (connected components of the pairs at or above the threshold)."""
    say = progress or (lambda message: None)
    check_method(method, threshold)
    check_clustering(clusters)
    if terms is None:
        terms = default_terms(plans)
    stats: dict[str, Any] = {"fields": [p.name for p in plans]}

    started = time.perf_counter()
    frame, ids = side.frame, side.ids
    rows = comparison_rows(plans, frame, frame, side.filters, side.filters)
    side.filters = {}  # the Arrow filter columns: the rows hold a copy now
    count = len(frame)
    all_pairs = count * (count - 1) / 2
    stats.update(records=count, load_seconds=load_seconds + time.perf_counter() - started)
    say(f"loaded {count:,} records")

    started = time.perf_counter()
    found = block(frame, frame, passes, max_block_size=max_block_size)
    within = found.left < found.right  # each unordered pair once, never a record with itself
    lpos, rpos = found.left[within], found.right[within]
    pass_stats = {p.name: PassStats(int(shares_key(frame, frame, p, lpos, rpos).sum()), s.skipped_keys,
                                    s.skipped_pairs) for p, s in zip(passes, found.passes.values())}
    candidates = CandidatePairs(lpos, rpos, pass_stats)
    stats.update(candidates=candidates.total, blocking_seconds=time.perf_counter() - started,
                 passes={name: {"candidates": s.candidates, "skipped_keys": s.skipped_keys,
                                "skipped_pairs": s.skipped_pairs} for name, s in pass_stats.items()},
                 reduction_ratio=1.0 - candidates.total / max(all_pairs, 1.0))
    say(f"{candidates.total:,} candidate pairs from {len(passes)} blocking passes")

    started = time.perf_counter()
    levels, similarities = comparison_table(plans, frame, frame, lpos, rpos, rows)
    stats["compare_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    scores, used = score_candidates(plans, frame, frame, candidates, levels, similarities, passes, method, random_pairs, seed,
                          stats, rows, terms=list(terms), all_pairs=all_pairs)
    stats.update(method=used, score_seconds=time.perf_counter() - started)
    if threshold is None:
        threshold = EM_THRESHOLD if used == "em" else FALLBACK_THRESHOLD
    stats["threshold"] = threshold

    keep = np.flatnonzero(scores >= threshold)
    kept_left, kept_right, kept_scores = lpos[keep], rpos[keep], scores[keep]
    started = time.perf_counter()
    labels = (average_link_clusters(count, lpos, rpos, scores, threshold) if clusters == "average"
              else connected_components(count, kept_left, kept_right))
    numbered = number_clusters(labels)
    sizes = np.bincount(numbered)
    stats.update(clustering=clusters, cluster_seconds=time.perf_counter() - started)
    stats.update(links=len(kept_left), clusters=len(sizes), records_in_clusters_of_two_or_more=int(
        sizes[sizes >= 2].sum()), largest_cluster=int(sizes.max(initial=0)))
    return DedupeResult(ids, numbered, ids[kept_left], ids[kept_right], kept_scores, DedupeStats.from_record(stats))
