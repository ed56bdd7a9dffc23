"""The dedupe job: one hashed linkage file in; ``record_id,cluster_id``, optional pairs and statistics out.

Refuses, by file name, a file that is not a linkage file. The deduplication itself is :mod:`matchkit.link.dedupe`
(pairs within the file, scored by the same model as ``matchkit link``, then clusters); every output is written
atomically (:mod:`matchkit.io.atomic`).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from matchkit.io.atomic import AtomicFile, check_output_path
from matchkit.io.hashed.format import LINE_COLUMN
from matchkit.io.hashed.reader import open_hashed
from matchkit.jobs.link import linkage_layout, write_pairs_csv
from matchkit.link.dedupe import DedupeResult, check_clustering, dedupe_side
from matchkit.link.engine import (
    RANDOM_PAIRS,
    Progress,
    check_method,
    load_side,
    plan_fields,
    plan_passes,
    side_columns,
)
from matchkit.link.tf import layout_terms
from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE


def dedupe_file(
    path: str | Path,
    output: str | Path | None = None,
    *,
    threshold: float | None = None,
    pairs_path: str | Path | None = None,
    stats_path: str | Path | None = None,
    method: str = "auto",
    clusters: str = "average",
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    random_pairs: int = RANDOM_PAIRS,
    seed: int = 0,
    term_frequency: bool = True,
    progress: Progress | None = None,
) -> DedupeResult:
    """Deduplicate one hashed linkage file; write ``record_id,cluster_id`` to ``output`` (CSV) if given, the links
    (``left_id,right_id,score``, each pair once) to ``pairs_path`` and the run's statistics (JSON) to
    ``stats_path``. ``threshold``, ``method`` and ``term_frequency`` as in :func:`matchkit.jobs.link.link_files`;
    ``clusters``: ``"average"`` (sparse average linkage) or ``"components"`` (connected components of the pairs
    at or above the threshold)."""
    check_method(method, threshold)
    check_clustering(clusters)
    for target, label in ((output, "clusters output"), (pairs_path, "pairs output"),
                          (stats_path, "statistics output")):
        if target is not None:
            check_output_path(Path(target), label)
    hashed = open_hashed(path)
    layout = linkage_layout(hashed, "dedupe")
    names = (hashed.path.name, hashed.path.name)
    plans = plan_fields(layout, layout, names)
    passes = plan_passes(layout, layout, names)
    terms = layout_terms(layout, layout, [plan.name for plan in plans], names) if term_frequency else []

    started = time.perf_counter()
    id_column = layout.record_id or LINE_COLUMN
    tokens, filters = side_columns(plans, passes)
    side = load_side(hashed.read([id_column, *tokens, *filters]), id_column, plans, passes)
    result = dedupe_side(side, plans, passes, threshold=threshold, method=method, clusters=clusters,
                         max_block_size=max_block_size, random_pairs=random_pairs, seed=seed, terms=terms,
                         load_seconds=time.perf_counter() - started, progress=progress)
    if pairs_path is not None:
        write_pairs_csv(Path(pairs_path), "pairs output", [(result.pair_left, result.pair_right, result.scores)])
    if output is not None:
        result.output = Path(output)
        write_clusters_csv(result.output, result.record_ids, result.cluster_ids)
    if stats_path is not None:
        with AtomicFile(stats_path, "statistics output", encoding="utf-8") as stats_file:
            stats_file.handle.write(json.dumps(result.stats.to_json(), indent=2, default=float) + "\n")
    return result


def write_clusters_csv(path: Path, ids: np.ndarray, clusters: np.ndarray) -> None:
    """``record_id,cluster_id`` CSV, written atomically."""
    with AtomicFile(path, "clusters output", encoding="utf-8", newline="") as target:
        writer = csv.writer(target.handle, lineterminator="\n")
        writer.writerow(["record_id", "cluster_id"])
        writer.writerows(zip(ids.tolist(), clusters.tolist()))
