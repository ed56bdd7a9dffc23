"""`verify` partition by partition: memory bounded by a partition, flags byte-identical to the single run (SPEC §8).

The rules of :mod:`matchkit.verify` key every piece of evidence and every aggregate by a person: the claim's
subject (spells, first compulsory school month, death, out-of-pocket per patient-year, the household and marriage
pairs that contain the subject, competing claims for one child / parent / patient-year, duplicates), or the
taxpayer (the only-child certificate, the death that ends a marriage, one taxpayer's elderly_support total across
parents). So (docs/DESIGN.md "Partitioned verify"):

1. **Route.** Claim lines go to the partition of their subject token as given (the taxpayer's for a 'self' line
   with no subject, and for a line with no subject at all), and to a second spill by taxpayer token; each extract
   row goes to the partition of each person token it holds (a household or a marriage row can go to two). A token
   is an HMAC output: its first 8 bytes modulo N spread people evenly.
2. **Exact links** (per partition): the subject's token in an extract of its deduction, and the subject-name check
   (SPEC §5, issue #16) against the names that partition holds for that person.
3. **Fuzzy links** (here, once): only the queried lines (no exact link, or a name that disagrees: a few %), against
   the extract rows of the people sharing a blocking key with a query (:class:`matchkit.link.blocking.SharedKeys`),
   streamed from the hashed files: whatever partition their tokens fall in, the candidates are the single run's.
   A line linked to a person of another partition moves there.
4. **Taxpayer facts** (per taxpayer partition): the only-child certificate and the death date of each line's
   taxpayer, sent to the partition the line's rules run in.
5. **Rules** (per partition of the linked subject): everything of :func:`matchkit.verify.engine.rules_stage`; the
   linked elderly_support lines stop before their taxpayer-wide step and go, by taxpayer token, to
6. **the taxpayer pass**: one taxpayer's total across parents, in claims order, as the single run sums it.
7. **Merge** the flag parts back into claims order.

Spill files are Parquet in a temporary folder (beside the flags output when there is one), removed at the end
whether the run succeeds or fails. Tasks are top-level functions over a small :class:`Plan` and a partition number;
they run in this process or on Dask (:mod:`matchkit.runtime.cluster`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from matchkit.errors import MatchkitError
from matchkit.io.hashed.reader import HashedFile, pandas_types
from matchkit.runtime.cluster import Scheduler, open_runner
from matchkit.verify.engine import (
    LINKED_SOURCES,
    elderly_stage,
    exact_stage,
    fuzzy_stage,
    input_columns,
    rules_stage,
)
from matchkit.verify.evidence import ENTITIES, REQUIRED_COLUMNS, text_values, ymd_values
from matchkit.verify.interning import token_words
from matchkit.verify.linking import ENCODING_COLUMNS
from matchkit.verify.policy import load_policy

BATCH_ROWS = 1 << 16
BUFFERED_ROWS = 1 << 17  # rows a spill holds in memory across all its partitions before writing them out
SPILL_PREFIX = ".matchkit-verify-"
# Below this many claim lines a plain `verify` runs in one piece (the partitions would only cost time); above it,
# one partition per this many lines.
LINES_PER_PARTITION = 250_000


def default_partitions(claim_lines: int) -> int:
    """The partitions a `verify` without --partitions uses: one per LINES_PER_PARTITION claim lines."""
    return max(1, -(-claim_lines // LINES_PER_PARTITION))


# ---- partitions of tokens --------------------------------------------------------------------------------------
def token_partition(column: pd.Series | pa.Array | pa.ChunkedArray, partitions: int, *, name: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(partition per row, token present) of a column of 16-byte tokens: the first 8 bytes modulo ``partitions``."""
    series = column if isinstance(column, pd.Series) else pd.Series(
        pd.arrays.ArrowExtensionArray(column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])))
    words, present = token_words(series, name=name)
    part = (words[:, 0].view(np.uint64) % np.uint64(partitions)).astype(np.int64)
    return np.where(present, part, 0), present


# ---- spill files -------------------------------------------------------------------------------------------------
class Spill:
    """Rows routed to N partition files of one kind (``folder/{p}.parquet``), in the order they come."""

    def __init__(self, folder: Path, partitions: int) -> None:
        self.folder, self.partitions = folder, partitions
        folder.mkdir(parents=True, exist_ok=True)
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._buffers: dict[int, list[pa.Table]] = {}
        self._buffered: dict[int, int] = {}
        self._flush_rows = max(1024, BUFFERED_ROWS // partitions)
        self.schema: pa.Schema | None = None

    def add(self, table: pa.Table, part: np.ndarray) -> None:
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.partitions + 1))
        if len(order) and not np.array_equal(order, np.arange(len(order))):
            table = table.take(pa.array(order))
        for p in np.flatnonzero(np.diff(bounds)):
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            self._buffers.setdefault(int(p), []).append(table.slice(lo, hi - lo))
            self._buffered[int(p)] = self._buffered.get(int(p), 0) + hi - lo
            if self._buffered[int(p)] >= self._flush_rows:
                self._flush(int(p))

    def _flush(self, p: int) -> None:
        tables = self._buffers.pop(p, [])
        self._buffered[p] = 0
        if not tables:
            return
        writer = self._writers.get(p)
        if writer is None:
            assert self.schema is not None
            writer = self._writers[p] = pq.ParquetWriter(self.folder / f"{p}.parquet", self.schema,
                                                          compression="none")
        writer.write_table(pa.concat_tables(tables))

    def close(self, schema: pa.Schema | None = None) -> None:
        for p in list(self._buffers):
            self._flush(p)
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        schema = self.schema or schema
        if schema is not None:  # every partition has its file, maybe empty: readers need the columns
            for p in range(self.partitions):
                target = self.folder / f"{p}.parquet"
                if not target.exists():
                    pq.write_table(schema.empty_table(), target, compression="none")


def read_part(path: Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A spill file as pandas, with the dtypes the single run reads hashed files with."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    wanted = None if columns is None else [c for c in columns if c in names]
    table = parquet.read(columns=wanted)
    del parquet
    return table.to_pandas(types_mapper=pandas_types)


def read_parts(paths: list[Path], columns: Iterable[str] | None = None) -> pd.DataFrame:
    frames = [read_part(path, columns) for path in paths if path.exists()]
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# ---- the plan: what every task needs to know (small, picklable) ------------------------------------------------
@dataclass(frozen=True)
class Plan:
    folder: str
    partitions: int
    supplied: tuple[str, ...]  # extract sources of the run, in SOURCES order
    extract_files: tuple[tuple[str, int], ...]  # (source, spill index) per hashed extract file, in input order

    def path(self, *parts: object) -> Path:
        return Path(self.folder).joinpath(*(str(p) for p in parts))

    def extract_paths(self, source: str, p: int) -> list[Path]:
        return [self.path("ext", f"{source}-{i}", f"{p}.parquet") for name, i in self.extract_files if name == source]

    def sources(self, p: int, columns: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
        """Every supplied extract's rows of partition ``p`` (maybe none: an empty frame with its columns)."""
        out = {}
        for source in (s for s in self.supplied if s in columns):
            frame = read_parts(self.extract_paths(source, p), columns[source])
            if not len(frame.columns):
                frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns[source]})
            out[source] = frame
        return out


def _rule_columns(source: str) -> tuple[str, ...]:
    return REQUIRED_COLUMNS[source]


def _exact_columns(source: str) -> tuple[str, ...]:
    names = tuple(f"{entity}_name_fz" for entity in ENTITIES[source]) if source in LINKED_SOURCES else ()
    return (*REQUIRED_COLUMNS[source], *names)


# ---- tasks -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    plan: Plan
    part: int


def exact_task(task: Task) -> int:
    """Exact links and the name check for partition ``part`` of subject tokens; writes the link bits of every line
    (``link/{p}``) and the queried lines whole (``queried/{p}``); returns how many lines are queried."""
    plan, p = task.plan, task.part
    claims = read_part(plan.path("claims", f"{p}.parquet"))
    sources = plan.sources(p, {s: _exact_columns(s) for s in plan.supplied})
    exact, mismatch, queried = exact_stage(claims, sources, supplied=frozenset(plan.supplied))
    positions = claims["_pos"].to_numpy(dtype=np.int64)
    pq.write_table(pa.table({"_pos": positions, "exact": exact, "mismatch": mismatch}),
                   plan.path("link", f"{p}.parquet"), compression="none")
    chosen = claims[queried].reset_index(drop=True)
    chosen["_lk_exact"] = exact[queried]
    chosen["_lk_mismatch"] = mismatch[queried]
    chosen.to_parquet(plan.path("queried", f"{p}.parquet"), index=False, compression="none")
    return int(queried.sum())


def facts_task(task: Task) -> int:
    """Taxpayer facts for partition ``part`` of taxpayer tokens (only-child certificate, death date) of the lines
    that have one, with the rule partition of each line (``_target``), to ``facts/{p}``."""
    plan, p = task.plan, task.part
    lines = read_part(plan.path("taxpayers", f"{p}.parquet"))
    n = len(lines)
    certified = np.zeros(n, dtype=bool)
    death = np.full(n, np.inf)
    if n:
        from matchkit.verify.interning import TokenInterner

        interner = TokenInterner()
        h_tax = interner.add(lines["taxpayer_id_tok"], name="taxpayer_id_tok")
        only_child = civil = None
        h_only = h_person = -1
        if "only_child" in plan.supplied:
            only_child = plan.sources(p, {"only_child": ("person_id_tok",)})["only_child"]
            h_only = interner.add(only_child["person_id_tok"], name="only_child.person_id_tok")
        if "civil_affairs" in plan.supplied:
            civil = plan.sources(p, {"civil_affairs": ("event", "person_id_tok", "event_date")})["civil_affairs"]
            h_person = interner.add(civil["person_id_tok"], name="civil_affairs.person_id_tok")
        interner.build()
        taxpayer = interner.codes(h_tax)
        size = interner.size
        if only_child is not None:
            present = np.zeros(size + 1, dtype=bool)
            present[interner.codes(h_only)] = True
            present[-1] = False
            certified = present[taxpayer]
        if civil is not None:
            person = interner.codes(h_person)
            ymd = ymd_values(civil["event_date"])
            dead = (text_values(civil["event"]) == "death") & (person >= 0) & ~np.isnan(ymd)
            death_ymd = np.full(size + 1, np.inf)
            np.minimum.at(death_ymd, person[dead], ymd[dead])
            death_ymd[-1] = np.inf
            death = death_ymd[taxpayer]
    has = certified | np.isfinite(death)
    target = _targets(plan, lines["_pos"].to_numpy(dtype=np.int64), lines["_raw_part"].to_numpy(dtype=np.int64))
    table = pa.table({"_pos": lines["_pos"].to_numpy(dtype=np.int64)[has], "_tp_only_child": certified[has],
                      "_tp_death_ymd": np.where(np.isfinite(death), death, np.nan)[has], "_target": target[has]})
    pq.write_table(table, plan.path("facts", f"{p}.parquet"), compression="none")
    return int(has.sum())


def _targets(plan: Plan, positions: np.ndarray, raw_part: np.ndarray) -> np.ndarray:
    """The rule partition of each line: its subject's as given, unless the fuzzy linker moved it."""
    moves = pq.read_table(plan.path("moves.parquet")).to_pandas()
    target = raw_part.copy()
    if len(moves):
        where = np.searchsorted(moves["_pos"].to_numpy(), positions)
        where = np.minimum(where, len(moves) - 1)
        hit = moves["_pos"].to_numpy()[where] == positions
        target[hit] = moves["_target"].to_numpy()[where[hit]]
    return target


def rules_task(task: Task) -> tuple[int, int]:
    """The rules for partition ``part`` of linked subjects: flags (``flags/{p}``) and the elderly_support state
    for the taxpayer pass, with the partition of each line's taxpayer (``_target``), to ``elderly/{p}``."""
    plan, p = task.plan, task.part
    claims = read_part(plan.path("claims", f"{p}.parquet"))
    link = read_part(plan.path("link", f"{p}.parquet"))
    results = read_part(plan.path("links.parquet"))
    moves = pq.read_table(plan.path("moves.parquet")).to_pandas()
    positions = claims["_pos"].to_numpy(dtype=np.int64)
    exact = link["exact"].to_numpy(dtype=bool)
    claims["_lk_exact"] = exact
    claims["_lk_match"] = np.where(exact, "exact", "none").astype(object)
    claims["_lk_score"] = exact.astype(np.float64)
    claims["_lk_fuzzy"] = False
    claims["_lk_ambiguous"] = False
    claims["_lk_mismatch"] = False
    claims["_lk_found_tok"] = pd.Series(pd.arrays.ArrowExtensionArray(pa.nulls(len(claims), pa.binary(16))))
    moved_out = np.isin(positions, moves["_pos"].to_numpy()[moves["_target"].to_numpy() != p])
    claims = claims[~moved_out]
    movers = read_parts([plan.path("movers", f"{p}.parquet")])
    frame = pd.concat([claims, movers], ignore_index=True) if len(movers) else claims.reset_index(drop=True)
    frame = frame.sort_values("_pos", kind="stable").reset_index(drop=True)
    # the fuzzy stage's results for the queried lines override the exact stage's
    positions = frame["_pos"].to_numpy(dtype=np.int64)
    if len(results):
        where = np.minimum(np.searchsorted(results["_pos"].to_numpy(), positions), len(results) - 1)
        hit = np.flatnonzero(results["_pos"].to_numpy()[where] == positions)
        for column in ("exact", "match", "score", "fuzzy", "ambiguous", "mismatch"):
            values = frame[f"_lk_{column}"].to_numpy().copy()
            values[hit] = results[column].to_numpy()[where[hit]]
            frame[f"_lk_{column}"] = values
        found = frame["_lk_found_tok"].to_numpy(dtype=object, na_value=None).copy()
        found[hit] = results["found_tok"].to_numpy(dtype=object, na_value=None)[where[hit]]
        frame["_lk_found_tok"] = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(found, type=pa.binary(16))))
    facts = read_part(plan.path("facts-by-line", f"{p}.parquet"))
    frame["_tp_only_child"] = False
    frame["_tp_death_ymd"] = np.nan
    if len(facts):
        facts = facts.sort_values("_pos")
        where = np.minimum(np.searchsorted(facts["_pos"].to_numpy(), positions), len(facts) - 1)
        hit = facts["_pos"].to_numpy()[where] == positions
        frame.loc[hit, "_tp_only_child"] = facts["_tp_only_child"].to_numpy(dtype=bool)[where[hit]]
        frame.loc[hit, "_tp_death_ymd"] = facts["_tp_death_ymd"].to_numpy(dtype=np.float64)[where[hit]]
    sources = plan.sources(p, {s: _rule_columns(s) for s in plan.supplied})
    flags, elderly = rules_stage(frame, sources, supplied=frozenset(plan.supplied), policy=load_policy())
    flags.to_parquet(plan.path("flags", f"{p}.parquet"), index=False, compression="none")
    count = 0
    if elderly is not None and len(elderly):
        target, _ = token_partition(elderly["taxpayer_id_tok"], plan.partitions, name="taxpayer_id_tok")
        table = pa.Table.from_pandas(elderly, preserve_index=False).append_column("_target", pa.array(target))
        pq.write_table(table, plan.path("elderly", f"{p}.parquet"), compression="none")
        count = len(elderly)
    return len(flags), count


def elderly_task(task: Task) -> int:
    """The taxpayer pass for partition ``part`` of taxpayer tokens: flags of its linked elderly_support lines."""
    plan, p = task.plan, task.part
    path = plan.path("elderly-by-taxpayer", f"{p}.parquet")
    if not path.exists():
        return 0
    table = pq.read_table(path)
    if not table.num_rows:
        return 0
    state = table.to_pandas(types_mapper=pd.ArrowDtype).sort_values("_pos", kind="stable").reset_index(drop=True)
    flags = elderly_stage(state, supplied=frozenset(plan.supplied), policy=load_policy())
    flags.to_parquet(plan.path("flags", f"e{p}.parquet"), index=False, compression="none")
    return len(flags)


# ---- the driver ----------------------------------------------------------------------------------------------------
def verify_partitioned(claims_file: HashedFile, extract_files: list[HashedFile], *, partitions: int,
                       scheduler: str | Scheduler | None = None, workers: int | None = None,
                       spill_dir: str | Path | None = None, progress: Callable[[str], None] | None = None,
                       stats: dict[str, int] | None = None) -> pd.DataFrame:
    """The flags of ``verify_tables`` over these (opened, checked) hashed files, computed partition by partition;
    spill files live in a temporary folder under ``spill_dir`` (default: the system's) and are always removed.
    ``stats``, when given, receives counts (queried lines, candidate persons, lines moved by a fuzzy link)."""
    say = progress or (lambda message: None)
    folder = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=spill_dir))
    try:
        return _run(claims_file, extract_files, partitions, scheduler, workers, folder, say,
                    {} if stats is None else stats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _batches(hashed: HashedFile, columns: Iterable[str]) -> Iterator[pa.Table]:
    for batch in hashed.iter_batches(list(columns), batch_rows=BATCH_ROWS):
        yield pa.Table.from_batches([batch])


def _token_column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def _run(claims_file: HashedFile, extract_files: list[HashedFile], partitions: int,
         scheduler: str | Scheduler | None, workers: int | None, folder: Path,
         say: Callable[[str], None], stats: dict[str, int]) -> pd.DataFrame:
    from matchkit.verify.evidence import SOURCES

    supplied = tuple(s for s in SOURCES if any(f.source == s for f in extract_files))
    counters: dict[str, int] = {}
    extract_spills: list[tuple[str, int]] = []
    for hashed in extract_files:
        index = counters.get(hashed.source, 0)
        counters[hashed.source] = index + 1
        extract_spills.append((hashed.source, index))
    plan = Plan(str(folder), partitions, supplied, tuple(extract_spills))
    for kind in ("link", "queried", "flags", "movers", "facts", "elderly"):
        plan.path(kind).mkdir()

    # 1. route the claims by subject (and by taxpayer) and the extracts by each person token
    say(f"routing claim lines into {partitions} partition(s)")
    claim_spill, taxpayer_spill = Spill(plan.path("claims"), partitions), Spill(plan.path("taxpayers"), partitions)
    position = 0
    for table in _batches(claims_file, input_columns("claims")):
        n = table.num_rows
        table = table.append_column("_pos", pa.array(np.arange(position, position + n, dtype=np.int64)))
        position += n
        taxpayer_part, _ = token_partition(table.column("taxpayer_id_tok"), partitions, name="taxpayer_id_tok")
        subject = _token_column(table, "subject_id_tok")
        if subject is not None:
            subject_part, subject_present = token_partition(subject, partitions, name="subject_id_tok")
        else:
            subject_part, subject_present = np.zeros(n, np.int64), np.zeros(n, bool)
        raw_part = np.where(subject_present, subject_part, taxpayer_part)  # 'self' without a subject: taxpayer
        claim_spill.add(table, raw_part)
        taxpayer_spill.add(pa.table({"_pos": table.column("_pos"), "taxpayer_id_tok": table.column("taxpayer_id_tok"),
                                     "_raw_part": raw_part}), taxpayer_part)
    claim_spill.close()
    taxpayer_spill.close()
    if claim_spill.schema is None:
        raise MatchkitError("claims file has no rows", path=claims_file.path)
    lines = position
    say(f"routing extract rows ({len(extract_files)} file(s))")
    for hashed, (source, index) in zip(extract_files, extract_spills):
        spill = Spill(plan.path("ext", f"{source}-{index}"), partitions)
        columns = list(dict.fromkeys((*_exact_columns(source), *_rule_columns(source))))
        for table in _batches(hashed, columns):
            parts = []
            for entity in ENTITIES[source]:
                column = _token_column(table, f"{entity}_id_tok")
                if column is None:
                    continue
                part, present = token_partition(column, partitions, name=f"{source}.{entity}_id_tok")
                parts.append(np.where(present, part, -1))
            if not parts:
                continue
            stacked = np.stack(parts)
            rows = [np.flatnonzero((stacked[i] >= 0) & ~np.any(stacked[:i] == stacked[i], axis=0))
                    for i in range(len(parts))]  # one copy per distinct partition of the row's people
            chosen = np.concatenate(rows)
            order = np.argsort(chosen, kind="stable")  # each partition keeps the file's row order
            chosen = chosen[order]
            target = np.concatenate([stacked[i][r] for i, r in enumerate(rows)])[order]
            spill.add(table.take(pa.array(chosen)), target)
        spill.close(pa.schema([(c, pa.null()) for c in columns]) if spill.schema is None else None)
        pa.default_memory_pool().release_unused()

    with open_runner(scheduler, workers=workers) as runner:
        tasks = [Task(plan, p) for p in range(partitions)]
        # 2. exact links per partition
        say(f"exact links and name checks ({partitions} partition(s), {runner.scheduler.describe()})")
        queried_count = sum(runner.map(exact_task, tasks))
        stats["queried_lines"] = queried_count
        # 3. the fuzzy linker, once, for the queried lines
        say(f"fuzzy linking {queried_count} queried line(s)")
        _fuzzy(plan, extract_files, say, stats)
        # 4. taxpayer facts, 5. rules, 6. the taxpayer pass
        say("taxpayer facts")
        runner.map(facts_task, tasks)
        _reroute(plan, "facts", "facts-by-line")
        say("rules")
        runner.map(rules_task, tasks)
        _reroute(plan, "elderly", "elderly-by-taxpayer")
        say("taxpayer totals (elderly_support)")
        runner.map(elderly_task, tasks)
    # 7. back into claims order
    say("merging flags")
    paths = sorted(plan.path("flags").glob("*.parquet"))
    flags = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    flags = flags.sort_values("_pos", kind="stable").reset_index(drop=True)
    if len(flags) != lines or not np.array_equal(flags["_pos"].to_numpy(), np.arange(lines)):
        raise MatchkitError("internal error: the partitioned flags do not cover every claim line once")
    return flags.drop(columns="_pos")


def _reroute(plan: Plan, kind: str, to: str) -> None:
    """The shuffle between two passes: the rows of every ``kind/{p}`` file, to the partition in their ``_target``
    column (``to/{q}``), one input file at a time (each input file is one task's output)."""
    spill = Spill(plan.path(to), plan.partitions)
    schema = None
    for p in range(plan.partitions):
        path = plan.path(kind, f"{p}.parquet")
        if not path.exists():
            continue
        table = pq.read_table(path)
        schema = table.schema.remove(table.schema.get_field_index("_target"))
        target = table.column("_target").to_numpy()
        spill.add(table.drop_columns(["_target"]), np.asarray(target, dtype=np.int64))
        path.unlink()
    spill.close(schema)


def _fuzzy(plan: Plan, extract_files: list[HashedFile], say: Callable[[str], None], stats: dict[str, int]) -> None:
    """The fuzzy stage over the queried lines (``queried/*``): writes ``links.parquet`` (its results per queried
    line), ``moves.parquet`` (lines whose rule partition changes) and ``movers/{q}`` (those lines whole)."""
    from matchkit.link.blocking import SharedKeys
    from matchkit.link.fuzzy import PERSON_PASSES
    from matchkit.verify.linking import QUERY_COLUMNS

    queried = read_parts(sorted(plan.path("queried").glob("*.parquet")))
    empty_moves = pa.table({"_pos": pa.array([], pa.int64()), "_target": pa.array([], pa.int64())})
    if not len(queried):
        pq.write_table(empty_moves, plan.path("moves.parquet"))
        pq.write_table(pa.table({"_pos": pa.array([], pa.int64())}), plan.path("links.parquet"))
        return
    queried = queried.sort_values("_pos", kind="stable").reset_index(drop=True)
    query_frame = pd.DataFrame({c: queried[f"subject_{c}"] if f"subject_{c}" in queried.columns
                                else pd.Series([None] * len(queried), dtype=object) for c in QUERY_COLUMNS})
    keys = SharedKeys(query_frame, PERSON_PASSES)
    linked = [f for f in extract_files if f.source in LINKED_SOURCES]
    # pass 1: the people sharing a blocking key with some query
    candidate_words: list[np.ndarray] = []
    for hashed in linked:
        for entity in ENTITIES[hashed.source]:
            columns = [f"{entity}_id_tok", *(f"{entity}_{c}" for c in ENCODING_COLUMNS)]
            for table in _batches(hashed, columns):
                frame = table.to_pandas(types_mapper=pd.ArrowDtype)
                if f"{entity}_id_tok" not in frame.columns:
                    continue
                part = pd.DataFrame({c: frame[f"{entity}_{c}"] if f"{entity}_{c}" in frame.columns
                                     else pd.Series([None] * len(frame), dtype=object) for c in ENCODING_COLUMNS})
                hit = keys.kept(part)
                words, present = token_words(frame[f"{entity}_id_tok"], name=f"{entity}_id_tok")
                candidate_words.append(words[hit & present])
            pa.default_memory_pool().release_unused()  # decoding buffers of the pass: give them back
    candidates = _word_set(np.concatenate(candidate_words) if candidate_words else np.zeros((0, 2), np.int64))
    # pass 2: every row of every candidate, in file order (their first rows are the single run's)
    frames: dict[str, list[pd.DataFrame]] = {}
    for hashed in linked:
        wanted = list(input_columns(hashed.source))
        kept: list[pa.Table] = []
        for table in _batches(hashed, wanted):
            mask = np.zeros(table.num_rows, dtype=bool)
            for entity in ENTITIES[hashed.source]:
                column = _token_column(table, f"{entity}_id_tok")
                if column is not None:
                    words, present = token_words(pd.Series(pd.arrays.ArrowExtensionArray(column)),
                                                 name=f"{entity}_id_tok")
                    mask |= present & _in_word_set(words, candidates)
            if mask.any():  # only the kept rows are copied and converted, never a whole batch
                kept.append(table.filter(pa.array(mask)).combine_chunks())
        pa.default_memory_pool().release_unused()
        if kept:
            frame = pa.concat_tables(kept).to_pandas(types_mapper=pandas_types)
        else:
            frame = pd.DataFrame()
        frames.setdefault(hashed.source, []).append(frame)
    sources: dict[str, Any] = {}
    for source in plan.supplied:
        parts = [f for f in frames.get(source, []) if len(f.columns)]
        if parts:
            sources[source] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        else:
            sources[source] = pd.DataFrame({c: pd.Series([], dtype=object) for c in REQUIRED_COLUMNS[source]})
    say(f"{len(candidates)} candidate person(s) share a blocking key with a queried line")
    stats["candidate_persons"] = len(candidates)
    exact = queried.pop("_lk_exact").to_numpy(dtype=bool)
    mismatch = queried.pop("_lk_mismatch").to_numpy(dtype=bool)
    results = fuzzy_stage(queried, sources, exact, mismatch, supplied=frozenset(plan.supplied))
    results.insert(0, "_pos", queried["_pos"].to_numpy(dtype=np.int64))
    found_part, found_present = token_partition(results["found_tok"].astype(pd.ArrowDtype(pa.binary(16))),
                                                plan.partitions, name="found_tok")
    raw_part = _raw_partition(queried, plan.partitions)
    move = found_present & (found_part != raw_part)
    results["found_tok"] = results["found_tok"].astype(pd.ArrowDtype(pa.binary(16)))
    pa_results = pa.Table.from_pandas(results, preserve_index=False)
    pq.write_table(pa_results, plan.path("links.parquet"))
    pq.write_table(pa.table({"_pos": results["_pos"].to_numpy()[move], "_target": found_part[move]}),
                   plan.path("moves.parquet"))
    movers = queried[move].reset_index(drop=True)
    stats["moved_lines"] = len(movers)
    if len(movers):
        movers["_lk_exact"] = False
        movers["_lk_match"] = "none"
        movers["_lk_score"] = 0.0
        movers["_lk_fuzzy"] = False
        movers["_lk_ambiguous"] = False
        movers["_lk_mismatch"] = False
        movers["_lk_found_tok"] = pd.Series(pd.arrays.ArrowExtensionArray(pa.nulls(len(movers), pa.binary(16))))
        table = pa.Table.from_pandas(movers, preserve_index=False)
        target = found_part[move]
        order = np.argsort(target, kind="stable")
        target, table = target[order], table.take(pa.array(order))
        bounds = np.searchsorted(target, np.arange(plan.partitions + 1))
        for q in np.flatnonzero(np.diff(bounds)):
            lo, hi = int(bounds[q]), int(bounds[q + 1])
            pq.write_table(table.slice(lo, hi - lo), plan.path("movers", f"{int(q)}.parquet"))


def _raw_partition(claims: pd.DataFrame, partitions: int) -> np.ndarray:
    taxpayer_part, _ = token_partition(claims["taxpayer_id_tok"], partitions, name="taxpayer_id_tok")
    if "subject_id_tok" not in claims.columns:
        return taxpayer_part
    subject_part, present = token_partition(claims["subject_id_tok"], partitions, name="subject_id_tok")
    return np.where(present, subject_part, taxpayer_part)


def _word_set(words: np.ndarray) -> np.ndarray:
    """Distinct (n, 2) int64 token words as a sorted structured array (for :func:`_in_word_set`)."""
    view = np.ascontiguousarray(words).view([("a", np.int64), ("b", np.int64)]).reshape(-1)
    return np.unique(view)


def _in_word_set(words: np.ndarray, known: np.ndarray) -> np.ndarray:
    if len(known) == 0 or len(words) == 0:
        return np.zeros(len(words), dtype=bool)
    view = np.ascontiguousarray(words).view([("a", np.int64), ("b", np.int64)]).reshape(-1)
    pos = np.minimum(np.searchsorted(known, view), len(known) - 1)
    return known[pos] == view
