"""The link job: two hashed linkage files in; pairs, optional candidates and statistics out.

Refuses, by file name, what cannot be linked: a file that is not a linkage file, files hashed under different keys,
purposes or encoding versions, a field encoded differently on the two sides, no blocking pass in common. The
linkage itself is :mod:`matchkit.link.engine`; every output is written atomically (:mod:`matchkit.io.atomic`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from matchkit.errors import ManifestError
from matchkit.io.atomic import AtomicFile, check_output_path, remove_published
from matchkit.io.hashed.format import LINE_COLUMN, LinkageLayout
from matchkit.io.hashed.reader import HashedFile, check_compatible, open_hashed
from matchkit.link.engine import (
    RANDOM_PAIRS,
    BlockingPass,
    FieldPlan,
    LinkResult,
    LinkSide,
    Progress,
    check_method,
    link_tables,
    load_side,
    plan_fields,
    plan_passes,
    side_columns,
)
from matchkit.link.tf import TfTerm, layout_terms
from matchkit.runtime.cluster import Scheduler
from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE

CSV_CHUNK_ROWS = 1_000_000


def link_files(
    left_path: str | Path,
    right_path: str | Path,
    output: str | Path | None = None,
    *,
    threshold: float | None = None,
    one_to_one: bool = False,
    method: str = "auto",
    candidates_path: str | Path | None = None,
    stats_path: str | Path | None = None,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    random_pairs: int = RANDOM_PAIRS,
    seed: int = 0,
    progress: Progress | None = None,
    term_frequency: bool = True,
    partitions: int | None = None,
    scheduler: str | Scheduler | None = None,
) -> LinkResult:
    """Link two hashed linkage files; write ``left_id,right_id,score`` to ``output`` (CSV) if given, every
    candidate pair to ``candidates_path`` and the run's statistics (JSON) to ``stats_path``.

    ``method``: ``"auto"`` (EM, falling back to the plain threshold when EM cannot be trusted), ``"em"`` (EM or
    an error) or ``"threshold"`` (mean field similarity only). ``threshold`` defaults to 0.5 (posterior) for
    EM and 0.85 (mean similarity) for the fallback. ``term_frequency``: adjust exact agreements by the frequency
    of the agreed value (:mod:`matchkit.link.tf`; the fields the schema names, by default names and texts).

    ``partitions`` / ``scheduler`` (:mod:`matchkit.runtime.cluster`): with either, the link runs in partitions
    (:mod:`matchkit.link.partitioned`: memory bounded by a partition, spill files beside ``output``) and writes the
    same files byte for byte; ``partitions`` defaults to the scheduler's workers.
    """
    check_method(method, threshold)
    for target, label in ((output, "pairs output"), (candidates_path, "candidates output"),
                          (stats_path, "statistics output")):
        if target is not None:
            check_output_path(Path(target), label)
    with ThreadPoolExecutor(max_workers=2) as pool:  # digest checks (hashlib, file reads) release the GIL
        left_file, right_file = pool.map(open_hashed, (left_path, right_path))
    left_layout, right_layout = linkage_layout(left_file), linkage_layout(right_file)
    check_compatible([left_file, right_file])
    names = (left_file.path.name, right_file.path.name)
    plans = plan_fields(left_layout, right_layout, names)
    passes = plan_passes(left_layout, right_layout, names)
    terms = layout_terms(left_layout, right_layout, [plan.name for plan in plans], names) if term_frequency else []

    if partitions is not None or scheduler is not None:
        return _link_partitioned(left_file, right_file, (left_layout, right_layout), plans, passes, terms, output,
                                 partitions=partitions, scheduler=scheduler, threshold=threshold,
                                 one_to_one=one_to_one, method=method, candidates_path=candidates_path,
                                 stats_path=stats_path, max_block_size=max_block_size, random_pairs=random_pairs,
                                 seed=seed, progress=progress)
    started = time.perf_counter()

    def load(hashed: HashedFile, layout: LinkageLayout) -> LinkSide:
        id_column = layout.record_id or LINE_COLUMN
        tokens, filters = side_columns(plans, passes)
        return load_side(hashed.read([id_column, *tokens, *filters]), id_column, plans, passes)

    with ThreadPoolExecutor(max_workers=2) as pool:  # Parquet decoding and numpy conversion release the GIL
        left_side, right_side = pool.map(load, (left_file, right_file), (left_layout, right_layout))
    result = link_tables(left_side, right_side, plans, passes, threshold=threshold, one_to_one=one_to_one,
                         method=method, max_block_size=max_block_size, random_pairs=random_pairs, seed=seed,
                         keep_candidates=candidates_path is not None, load_seconds=time.perf_counter() - started,
                         progress=progress, terms=terms)
    _publish(result, output, candidates_path, stats_path)
    return result


def _link_partitioned(left_file: HashedFile, right_file: HashedFile, layouts: tuple[LinkageLayout, LinkageLayout],
                      plans: list[FieldPlan], passes: list[BlockingPass], terms: list[TfTerm],
                      output: str | Path | None, *, partitions: int | None, scheduler: str | Scheduler | None,
                      candidates_path: str | Path | None, stats_path: str | Path | None,
                      **options: Any) -> LinkResult:
    from matchkit.link.partitioned import link_partitioned, make_workdir, remove_workdir
    from matchkit.runtime.cluster import open_runner

    workdir = make_workdir(output)
    try:
        with open_runner(scheduler) as runner:
            result = link_partitioned(
                runner, (str(left_file.path), str(right_file.path)),
                tuple(layout.record_id or LINE_COLUMN for layout in layouts),  # type: ignore[arg-type]
                (left_file.manifest.rows_hashed, right_file.manifest.rows_hashed), plans, passes,
                partitions=partitions or runner.workers, workdir=workdir, terms=terms,
                keep_candidates=candidates_path is not None, **options)
            _publish(result, output, candidates_path, stats_path)
    finally:
        remove_workdir(workdir)
    return result


def _publish(result: LinkResult, output: str | Path | None, candidates_path: str | Path | None,
             stats_path: str | Path | None) -> None:
    published: list[Path] = []
    try:  # a failed run leaves none of its outputs: those already published are taken back
        if candidates_path is not None and result.candidates is not None:
            published.append(write_pairs_csv(Path(candidates_path), "candidates output",
                                             result.candidates.chunks(CSV_CHUNK_ROWS)))
            result.candidates = None  # tens of millions of pairs: not kept past their file
        if output is not None:
            result.output = Path(output)
            published.append(write_pairs_csv(result.output, "pairs output",
                                             [(result.left_ids, result.right_ids, result.scores)]))
        if stats_path is not None:
            with AtomicFile(stats_path, "statistics output", encoding="utf-8", mode=0o644) as stats_file:
                stats_file.handle.write(json.dumps(result.stats.to_json(), indent=2, default=float) + "\n")
    except BaseException:
        remove_published(*published)
        raise


def linkage_layout(hashed: HashedFile, command: str = "link") -> LinkageLayout:
    """The file's linkage layout; a file hashed with a source schema is refused, naming it and ``command``."""
    if hashed.manifest.linkage is None:
        raise ManifestError(
            f"is a hashed '{hashed.source}' file, not a linkage file: 'matchkit {command}' takes files hashed with "
            "a linkage schema (kind = \"link\", e.g. the built-in febrl: matchkit schema show febrl)", path=hashed.path)
    return hashed.manifest.linkage


def write_pairs_csv(path: Path, label: str, parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    """``left_id,right_id,score`` CSV written atomically, a part at a time; returns the published path."""
    with AtomicFile(path, label, encoding="utf-8", newline="") as target:
        writer = csv.writer(target.handle, lineterminator="\n")  # quotes an id only when it needs it, like pandas
        writer.writerow(["left_id", "right_id", "score"])
        for left_ids, right_ids, scores in parts:
            texts = ["" if math.isnan(score) else f"{score:.6f}" for score in scores.tolist()]
            writer.writerows(zip(left_ids.tolist(), right_ids.tolist(), texts))
    return path
