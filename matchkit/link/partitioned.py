"""``matchkit link --partitions N``: the link of :mod:`matchkit.link.engine` with memory bounded by a partition.

The same pairs, scores and order as :func:`matchkit.link.engine.link_tables`, byte for byte in the written files,
whatever N and whatever scheduler runs the tasks (docs/DESIGN.md, "Partitioned link"). Every task is a top-level
function of a :class:`Job` (paths and numbers, picklable) and a partition number; big results go to spill files in
the job's work directory, tasks return small summaries.

1. **Scatter** (a task per side, one sequential read of each input): every record goes, with all its columns, to
   the bucket ``hash(key) % N`` of each blocking pass it has a key in; the values the global counts need (each exact
   field's token, each term-frequency value) go to their own buckets; the few records the model samples (the
   repeated-field test, the random pairs for u) are kept aside.
2. **Counts** (a task per bucket): each pass's frequent keys (held by more than ``max_block_size`` right records),
   each exact field's chance agreement ``sum_v c_left(v) c_right(v)`` (an integer: exact in any order) and each
   term's ``ln u_v`` per value (value by value, the formula of :func:`matchkit.link.tf.value_log_u`).
3. **Compare** (a task per pass and bucket): the pass's pairs in that bucket (:func:`matchkit.link.blocking.block_pass`
   on the bucket's records: a key's records are all in its bucket, so its block size is the global one), minus the
   pairs an earlier pass finds (they share that pass's key, and it is not frequent): each candidate pair is compared
   once, in the first pass that finds it, which is the union the single run takes. Levels, similarities, the
   passes whose key the pair shares and each term's ``ln u_v`` of the pair are spilled; the EM sessions' distinct
   level patterns are counted.
4. **Model** (here): EM over the merged pattern counts (:func:`matchkit.link.em.merge_patterns`: exact), u from
   the sampled random pairs; the prior's fixed point sums match probabilities over all pairs with
   :func:`matchkit.link.em.exact_sum` (a task per partition per step), as the single run does.
5. **Score** (a task per partition): scores, the links above the threshold (small: returned), and with
   ``--candidates`` every scored pair, bucketed by left record range so that the file is written in (left, right)
   order a range at a time. One-to-one and the final order are global, over the links.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from matchkit.errors import MatchkitError
from matchkit.io.hashed.reader import open_hashed
from matchkit.link.blocking import block_pass
from matchkit.link.em import (
    FLOOR,
    distinct_patterns,
    estimate_patterns,
    exact_float,
    exact_sum,
    level_frequencies,
    merge_patterns,
)
from matchkit.link.engine import (
    MIN_SESSION_PAIRS,
    BlockingPass,
    FieldPlan,
    LinkResult,
    LinkSide,
    Progress,
    _level_table,
    _model,
    comparison_rows,
    comparison_table,
    load_side,
    session_blocked,
    shares_key,
    side_columns,
)
from matchkit.link.repeats import SAMPLE_RECORDS, describe, mask_repeated, repeated_fields
from matchkit.link.scoring import LinkageModel, match_weights, probability
from matchkit.link.select import one_to_one_rows
from matchkit.link.stats import LinkStats
from matchkit.link.tf import TfTerm, adjust_pairs, value_keys, value_log_u
from matchkit.link.token_columns import ScalarTokens, TokenFrame, arrow_tokens
from matchkit.runtime.cluster import Runner
from matchkit.settings import EM_THRESHOLD, FALLBACK_THRESHOLD

SIDES = ("left", "right")
POSITION = "__position"  # the record's row number in its input, added to every scattered record
BATCH_ROWS = 1 << 16


@dataclass(frozen=True)
class Job:
    """What every task needs: paths and numbers only (it crosses to worker processes)."""

    workdir: str
    inputs: tuple[str, str]
    id_columns: tuple[str, str]
    plans: tuple[FieldPlan, ...]
    passes: tuple[BlockingPass, ...]
    terms: tuple[TfTerm, ...]
    partitions: int
    max_block_size: int
    records: tuple[int, int] = (0, 0)
    valid_values: dict[str, tuple[int, int]] = field(default_factory=dict)  # per term: records with a value
    frequent: dict[str, np.ndarray] = field(default_factory=dict)  # per pass: its skipped keys
    repeats: dict[str, list[str]] = field(default_factory=dict)

    def path(self, *parts: object) -> Path:
        return Path(self.workdir, "-".join(str(part) for part in parts))

    @property
    def columns(self) -> list[str]:
        tokens, filters = side_columns(list(self.plans), list(self.passes))
        return list(dict.fromkeys([*tokens, *filters]))

    @property
    def exact_fields(self) -> list[FieldPlan]:
        return [plan for plan in self.plans if plan.exact]

    def term_columns(self, term: TfTerm) -> list[str]:
        by_name = {plan.name: plan for plan in self.plans}
        return [by_name[name].exact or "" for name in term.fields]


def _bucket(keys: np.ndarray, partitions: int) -> np.ndarray:
    return (np.asarray(keys, dtype=np.int64).view(np.uint64) % np.uint64(partitions)).astype(np.int64)


def _split(buckets: np.ndarray, partitions: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(bucket, positions)`` for every non-empty bucket, positions ascending."""
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange(partitions + 1))
    for bucket in range(partitions):
        if bounds[bucket + 1] > bounds[bucket]:
            yield bucket, order[bounds[bucket]:bounds[bucket + 1]]


def _read_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _append(path: Path, values: np.ndarray) -> None:
    with open(path, "ab") as handle:
        handle.write(np.ascontiguousarray(values, dtype=np.int64).tobytes())


def _load(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.int64) if path.exists() else np.zeros(0, dtype=np.int64)


# ---- 1. scatter ----------------------------------------------------------------------------------------------
def scatter(item: tuple[Job, int]) -> dict[str, Any]:
    """Route one side's records to the passes' buckets; returns its record count and value counts."""
    job, side = item
    hashed = open_hashed(job.inputs[side], check_digest=False)  # the caller checked the digests
    columns = [job.id_columns[side], *job.columns]
    wanted = np.load(job.path("sample", side, "rows.npy"))  # the random pairs' records: every column
    repeat_wanted = np.load(job.path("repeat", side, "rows.npy"))  # the repeated-field test's: name tokens only
    repeat_columns = [plan.exact or "" for plan in job.plans if plan.exact and plan.type == "name"] + [POSITION]
    repeat_kept: list[pa.RecordBatch] = []
    writers: dict[tuple[int, int], pa.ipc.RecordBatchFileWriter] = {}
    kept: list[pa.RecordBatch] = []
    valid_values = dict.fromkeys([term.name for term in job.terms], 0)
    exact_valid = dict.fromkeys([plan.name for plan in job.exact_fields], 0)
    offset, schema = 0, None
    try:
        for batch in hashed.iter_batches(columns, BATCH_ROWS):
            count = batch.num_rows
            positions = np.arange(offset, offset + count, dtype=np.int64)
            batch = batch.append_column(POSITION, pa.array(positions))
            schema = batch.schema
            frame = TokenFrame.from_columns(count, {name: arrow_tokens(batch.column(name))
                                                    for name in side_columns(list(job.plans), list(job.passes))[0]})
            for index, blocking_pass in enumerate(job.passes):
                tokens = frame.column(blocking_pass.column)
                assert isinstance(tokens, ScalarTokens)
                rows = np.flatnonzero(tokens.valid)
                for bucket, at in _split(_bucket(tokens.keys[rows], job.partitions), job.partitions):
                    writer = writers.get((index, bucket))
                    if writer is None:
                        writer = writers[(index, bucket)] = pa.ipc.new_file(
                            str(job.path("rows", side, index, bucket)), schema)
                    writer.write_batch(batch.take(pa.array(rows[at])))
            for plan in job.exact_fields:
                tokens = frame.column(plan.exact or "")
                assert isinstance(tokens, ScalarTokens)
                values = tokens.keys[tokens.valid]
                exact_valid[plan.name] += len(values)
                for bucket, at in _split(_bucket(values, job.partitions), job.partitions):
                    _append(job.path("exact", side, plan.name, bucket), values[at])
            for term in job.terms:
                keys, valid = value_keys(frame, job.term_columns(term))
                values = keys[valid]
                valid_values[term.name] += len(values)
                for bucket, at in _split(_bucket(values, job.partitions), job.partitions):
                    _append(job.path("tf", side, term.name, bucket), values[at])
            lo, hi = np.searchsorted(wanted, [offset, offset + count])
            if hi > lo:
                kept.append(batch.take(pa.array(wanted[lo:hi] - offset)))
            lo, hi = np.searchsorted(repeat_wanted, [offset, offset + count])
            if hi > lo:
                repeat_kept.append(batch.select(repeat_columns).take(pa.array(repeat_wanted[lo:hi] - offset)))
            offset += count
        if schema is None:  # an empty input: empty files of the right columns
            table = hashed.read(columns)
            schema = table.schema.append(pa.field(POSITION, pa.int64()))
        for index in range(len(job.passes)):
            for bucket in range(job.partitions):
                if (index, bucket) not in writers:
                    writers[(index, bucket)] = pa.ipc.new_file(str(job.path("rows", side, index, bucket)), schema)
    finally:
        for writer in writers.values():
            writer.close()
    with pa.ipc.new_file(str(job.path("sample", side, "table")), schema) as writer:
        for part in kept:
            writer.write_batch(part)
    with pa.ipc.new_file(str(job.path("repeat", side, "table")),
                         pa.schema([schema.field(name) for name in repeat_columns])) as writer:
        for part in repeat_kept:
            writer.write_batch(part)
    return {"records": offset, "valid_values": valid_values, "exact_valid": exact_valid}


# ---- 2. counts -----------------------------------------------------------------------------------------------
def count_bucket(item: tuple[Job, int]) -> dict[str, Any]:
    """One bucket's frequent keys per pass, exact-agreement products per exact field and term ``ln u_v``."""
    job, bucket = item
    frequent: dict[str, np.ndarray] = {}
    skipped: dict[str, tuple[int, int]] = {}
    for index, blocking_pass in enumerate(job.passes):
        keys = []
        for side in range(2):
            table = _read_table(job.path("rows", side, index, bucket))
            tokens = arrow_tokens(table.column(blocking_pass.column))
            assert isinstance(tokens, ScalarTokens)
            keys.append(tokens.keys[tokens.valid])
        left_keys, left_counts = np.unique(keys[0], return_counts=True)
        right_keys, right_counts = np.unique(keys[1], return_counts=True)
        _, at_left, at_right = np.intersect1d(left_keys, right_keys, assume_unique=True, return_indices=True)
        hot = right_counts[at_right] > job.max_block_size
        frequent[blocking_pass.name] = right_keys[at_right][hot]
        skipped[blocking_pass.name] = (int(hot.sum()), int((right_counts[at_right][hot].astype(np.int64)
                                                            * left_counts[at_left][hot]).sum()))
    shared: dict[str, int] = {}
    for plan in job.exact_fields:
        left_keys, left_counts = np.unique(_load(job.path("exact", 0, plan.name, bucket)), return_counts=True)
        right_keys, right_counts = np.unique(_load(job.path("exact", 1, plan.name, bucket)), return_counts=True)
        _, at_left, at_right = np.intersect1d(left_keys, right_keys, assume_unique=True, return_indices=True)
        shared[plan.name] = int((left_counts[at_left].astype(np.int64) * right_counts[at_right]).sum())
    values: dict[str, int] = {}
    for term in job.terms:
        left, right = _load(job.path("tf", 0, term.name, bucket)), _load(job.path("tf", 1, term.name, bucket))
        distinct, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
        left_counts = np.bincount(inverse[:len(left)], minlength=len(distinct)).astype(np.float64)
        right_counts = np.bincount(inverse[len(left):], minlength=len(distinct)).astype(np.float64)
        log_u, _ = value_log_u(left_counts, right_counts, *job.valid_values[term.name])
        np.save(job.path("tfu", term.name, bucket, "keys.npy"), distinct)
        np.save(job.path("tfu", term.name, bucket, "logu.npy"), log_u)
        values[term.name] = len(distinct)
    return {"frequent": frequent, "skipped": skipped, "shared": shared, "values": values}


# ---- 3. compare ----------------------------------------------------------------------------------------------
def _side(job: Job, side: int, index: int, bucket: int) -> tuple[LinkSide, np.ndarray]:
    table = _read_table(job.path("rows", side, index, bucket))
    loaded = load_side(table, job.id_columns[side], list(job.plans), list(job.passes))
    return loaded, table.column(POSITION).to_numpy()


def _pair_log_u(job: Job, term: TfTerm, left: TokenFrame, right: TokenFrame, lpos: np.ndarray,
                rpos: np.ndarray) -> np.ndarray:
    """Per pair, ``ln u_v`` of the value both records hold (NaN where they do not hold the same one)."""
    columns = job.term_columns(term)
    left_keys, left_valid = value_keys(left, columns)
    right_keys, right_valid = value_keys(right, columns)
    lk, rk = left_keys[lpos], right_keys[rpos]
    same = left_valid[lpos] & right_valid[rpos] & (lk == rk)
    out = np.full(len(lpos), np.nan)
    needed = np.unique(lk[same])
    found = np.full(len(needed), np.nan)
    for bucket, at in _split(_bucket(needed, job.partitions), job.partitions):
        keys = np.load(job.path("tfu", term.name, bucket, "keys.npy"), mmap_mode="r")
        log_u = np.load(job.path("tfu", term.name, bucket, "logu.npy"), mmap_mode="r")
        where = np.searchsorted(keys, needed[at])
        found[at] = log_u[where]
    out[same] = found[np.searchsorted(needed, lk[same])]
    return out


def compare_bucket(item: tuple[Job, int, int]) -> dict[str, Any]:
    """Pass ``index``'s new pairs in ``bucket``: compared, spilled, their EM pattern counts returned."""
    job, index, bucket = item
    started = time.perf_counter()
    plans, passes = list(job.plans), list(job.passes)
    (left, left_at), (right, right_at) = _side(job, 0, index, bucket), _side(job, 1, index, bucket)
    lframe, rframe = left.frame, right.frame
    lpos, rpos, pass_stats = block_pass(lframe, rframe, passes[index], max_block_size=job.max_block_size)
    keep = np.ones(len(lpos), dtype=bool)
    for earlier in passes[:index]:  # a pair is compared in the first pass that finds it
        lcol, rcol = lframe.column(earlier.column), rframe.column(earlier.column)
        assert isinstance(lcol, ScalarTokens) and isinstance(rcol, ScalarTokens)
        shared = shares_key(lframe, rframe, earlier, lpos, rpos)
        frequent = job.frequent.get(earlier.name)
        if frequent is not None and len(frequent):
            shared &= ~np.isin(lcol.keys[lpos], frequent)
        keep &= ~shared
    lpos, rpos = lpos[keep], rpos[keep]
    order = np.lexsort((right_at[rpos], left_at[lpos]))
    lpos, rpos = lpos[order], rpos[order]
    blocking_seconds = time.perf_counter() - started

    started = time.perf_counter()
    rows = comparison_rows(plans, lframe, rframe, left.filters, right.filters)
    left.filters = right.filters = {}
    levels, similarities = comparison_table(plans, lframe, rframe, lpos, rpos, rows)
    compare_seconds = time.perf_counter() - started
    top = [plan.n_levels - 1 for plan in plans]
    masked = mask_repeated(levels, {plan.name: i for i, plan in enumerate(plans)}, top, job.repeats) \
        if job.repeats else 0
    flags = np.zeros(len(lpos), dtype=np.int64)
    sessions: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    n_levels = [plan.n_levels for plan in plans]
    for number, blocking_pass in enumerate(passes):
        in_pass = shares_key(lframe, rframe, blocking_pass, lpos, rpos)
        flags |= in_pass.astype(np.int64) << number
        session_levels = levels[in_pass]
        session_levels[:, session_blocked(plans, blocking_pass, job.repeats)] = -1
        patterns, counts = distinct_patterns(session_levels, n_levels)
        sessions[blocking_pass.name] = (patterns, counts, int(in_pass.sum()))
    columns: dict[str, Any] = {
        "l": pa.array(left_at[lpos]), "r": pa.array(right_at[rpos]),
        "lid": pa.array(left.ids[lpos].tolist() if left.ids.dtype == object else left.ids[lpos]),
        "rid": pa.array(right.ids[rpos].tolist() if right.ids.dtype == object else right.ids[rpos]),
        "flags": pa.array(flags)}
    for number in range(len(plans)):
        columns[f"level{number}"] = pa.array(levels[:, number])
        columns[f"similarity{number}"] = pa.array(similarities[:, number])
    for number, term in enumerate(job.terms):
        columns[f"tf{number}"] = pa.array(_pair_log_u(job, term, lframe, rframe, lpos, rpos))
    table = pa.table(columns)
    with pa.ipc.new_file(str(job.path("pairs", index, bucket)), table.schema) as writer:
        writer.write_table(table)
    return {"pairs": len(lpos), "pass_candidates": pass_stats.candidates, "masked": masked, "sessions": sessions,
            "compare_seconds": compare_seconds, "blocking_seconds": blocking_seconds}


# ---- 4./5. model and scores ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParameters:
    """A Fellegi–Sunter model as plain numbers (the model itself holds functions: it does not pickle)."""

    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float

    def model(self, plans: Sequence[FieldPlan]) -> LinkageModel:
        return _model(list(plans), list(self.m), list(self.u), prior=self.prior)


def _pairs(job: Job, index: int, bucket: int) -> pa.Table:
    return _read_table(job.path("pairs", index, bucket))


def _levels(job: Job, table: pa.Table) -> np.ndarray:
    levels = np.empty((table.num_rows, len(job.plans)), dtype=np.int8)
    for number in range(len(job.plans)):
        levels[:, number] = table.column(f"level{number}").to_numpy()
    return levels


def _adjust(job: Job, table: pa.Table, levels: np.ndarray, model: LinkageModel) -> np.ndarray:
    if not job.terms:
        return np.zeros(len(levels))
    exact_u = tuple(f.u[-1] for f in model.fields)
    return adjust_pairs(list(job.terms), [table.column(f"tf{n}").to_numpy() for n in range(len(job.terms))],
                        {plan.name: i for i, plan in enumerate(job.plans)}, [p.n_levels - 1 for p in job.plans],
                        [float(np.log(u)) for u in exact_u], levels)


def prior_sum(item: tuple[Job, int, int, ModelParameters, float]) -> int:
    """The exact sum over a partition's pairs of P(match) under the start model shifted to ``logit``."""
    job, index, bucket, parameters, logit = item
    cached = job.path("bayes", index, bucket, ".npy")  # the same start model every step: weights made once
    if cached.exists():
        bayes = np.load(cached)
    else:
        table = _pairs(job, index, bucket)
        levels = _levels(job, table)
        model = parameters.model(job.plans)
        bayes = match_weights(_level_table(list(job.plans), levels), model) - model.prior_weight
        bayes = bayes + _adjust(job, table, levels, model)
        np.save(cached, bayes)
    return exact_sum(probability(bayes + logit)) if len(bayes) else 0


def score_bucket(item: tuple[Job, int, int, ModelParameters | None, float, bool]) -> dict[str, np.ndarray]:
    """A partition's links (score >= threshold); with ``candidates``, every scored pair spilled by left range."""
    job, index, bucket, parameters, threshold, candidates = item
    table = _pairs(job, index, bucket)
    levels = _levels(job, table)
    if parameters is not None:
        model = parameters.model(job.plans)
        scores = probability(match_weights(_level_table(list(job.plans), levels), model)
                             + _adjust(job, table, levels, model))
    else:
        similarities = np.empty((table.num_rows, len(job.plans)), dtype=np.float32)
        for number in range(len(job.plans)):
            similarities[:, number] = table.column(f"similarity{number}").to_numpy()
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(similarities, axis=1) if similarities.size else np.zeros(len(levels))
        scores = np.nan_to_num(mean, nan=0.0)
    lpos = table.column("l").to_numpy()
    if candidates:
        ranges = lpos * job.partitions // max(job.records[0], 1)
        scored = table.select(["l", "r", "lid", "rid"]).append_column("score", pa.array(scores))
        for part, at in _split(ranges, job.partitions):
            with pa.ipc.new_file(str(job.path("scored", part, index, bucket)), scored.schema) as writer:
                writer.write_table(scored.take(pa.array(at)))
    keep = np.flatnonzero(scores >= threshold)
    return {"l": lpos[keep], "r": table.column("r").to_numpy()[keep], "score": scores[keep],
            "flags": table.column("flags").to_numpy()[keep], "lid": _ids(table.column("lid").take(pa.array(keep))),
            "rid": _ids(table.column("rid").take(pa.array(keep)))}


def _ids(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Record ids as :func:`matchkit.link.engine.load_side` holds them."""
    return column.to_numpy() if pa.types.is_integer(column.type) else np.asarray(column.to_pylist(), dtype=object)


@dataclass
class PartitionedCandidates:
    """Every scored candidate pair, read back a left record range at a time in (left, right) order."""

    job: Job
    cells: list[tuple[int, int]]

    def chunks(self, rows: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for part in range(self.job.partitions):
            tables = [_read_table(p) for index, bucket in self.cells
                      if (p := self.job.path("scored", part, index, bucket)).exists()]
            if not tables:
                continue
            table = pa.concat_tables(tables)
            order = np.lexsort((table.column("r").to_numpy(), table.column("l").to_numpy()))
            table = table.take(pa.array(order))
            yield _ids(table.column("lid")), _ids(table.column("rid")), table.column("score").to_numpy()


# ---- the driver ----------------------------------------------------------------------------------------------
def _sample_rows(count: int, seed: int) -> np.ndarray:
    if count <= SAMPLE_RECORDS:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, SAMPLE_RECORDS, replace=False))


def link_partitioned(
    runner: Runner,
    inputs: tuple[str, str],
    id_columns: tuple[str, str],
    records: tuple[int, int],
    plans: list[FieldPlan],
    passes: list[BlockingPass],
    *,
    partitions: int,
    workdir: str | Path,
    threshold: float | None = None,
    one_to_one: bool = False,
    method: str = "auto",
    max_block_size: int,
    random_pairs: int,
    seed: int = 0,
    keep_candidates: bool = False,
    progress: Progress | None = None,
    terms: Sequence[TfTerm] = (),
) -> LinkResult:
    """:func:`matchkit.link.engine.link_tables` over two hashed files (``inputs``, their record counts
    ``records``), in ``partitions`` parts run by ``runner``, spilling to ``workdir`` (left for the caller to
    remove). Candidates, when kept, are read back from ``workdir``: use them before removing it."""
    say = progress or (lambda _step: None)
    stats: dict[str, Any] = {"fields": [p.name for p in plans]}
    started = time.perf_counter()
    job = Job(str(workdir), inputs, id_columns, tuple(plans), tuple(passes), tuple(terms), partitions,
              max_block_size, records)
    n_left, n_right = records
    # the records the model samples, chosen as the single run chooses them (positions are global)
    rng = np.random.default_rng(seed)
    sample = min(random_pairs, n_left * n_right)
    random_left, random_right = rng.integers(0, n_left, sample), rng.integers(0, n_right, sample)
    repeat_rows = (_sample_rows(n_left, seed), _sample_rows(n_right, seed + 1))
    name_fields = [(plan.name, plan.exact) for plan in plans if plan.exact and plan.type == "name"]
    for side, randoms in enumerate((random_left, random_right)):
        np.save(job.path("sample", side, "rows.npy"), np.unique(randoms).astype(np.int64))
        repeat_wanted: np.ndarray | list[int] = repeat_rows[side] if len(name_fields) >= 2 and method != "threshold" else []
        np.save(job.path("repeat", side, "rows.npy"), np.asarray(repeat_wanted, dtype=np.int64))
    scattered = runner.map(scatter, [(job, 0), (job, 1)])
    for side, summary in enumerate(scattered):
        if summary["records"] != records[side]:
            raise MatchkitError(f"{Path(inputs[side]).name}: read {summary['records']:,} records where its "
                                f"manifest says {records[side]:,}")
    valid_values = {term.name: (scattered[0]["valid_values"][term.name], scattered[1]["valid_values"][term.name])
                    for term in terms}
    job = replace(job, valid_values=valid_values)
    counted = runner.map(count_bucket, [(job, bucket) for bucket in range(partitions)])
    frequent = {p.name: np.sort(np.concatenate([c["frequent"][p.name] for c in counted])) for p in passes}
    stats["load_seconds"] = time.perf_counter() - started
    stats.update(left_records=n_left, right_records=n_right)
    say(f"scattered {n_left:,} x {n_right:,} records to {partitions} partitions")

    samples = [_read_table(job.path("sample", side, "table")) for side in range(2)]
    sample_sides = [load_side(table, id_columns[side], plans, passes) for side, table in enumerate(samples)]
    sample_at = [table.column(POSITION).to_numpy() for table in samples]
    repeats: dict[str, list[str]] = {}
    if method != "threshold" and len(name_fields) >= 2:
        frames = []
        for side in range(2):
            table = _read_table(job.path("repeat", side, "table"))
            frames.append(TokenFrame.from_columns(table.num_rows, {
                str(column): arrow_tokens(table.column(str(column))) for _, column in name_fields}))
        repeats = repeated_fields(name_fields, frames[0], frames[1], seed=seed)
    job = replace(job, frequent=frequent, repeats=repeats)

    cells = [(index, bucket) for index in range(len(passes)) for bucket in range(partitions)]
    compared = runner.map(compare_bucket, [(job, index, bucket) for index, bucket in cells])
    total = sum(c["pairs"] for c in compared)
    stats.update(
        candidates=total,
        blocking_seconds=sum(c["blocking_seconds"] for c in compared),
        passes={p.name: {"candidates": sum(c["pass_candidates"] for c, (i, _) in zip(compared, cells) if i == n),
                         "skipped_keys": sum(c["skipped"][p.name][0] for c in counted),
                         "skipped_pairs": sum(c["skipped"][p.name][1] for c in counted)}
                for n, p in enumerate(passes)},
        reduction_ratio=1.0 - total / max(n_left * n_right, 1),
    )
    seconds = sum(c["compare_seconds"] for c in compared)
    stats.update(compare_seconds=seconds, comparisons_per_second=total * len(plans) / seconds if seconds > 0 else None)
    say(f"{total:,} candidate pairs from {len(passes)} blocking passes")

    started = time.perf_counter()
    parameters: ModelParameters | None = None
    if method == "em" and not total:
        raise MatchkitError("no candidate pairs: the Fellegi-Sunter model cannot be estimated (and there is "
                            "nothing to link)")
    if method != "threshold" and total:
        if repeats:
            stats["repeated_fields"] = {"fields": repeats, "levels_masked": sum(c["masked"] for c in compared)}
            stats.setdefault("warnings", []).extend(describe(repeats))
        if terms:
            stats["term_frequencies"] = {t.name: {"fields": list(t.fields),
                                                  "values": sum(c["values"][t.name] for c in counted)}
                                         for t in terms}
        u = _u_probabilities(plans, sample_sides, sample_at, random_left, random_right, counted, scattered)
        parameters = _estimate(runner, job, cells, compared, u, stats)
        if parameters is None and method == "em":
            raise MatchkitError("the Fellegi-Sunter model could not be estimated from these files (EM did not "
                                "converge or does not separate matches); use --method threshold")
    used = "em" if parameters is not None else "threshold"
    if threshold is None:
        threshold = EM_THRESHOLD if used == "em" else FALLBACK_THRESHOLD
    stats["threshold"] = threshold
    scored = runner.map(score_bucket, [(job, index, bucket, parameters, threshold, keep_candidates)
                                       for index, bucket in cells])
    stats.update(method=used, score_seconds=time.perf_counter() - started)

    links = {key: np.concatenate([part[key] for part in scored]) for key in ("l", "r", "score", "flags", "lid", "rid")}
    if links["lid"].dtype != object and any(part["lid"].dtype == object for part in scored):
        links["lid"] = links["lid"].astype(object)
    lpos, rpos, scores = links["l"], links["r"], links["score"]
    keep = np.arange(len(lpos))
    if one_to_one:
        keep = one_to_one_rows(lpos, rpos, scores)
    order = keep[np.lexsort((rpos[keep], -scores[keep], lpos[keep]))]
    stats["links"] = len(order)
    stats["links_found_by_pass"] = {p.name: int(((links["flags"][order] >> n) & 1).sum())
                                    for n, p in enumerate(passes)}
    return LinkResult(links["lid"][order], links["rid"][order], scores[order], None, LinkStats.from_record(stats),
                      PartitionedCandidates(job, cells) if keep_candidates else None)  # type: ignore[arg-type]


def _u_probabilities(plans: list[FieldPlan], sides: list[LinkSide], sample_at: list[np.ndarray],
                     random_left: np.ndarray, random_right: np.ndarray, counted: list[dict[str, Any]],
                     scattered: list[dict[str, Any]]) -> list[tuple[float, ...]]:
    """:func:`matchkit.link.engine.u_probabilities` from the sampled records and the buckets' exact counts."""
    order = np.argsort(random_left, kind="stable")
    lpos = np.searchsorted(sample_at[0], random_left[order])
    rpos = np.searchsorted(sample_at[1], random_right[order])
    left, right = sides
    rows = comparison_rows(plans, left.frame, right.frame, left.filters, right.filters)
    random_levels, _ = comparison_table(plans, left.frame, right.frame, lpos, rpos, rows)
    sampled = level_frequencies(random_levels, [plan.n_levels for plan in plans])
    out = []
    for index, plan in enumerate(plans):
        u = np.asarray(sampled[index])
        if plan.exact is not None:
            shared = sum(c["shared"][plan.name] for c in counted)
            valid = [s["exact_valid"][plan.name] for s in scattered]
            agree = float(shared) / (float(valid[0]) * float(valid[1])) if valid[0] and valid[1] else 0.0
            agree = max(agree, FLOOR)
            u = np.append(u[:-1] / max(u[:-1].sum(), FLOOR) * (1.0 - agree), agree)
        out.append(tuple(u.tolist()))
    return out


def _estimate(runner: Runner, job: Job, cells: list[tuple[int, int]], compared: list[dict[str, Any]],
              u: list[tuple[float, ...]], stats: dict[str, Any]) -> ModelParameters | None:
    """:func:`matchkit.link.engine.estimate_model` over the partitions' pattern counts and exact sums."""
    plans = list(job.plans)
    n_levels = [plan.n_levels for plan in plans]
    m_sum = [np.zeros(count) for count in n_levels]
    m_weight = np.zeros(len(plans))
    sessions: dict[str, Any] = {}
    for blocking_pass in job.passes:
        pairs = sum(c["sessions"][blocking_pass.name][2] for c in compared)
        blocked = session_blocked(plans, blocking_pass, job.repeats)
        if pairs < MIN_SESSION_PAIRS or len(blocked) == len(plans):
            continue
        patterns, counts = merge_patterns([c["sessions"][blocking_pass.name][:2] for c in compared], n_levels)
        fitted = estimate_patterns(patterns, counts, n_levels, u, prior=0.5)
        sessions[blocking_pass.name] = {"pairs": pairs, "iterations": fitted.iterations,
                                        "converged": fitted.converged, "separating": fitted.separating,
                                        "match_share": fitted.prior}
        if not (fitted.converged and fitted.separating):
            continue
        matches = fitted.prior * float(pairs)
        for index in range(len(plans)):
            if index not in blocked:
                m_sum[index] += matches * np.asarray(fitted.m[index])
                m_weight[index] += matches
    stats["em"] = {"sessions": sessions, "u": {p.name: list(u_f) for p, u_f in zip(plans, u)}}
    if not (m_weight > 0).all():
        return None
    m = tuple(tuple((total / weight).tolist()) for total, weight in zip(m_sum, m_weight))
    n_left, n_right = job.records
    all_pairs = float(n_left) * float(n_right)
    start = ModelParameters(m, tuple(u), min(min(n_left, n_right) / max(all_pairs, 1.0), 0.5))
    prior = start.model(plans).prior
    for _ in range(50):
        logit = np.log(prior) - np.log1p(-prior)
        total = sum(runner.map(prior_sum, [(job, index, bucket, start, logit) for index, bucket in cells]))
        updated = float(np.clip(exact_float(total) / all_pairs, FLOOR / all_pairs, 0.5))
        if abs(updated - prior) <= 1e-9 * prior:
            break
        prior = updated
    stats["em"].update(m={p.name: list(m_f) for p, m_f in zip(plans, m)}, prior=prior,
                       expected_links=prior * all_pairs)
    return ModelParameters(m, tuple(u), prior)


def make_workdir(near: str | Path | None) -> Path:
    """A private spill directory beside ``near`` (the output: the same file system, shared with a cluster's
    workers when the output is)."""
    parent = Path(near).resolve().parent if near is not None else None
    return Path(tempfile.mkdtemp(prefix=".matchkit-link-", dir=parent))


def remove_workdir(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
