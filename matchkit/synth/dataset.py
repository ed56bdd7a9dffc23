"""Turn a population and its claims into the files agencies and the tax bureau would hand over, plus the truth.

Output directory:

- ``claims``, ``education``, ``household``, ``civil_affairs``, ``only_child``, ``medical_insurance``: the raw files,
  each in the format, encoding and header language chosen by ``formats``;
- ``truth.csv``: one row per claim line with the expected outcome (matchkit never reads it);
- ``injected_faults.csv``: the row-level faults placed in the extracts on purpose (each becomes a reject);
- ``manifest.json``: parameters, files, row counts and anything the generator could not build.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matchkit.synth import reference as ref
from matchkit.synth.claims import ClaimBuilder, build_claims
from matchkit.synth.gb11643 import check_char, excel_damaged
from matchkit.synth.noise import Noise
from matchkit.synth.population import (
    NO_DATE,
    STAGE_NAMES,
    Population,
    build_population,
    ymd_from_days,
)

SOURCES = ("claims", "education", "household", "civil_affairs", "only_child", "medical_insurance")
FORMAT_CHOICES = ("auto", "mixed", "csv", "parquet")
MIXED_PLAN: dict[str, tuple[str, str | None, bool]] = {
    # source: (format, encoding, Chinese headers)
    "claims": ("csv", "gb18030", True),
    "education": ("csv", "utf-8-sig", True),
    "household": ("xlsx", None, True),
    "civil_affairs": ("csv", "utf-8", False),
    "only_child": ("csv", "utf-8", True),
    "medical_insurance": ("parquet", None, False),
}
XLSX_MAX_ROWS = 200_000      # beyond this a household XLSX is slow to write (and Excel stops at 1,048,576)
AUTO_MIXED_MAX_CLAIMS = 20_000
PARQUET_ROW_GROUP = 500_000
# Claim lines per block: a data set is made of independent blocks, each with its own families (every cross-person
# fact synth models - two parents of one child, siblings sharing an elderly parent, another real person's ID one
# digit away, duplicates - stays inside a block). 100,000 lines is ~295,000 people and ~600 MB at the peak of one
# worker; a set of up to this many lines is one block, byte for byte what the generator wrote before blocks.
BLOCK_CLAIMS = 100_000
MIN_BLOCK_CLAIMS = 100
BATCH_PER_WORKER = 4
BLOCK_SPAWN = 0x5B10C  # spawn-key prefix of the blocks' seeds (block 0 uses the plain seed)
EXTENSIONS = {"csv": ".csv", "xlsx": ".xlsx", "parquet": ".parquet"}


def families_for(n_claims: int) -> int:
    """Generation-1 couples for a claim count: about 2.9 people per claim line, at least ~300 people."""
    return max(55, int(np.ceil(n_claims * 0.5)))


def generate(n_claims: int, seed: int, out_dir: str | Path, *, noise: float = 0.3, formats: str = "auto",
             tax_year: int = 2024, defect_rate: float = 0.15, families: int | None = None,
             faults: bool = True, scheduler: Any = None, workers: int | None = None,
             block_claims: int = BLOCK_CLAIMS, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Generate a synthetic population, every SPEC source file, a claims file and the truth under ``out_dir``.

    Same arguments, same bytes, whatever ``scheduler`` and ``workers``. The data set is made of independent blocks
    of at most ``block_claims`` claim lines (see :func:`block_sizes`), each with its own families, generated from
    (seed, block number) and appended to every output file in block order; memory is bounded by one block per
    worker. ``block_claims`` is part of the data's definition, like the seed: a set of one block is exactly what
    this generator wrote before blocks existed. ``scheduler``: ``None`` (this process), ``processes``, ``local``
    or ``tcp://HOST:PORT`` (:mod:`matchkit.runtime.cluster`). Returns ``{name: path}`` for every file written
    (sources, ``truth``, ``injected_faults``, ``manifest``).
    """
    if n_claims < 1:
        raise ValueError("n_claims must be at least 1")
    if formats not in FORMAT_CHOICES:
        raise ValueError(f"formats must be one of {', '.join(FORMAT_CHOICES)}")
    if not 2019 <= tax_year <= 2030:
        raise ValueError("tax_year must be between 2019 and 2030")
    if block_claims < MIN_BLOCK_CLAIMS:
        raise ValueError(f"block_claims must be at least {MIN_BLOCK_CLAIMS}")
    from matchkit.runtime.cluster import open_runner

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = block_sizes(n_claims, block_claims)
    blocks = len(sizes)
    if families is not None and blocks > 1:
        raise ValueError("families can only be given for a data set of one block")
    # one block decides its household format from its own row count, as the generator always did; a set of several
    # blocks has more household rows than an XLSX holds (a block of >= 50,000 lines has ~190,000), so CSV
    plan = None if blocks == 1 else _format_plan(formats, n_claims, XLSX_MAX_ROWS + 1)
    work = Path(tempfile.mkdtemp(prefix=".synth-blocks-", dir=out))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    tasks = [BlockTask(index=i, n_claims=size, offset=int(offsets[i]), seed=seed, tax_year=tax_year, noise=noise,
                       defect_rate=defect_rate, faults=faults, families=families, formats=formats, plan=plan,
                       work=str(work), blocks=blocks) for i, size in enumerate(sizes)]
    say = progress if progress is not None and blocks > 1 else (lambda message: None)
    try:
        with open_runner(scheduler, workers=workers) as runner:
            if blocks > 1:
                say(f"{blocks} blocks: people and their IDs ...")
                key_paths = runner.map(block_ids, tasks)
                known_path, fix_paths = _registry(key_paths, seed, work)
                tasks = [dataclasses.replace(t, known=known_path, fixes=f) for t, f in zip(tasks, fix_paths)]
            merger = _Merger(out, blocks)
            taken: set[int] = set()
            for task, result in _in_batches(runner, build_block, tasks):
                forbidden: list[int] = []
                while blocks > 1 and taken.intersection(result["constructed"]):
                    # an ID this block built (a typo, a look-alike) is one another block built: build it again
                    # with that ID taken; rare, and decided in block order, so the output stays the same
                    forbidden = sorted(set(forbidden) | taken.intersection(result["constructed"]))
                    result = build_block(dataclasses.replace(task, forbidden=tuple(forbidden)))
                taken.update(result["constructed"])
                merger.add(result)
                say(f"block {task.index + 1}/{blocks}: {sum(result['rows'].values()):,} rows")
        paths = merger.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "generator": "matchkit.synth", "seed": seed, "n_claims": n_claims, "tax_year": tax_year, "noise": noise,
        "defect_rate": defect_rate, "formats": formats, "people": merger.people, "files": merger.files,
        "defects": dict(sorted(merger.defects.items())),
        "injected_faults": len(merger.fault_rows), "not_built": merger.not_built,
    }
    if blocks > 1:
        manifest["blocks"] = {"count": blocks, "block_claims": block_claims,
                              "ids_redrawn": merger.ids_redrawn, "blocks_rebuilt": merger.rebuilt}
    paths["manifest"] = out / "manifest.json"
    paths["manifest"].write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return paths


def _in_batches(runner: Any, fn: Callable[[BlockTask], dict[str, Any]],
                tasks: list[BlockTask]) -> Iterator[tuple[BlockTask, dict[str, Any]]]:
    """(task, result) in block order, a batch of a few blocks per worker at a time: results are merged (and their
    part files deleted) batch by batch, so the work folder never holds more than a batch; a batch rather than one
    wave per worker because Dask's multiprocessing scheduler starts its processes again for every call."""
    batch = max(1, int(runner.workers)) * BATCH_PER_WORKER
    for start in range(0, len(tasks), batch):
        chunk = tasks[start:start + batch]
        yield from zip(chunk, runner.map(fn, chunk))


def block_sizes(n_claims: int, block_claims: int = BLOCK_CLAIMS) -> list[int]:
    """Claim lines per block: ``ceil(n_claims / block_claims)`` blocks whose sizes differ by at most one."""
    blocks = -(-n_claims // block_claims)
    return [n_claims * (i + 1) // blocks - n_claims * i // blocks for i in range(blocks)]


@dataclasses.dataclass(frozen=True)
class BlockTask:
    """One block's work: small and picklable (the scheduler layer's rule); big results go to files under ``work``."""

    index: int
    n_claims: int
    offset: int             # claim lines in the blocks before: claim IDs continue from there
    seed: int
    tax_year: int
    noise: float
    defect_rate: float
    faults: bool
    families: int | None
    formats: str
    plan: dict[str, tuple[str, str | None, bool]] | None
    work: str
    blocks: int
    known: str | None = None        # .npy: sorted bodies of every real ID of the data set
    fixes: str | None = None        # .npy: (person, new body) for this block's people whose ID another block had
    forbidden: tuple[int, ...] = ()  # bodies of IDs other blocks built

    def rngs(self) -> list[np.random.Generator]:
        # block 0 is seeded as the whole data set always was, so a one-block set is what it was before blocks
        root = (np.random.SeedSequence(self.seed) if self.index == 0
                else np.random.SeedSequence(self.seed, spawn_key=(BLOCK_SPAWN, self.index)))
        return [np.random.default_rng(s) for s in root.spawn(4)]

    def population(self, pop_rng: np.random.Generator) -> Population:
        return build_population(pop_rng, self.families or families_for(self.n_claims), self.tax_year)


def _id_bodies(ids: np.ndarray) -> np.ndarray:
    return np.char.ljust(np.asarray(ids).astype("U17"), 17).astype(np.int64)


def block_ids(task: BlockTask) -> str:
    """First pass over a block: its people's ID bodies, in person order, to a .npy file (its path returned)."""
    pop = task.population(task.rngs()[0])
    path = Path(task.work) / f"ids-{task.index:06d}.npy"
    np.save(path, _id_bodies(pop.ids))
    return str(path)


def _registry(key_paths: list[str], seed: int, work: Path) -> tuple[str, list[str]]:
    """Make every real ID unique across blocks: where a block's person has an ID an earlier block already gave,
    draw a new sequence number (same county, birth date and sex) that nobody has. Returns the path of the sorted
    bodies of all IDs and, per block, the path of its (person, new body) fixes. Deterministic in block order."""
    lengths = []
    arrays = []
    for path in key_paths:
        arrays.append(np.load(path))
        lengths.append(len(arrays[-1]))
        Path(path).unlink()
    everything = np.concatenate(arrays)
    del arrays
    starts = np.concatenate([[0], np.cumsum(lengths)])
    order = np.argsort(everything, kind="stable")  # stable: the earlier block keeps a shared ID
    ordered = everything[order]
    repeat = np.zeros(len(ordered), bool)
    repeat[1:] = ordered[1:] == ordered[:-1]
    unique = ordered[~repeat]
    redraw = np.sort(order[repeat])
    del order, ordered, repeat
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BLOCK_SPAWN, 0, 1)))
    assigned: dict[int, int] = {}
    fixes: list[list[tuple[int, int]]] = [[] for _ in lengths]
    for position in redraw.tolist():
        body = int(everything[position])
        base, sex = body - body % 1000, body % 2
        for _ in range(100_000):
            new = base + int(rng.integers(0, 500)) * 2 + sex
            at = int(np.searchsorted(unique, new))
            if not (at < len(unique) and int(unique[at]) == new) and new not in assigned:
                break
        else:  # pragma: no cover - 500 sequence numbers of one county, day and sex all taken
            raise RuntimeError("no free ID sequence number left for a county and birth date")
        assigned[new] = position
        block = int(np.searchsorted(starts, position, side="right")) - 1
        fixes[block].append((position - int(starts[block]), new))
    known = np.union1d(unique, np.array(sorted(assigned), dtype=np.int64))
    registry = work / "known-ids.npy"
    np.save(registry, known)
    fix_paths = []
    for block, pairs in enumerate(fixes):
        part = work / f"fixes-{block:06d}.npy"
        np.save(part, np.array(pairs, dtype=np.int64).reshape(-1, 2))
        fix_paths.append(str(part))
    return str(registry), fix_paths


def build_block(task: BlockTask) -> dict[str, Any]:
    """Second pass over a block: its population (with the fixed IDs), claims, truth and every extract, written as
    part files under the work folder. Returns their paths and small counts (rows, faults, defects)."""
    pop_rng, claim_rng, noise_rng, order_rng = task.rngs()
    pop = task.population(pop_rng)
    known = None
    if task.fixes:
        for person, body in np.load(task.fixes).tolist():
            text = f"{body:017d}"
            pop.ids[person] = text + check_char(text)
    if task.known:
        known = np.load(task.known, mmap_mode="r")
    if task.forbidden:  # IDs other blocks built: taken too (rare; the registry is then read whole)
        taken = np.array(task.forbidden, dtype=np.int64)
        known = taken if known is None else np.union1d(known, taken)
    builder = build_claims(pop, claim_rng, task.n_claims, task.defect_rate, known)
    if task.blocks > 1 and len(builder.lines) != task.n_claims:
        raise RuntimeError(f"block {task.index} built {len(builder.lines)} claim lines, not {task.n_claims}")
    _add_constructed_people(pop, builder)
    constructed = sorted(int(value[:17]) for value in builder.new_ids)
    noisy = Noise(noise_rng, task.noise)
    protect = _protected_people(pop, builder)
    claims, truth = _claims_tables(pop, builder, noisy, order_rng, task.offset)
    referenced = _referenced_people(pop, builder)
    not_built = dict(builder.skipped)
    del builder
    household_rows = int(pop.father_recorded.sum() + pop.mother_recorded.sum())
    plan = task.plan or _format_plan(task.formats, task.n_claims, household_rows)
    folder = Path(task.work) / f"block-{task.index:06d}"
    shutil.rmtree(folder, ignore_errors=True)  # a block built again replaces its first parts
    folder.mkdir()
    first = task.index == 0
    parts: dict[str, str] = {}
    rows: dict[str, int] = {}
    fault_rows: dict[str, list[dict[str, Any]]] = {}

    def write(source: str, frame: pd.DataFrame) -> None:
        fmt, encoding, chinese = plan[source]
        path = folder / f"{source}{EXTENSIONS[fmt]}"
        _write(frame, path, fmt, encoding, ref.CHINESE_HEADERS[source] if chinese else None, source, header=first)
        parts[source] = str(path)
        rows[source] = len(frame)

    write("claims", claims)
    del claims
    for source, frame, persons in _extract_tables(pop, noisy, protect):
        fault_rows[source] = (_inject_faults(source, frame, persons, referenced, noise_rng, pop.ids)
                              if task.faults and task.noise > 0 else [])
        write(source, frame)
        del frame, persons
    truth_path = folder / "truth.csv"
    truth.to_csv(truth_path, index=False, header=first, encoding="utf-8", lineterminator="\n")
    return {"index": task.index, "parts": parts, "truth": str(truth_path), "rows": rows, "faults": fault_rows,
            "plan": plan, "people": len(pop), "defects": truth["defect"].value_counts().to_dict(),
            "not_built": not_built, "constructed": constructed, "rebuilt": bool(task.forbidden),
            "ids_redrawn": len(np.load(task.fixes)) if task.fixes else 0}


class _Merger:
    """Appends each block's part files to the output files, in block order, one block at a time."""

    def __init__(self, out: Path, blocks: int) -> None:
        self.out = out
        self.blocks = blocks
        self.paths: dict[str, Path] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.fault_rows: list[dict[str, Any]] = []
        self.faults_by_source: dict[str, list[dict[str, Any]]] = {}
        self.defects: dict[str, int] = {}
        self.not_built: dict[str, int] = {}
        self.people = 0
        self.ids_redrawn = 0
        self.rebuilt = 0
        self._parquet: dict[str, Any] = {}

    def add(self, result: dict[str, Any]) -> None:
        plan = result["plan"]
        for source, part in result["parts"].items():
            fmt, encoding, chinese = plan[source]
            target = self.out / f"{source}{EXTENSIONS[fmt]}"
            before = self.files.get(source, {}).get("rows", 0)
            for fault in result["faults"].get(source, []):
                self.faults_by_source.setdefault(source, []).append({**fault, "line": fault["line"] + before})
            if source not in self.files:
                self.paths[source] = target
                self.files[source] = {"path": target.name, "format": fmt, "encoding": encoding,
                                      "headers": "chinese" if chinese else "canonical", "rows": 0}
            self.files[source]["rows"] += result["rows"][source]
            self._append(Path(part), target, fmt, first=result["index"] == 0)
        self.paths["truth"] = self.out / "truth.csv"
        self._append(Path(result["truth"]), self.paths["truth"], "csv", first=result["index"] == 0)
        for defect, count in result["defects"].items():
            self.defects[defect] = self.defects.get(defect, 0) + int(count)
        for defect, count in result["not_built"].items():
            self.not_built[defect] = self.not_built.get(defect, 0) + int(count)
        self.people += result["people"]
        self.ids_redrawn += result["ids_redrawn"]
        self.rebuilt += int(result["rebuilt"])
        shutil.rmtree(Path(result["truth"]).parent, ignore_errors=True)

    def _append(self, part: Path, target: Path, fmt: str, *, first: bool) -> None:
        if self.blocks == 1:
            os.replace(part, target)
        elif fmt == "csv":
            with open(target, "wb" if first else "ab") as sink, open(part, "rb") as source:
                shutil.copyfileobj(source, sink, 1 << 20)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(part)
            writer = self._parquet.get(str(target))
            if writer is None:
                writer = self._parquet[str(target)] = pq.ParquetWriter(target, table.schema, compression="zstd")
            if not table.schema.equals(writer.schema, check_metadata=False):
                table = table.cast(writer.schema)
            writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
        else:  # pragma: no cover - an XLSX is written for a one-block set only
            raise ValueError(f"cannot append blocks to a {fmt} file")

    def finish(self) -> dict[str, Path]:
        for writer in self._parquet.values():
            writer.close()
        for source in SOURCES[1:]:
            for fault in self.faults_by_source.get(source, []):
                self.fault_rows.append({"file": self.paths[source].name, "line": fault["line"],
                                        "column": fault["column"], "fault": fault["fault"]})
        paths = {source: self.paths[source] for source in SOURCES}
        paths["truth"] = self.paths["truth"]
        paths["injected_faults"] = self.out / "injected_faults.csv"
        pd.DataFrame(self.fault_rows, columns=["file", "line", "column", "fault"]).to_csv(
            paths["injected_faults"], index=False, encoding="utf-8", lineterminator="\n")
        return paths


# ---- population additions -----------------------------------------------------------------------------------
def _add_constructed_people(pop: Population, builder: ClaimBuilder) -> None:
    """Append the people built for constructed cases: the look-alikes of AMBIGUOUS_MATCH cases (same name and birth
    date) and the other children whose ID a claim mistyped (issue 16: same birth date, another name), each with a
    household relation to an unrelated guardian and the same enrolment spells."""
    if builder.extra_medical:
        added = pd.DataFrame(builder.extra_medical, columns=["person", "year", "total_cost", "out_of_pocket"])
        pop.medical = pd.concat([pop.medical, added], ignore_index=True)
    extra = builder.extra_people
    if not extra:
        builder.added_people = np.zeros(0, dtype=np.int64)  # type: ignore[attr-defined]
        return
    like = np.array([e["like"] for e in extra], dtype=np.int64)
    n0, k = len(pop), len(extra)
    new = n0 + np.arange(k)

    def grow(values: np.ndarray, added: np.ndarray) -> np.ndarray:
        return np.concatenate([values, added.astype(values.dtype)])

    pop.generation = grow(pop.generation, np.full(k, 9))
    pop.male = grow(pop.male, np.array([e["male"] for e in extra]))
    pop.birth = grow(pop.birth, pop.birth[like])
    pop.birth_month = grow(pop.birth_month, pop.birth_month[like])
    pop.county = grow(pop.county, pop.county[like])
    pop.ids = np.concatenate([pop.ids, np.array([e["id"] for e in extra], dtype="U18")])
    pop.names = np.concatenate([pop.names, np.array([e.get("name") or pop.names[e["like"]] for e in extra],
                                                    dtype=pop.names.dtype)])
    pop.minority = grow(pop.minority, pop.minority[like])
    guardian = np.array([e["parent"] for e in extra], dtype=np.int64)
    guardian_male = pop.male[guardian]
    pop.father = grow(pop.father, np.where(guardian_male, guardian, -1))
    pop.mother = grow(pop.mother, np.where(guardian_male, -1, guardian))
    pop.father_recorded = grow(pop.father_recorded, guardian_male)
    pop.mother_recorded = grow(pop.mother_recorded, ~guardian_male)
    pop.death = grow(pop.death, np.full(k, NO_DATE))
    pop.spouse = grow(pop.spouse, np.full(k, -1))
    pop.only_child_cert = grow(pop.only_child_cert, np.zeros(k, bool))
    spells = pop.spells[pop.spells["person"].isin(like)].copy()
    spells["person"] = spells["person"].map(dict(zip(like.tolist(), new.tolist())))
    pop.spells = pd.concat([pop.spells, spells], ignore_index=True)
    builder.added_people = new  # type: ignore[attr-defined]


def _protected_people(pop: Population, builder: ClaimBuilder) -> np.ndarray:
    """People whose names must stay exactly as generated (both sides of an ambiguous tie)."""
    protect = np.zeros(len(pop), bool)
    cols = builder.lines.cols
    for subject, clean in zip(cols["subject"], cols["clean_name"]):
        if clean and subject is not None and subject >= 0:
            protect[subject] = True
    protect[builder.added_people] = True  # type: ignore[attr-defined]
    return protect


def _referenced_people(pop: Population, builder: ClaimBuilder) -> np.ndarray:
    """Everyone a claim's evidence could touch: taxpayers, subjects and their parents, children and spouses."""
    cols = builder.lines.cols
    people = np.array([p for p in cols["taxpayer"] + cols["subject"] if p is not None and p >= 0], dtype=np.int64)
    people = np.concatenate([people, builder.added_people])  # type: ignore[attr-defined]
    mask = np.zeros(len(pop), bool)
    mask[people] = True
    for parent in (pop.father, pop.mother):
        has = parent >= 0
        mask[parent[has & mask]] = True
        mask[np.flatnonzero(has & np.isin(parent, people))] = True
    mask[pop.spouse[(pop.spouse >= 0) & mask]] = True
    m = pop.marriages
    touched = mask[m["husband"].to_numpy()] | mask[m["wife"].to_numpy()]
    mask[m["husband"].to_numpy()[touched]] = True
    mask[m["wife"].to_numpy()[touched]] = True
    return mask


# ---- claims -------------------------------------------------------------------------------------------------
def _claims_tables(pop: Population, builder: ClaimBuilder, noisy: Noise, order_rng: np.random.Generator,
                   offset: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = builder.lines.cols
    n = len(builder.lines)
    year = pop.tax_year
    # line order: random, except that a duplicate always comes after its original
    key = order_rng.random(n)
    for i, original in enumerate(cols["after_line"]):
        if original is not None:
            key[i] = key[original] + (1 - key[original]) * order_rng.uniform(0.05, 1.0)
    order = np.argsort(key, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    claim_ids = np.array([f"SB{year}{offset + r + 1:09d}" for r in rank], dtype=object)

    taxpayer = np.array(cols["taxpayer"], dtype=np.int64)
    subject = np.array([-1 if s is None else s for s in cols["subject"]], dtype=np.int64)
    has_subject = subject >= 0
    tp_birth_year = ymd_from_days(pop.birth[taxpayer])[0]
    taxpayer_ids = noisy.ids(pop.ids[taxpayer], tp_birth_year)
    taxpayer_names = noisy.names(pop.names[taxpayer], homophone=True)

    subject_ids = np.full(n, "", dtype=object)
    subject_names = np.full(n, "", dtype=object)
    birth_days = np.full(n, -10**6, dtype=np.int64)
    s_idx = subject[has_subject]
    subject_ids[has_subject] = noisy.ids(pop.ids[s_idx], ymd_from_days(pop.birth[s_idx])[0])
    protect = np.array([bool(c) for c in cols["clean_name"]])
    subject_names[has_subject] = noisy.names(pop.names[s_idx], protect[has_subject], homophone=True)
    birth_days[has_subject] = pop.birth[s_idx]
    true_subject = np.full(n, "", dtype=object)
    true_subject[has_subject] = pop.ids[s_idx]
    for i in range(n):
        if cols["subject_id_override"][i] is not None:
            subject_ids[i] = cols["subject_id_override"][i]
        if cols["subject_name_override"][i] is not None:
            subject_names[i] = cols["subject_name_override"][i]
        if cols["subject_birth_override"][i] is not None:
            birth_days[i] = cols["subject_birth_override"][i]
        if cols["true_id"][i] is not None:
            true_subject[i] = cols["true_id"][i]
    relation = np.array([r or "" for r in cols["relation"]], dtype=object)
    # 'self' lines may leave the subject columns empty: the taxpayer is the subject
    self_line = relation == "self"
    blank_self = self_line & (order_rng.random(n) < 0.3)
    subject_ids[blank_self] = ""
    subject_names[blank_self] = ""
    true_subject[self_line] = pop.ids[taxpayer[self_line]]
    has_birth = (birth_days > -10**6) & ~blank_self
    birth_text = np.full(n, "", dtype=object)
    by, bm, bd = ymd_from_days(birth_days[has_birth])
    birth_text[has_birth] = noisy.dates(by, bm, bd)

    start = np.array([-1 if v is None else v for v in cols["start"]], dtype=np.int64)
    end = np.array([-1 if v is None else v for v in cols["end"]], dtype=np.int64)
    monthly_line = start >= 0
    period_start = np.full(n, "", dtype=object)
    period_end = np.full(n, "", dtype=object)
    period_start[monthly_line] = noisy.months(start[monthly_line])
    period_end[monthly_line] = noisy.months(end[monthly_line])
    months = np.where(monthly_line, end - start + 1, 0)
    monthly = np.array([0.0 if v is None else v for v in cols["monthly"]])
    annual_given = np.array([np.nan if v is None else v for v in cols["annual"]])
    claimed = np.where(monthly_line, monthly * months, annual_given)
    deduction = np.array(cols["deduction"], dtype=object)

    share_text = np.full(n, "", dtype=object)
    for i, share in enumerate(cols["share"]):
        if share is not None:
            style = int(order_rng.integers(0, 4)) if noisy.level > 0 else 1
            share_text[i] = (f"{share * 100:g}%", f"{share:g}", f"{share:.1f}", f"{share * 100:g}%")[style]
    only_text = np.full(n, "", dtype=object)
    yes_no = (("是", "否"), ("Y", "N"), ("1", "0"), ("true", "false"))
    for i, only in enumerate(cols["only_child"]):
        if only is not None:
            pair = yes_no[int(order_rng.integers(0, 4))] if noisy.level > 0 else yes_no[0]
            only_text[i] = pair[0] if only else pair[1]

    claims = pd.DataFrame({
        "claim_id": claim_ids,
        "taxpayer_id": taxpayer_ids,
        "taxpayer_name": taxpayer_names,
        "deduction": noisy.codes(deduction, ref.DEDUCTION_ZH),
        "tax_year": str(year),
        "period_start": period_start,
        "period_end": period_end,
        "subject_id": subject_ids,
        "subject_name": subject_names,
        "subject_birth_date": birth_text,
        "subject_relation": noisy.codes(relation, ref.RELATION_ZH),
        "share": share_text,
        "monthly_amount": np.where(monthly_line, [f"{v:.2f}" for v in monthly], ""),
        "annual_amount": [f"{v:.2f}" for v in claimed],
        "education_stage": noisy.codes(np.array([s or "" for s in cols["stage"]], dtype=object), ref.STAGE_ZH),
        "only_child": only_text,
    })
    truth = pd.DataFrame({
        "claim_id": claim_ids,
        "deduction": deduction,
        "defect": cols["defect"],
        "scenario": cols["scenario"],
        "expected_status": cols["status"],
        "expected_reasons": cols["reasons"],
        "expected_allowed_amount": [f"{v:.2f}" for v in cols["allowed"]],
        "expected_verified_months": ["" if d == "serious_illness" or v is None else str(v)
                                     for d, v in zip(cols["deduction"], cols["verified_months"])],
        "claimed_amount": [f"{v:.2f}" for v in claimed],
        "true_subject_id": true_subject,
        "true_taxpayer_id": pop.ids[taxpayer],
    })
    return claims.iloc[order].reset_index(drop=True), truth.iloc[order].reset_index(drop=True)


# ---- extracts -----------------------------------------------------------------------------------------------
def _extract_tables(pop: Population, noisy: Noise,
                    protect: np.ndarray) -> Iterator[tuple[str, pd.DataFrame, dict[str, np.ndarray]]]:
    """Each extract as (source, frame, {id column: person index per row}), so faults can be placed on known
    people; built one at a time."""
    birth_year, birth_m, birth_d = ymd_from_days(pop.birth)
    last_month = pop.tax_year * 12 + 11
    rng = noisy.rng

    def person_ids(people: np.ndarray) -> np.ndarray:
        return noisy.ids(pop.ids[people], birth_year[people])

    def person_names(people: np.ndarray) -> np.ndarray:
        return noisy.names(pop.names[people], protect[people])

    def shuffled(frame: pd.DataFrame, persons: dict[str, np.ndarray]) -> tuple[pd.DataFrame,
                                                                                dict[str, np.ndarray]]:
        order = rng.permutation(len(frame))
        return frame.iloc[order].reset_index(drop=True), {k: v[order] for k, v in persons.items()}

    spells = pop.spells
    student = spells["person"].to_numpy()
    ongoing = spells["to_month"].to_numpy() > last_month
    enrolled_to = noisy.months(np.minimum(spells["to_month"].to_numpy(), last_month))
    enrolled_to[ongoing] = ""
    stage = np.array([STAGE_NAMES[s] for s in spells["stage"].to_numpy()], dtype=object)
    yield "education", *shuffled(pd.DataFrame({
        "student_id": person_ids(student),
        "student_name": person_names(student),
        "birth_date": noisy.dates(birth_year[student], birth_m[student], birth_d[student]),
        "education_stage": noisy.codes(stage, ref.STAGE_ZH),
        "enrolled_from": noisy.months(spells["from_month"].to_numpy()),
        "enrolled_to": enrolled_to,
    }), {"student_id": student})

    kids = np.arange(len(pop))
    parent = np.concatenate([pop.father[pop.father_recorded], pop.mother[pop.mother_recorded]])
    child = np.concatenate([kids[pop.father_recorded], kids[pop.mother_recorded]])
    yield "household", *shuffled(pd.DataFrame({
        "parent_id": person_ids(parent), "parent_name": person_names(parent),
        "child_id": person_ids(child), "child_name": person_names(child),
    }), {"parent_id": parent, "child_id": child})

    m = pop.marriages
    recorded = m[m["recorded"]]
    divorced = m[m["divorced"] < NO_DATE]
    swap_m = rng.random(len(recorded)) < 0.5
    swap_d = rng.random(len(divorced)) < 0.5
    dead = np.flatnonzero(pop.death < NO_DATE)
    person = np.concatenate([np.where(swap_m, recorded["wife"], recorded["husband"]),
                             np.where(swap_d, divorced["wife"], divorced["husband"]), dead]).astype(np.int64)
    partner = np.concatenate([np.where(swap_m, recorded["husband"], recorded["wife"]),
                              np.where(swap_d, divorced["husband"], divorced["wife"]),
                              np.full(len(dead), -1)]).astype(np.int64)
    event = np.array(["marriage"] * len(recorded) + ["divorce"] * len(divorced) + ["death"] * len(dead),
                     dtype=object)
    event_day = np.concatenate([recorded["married"], divorced["divorced"], pop.death[dead]]).astype(np.int64)
    ey, em, ed = ymd_from_days(event_day)
    has_partner = partner >= 0
    partner_ids = np.full(len(partner), "", dtype=object)
    partner_names = np.full(len(partner), "", dtype=object)
    partner_ids[has_partner] = person_ids(partner[has_partner])
    partner_names[has_partner] = person_names(partner[has_partner])
    yield "civil_affairs", *shuffled(pd.DataFrame({
        "event": noisy.codes(event, ref.EVENT_ZH), "person_id": person_ids(person),
        "person_name": person_names(person), "partner_id": partner_ids, "partner_name": partner_names,
        "event_date": noisy.dates(ey, em, ed),
    }), {"person_id": person, "partner_id": partner})

    certified = np.flatnonzero(pop.only_child_cert)
    yield "only_child", *shuffled(pd.DataFrame({
        "person_id": person_ids(certified), "person_name": person_names(certified),
    }), {"person_id": certified})

    med = pop.medical
    patient = med["person"].to_numpy()
    yield "medical_insurance", *shuffled(pd.DataFrame({
        "patient_id": person_ids(patient), "patient_name": person_names(patient),
        "year": med["year"].to_numpy().astype(np.int32),
        "total_cost": med["total_cost"].to_numpy(), "out_of_pocket": med["out_of_pocket"].to_numpy(),
    }), {"patient_id": patient})


FAULT_PLAN = {
    "education": [("student_id", "excel_damage"), ("student_id", "bad_checksum"), ("enrolled_from", "month_13")],
    "household": [("child_id", "bad_checksum"), ("parent_id", "excel_damage")],
    "civil_affairs": [("event_date", "invalid_date"), ("person_id", "bad_checksum")],
    "only_child": [("person_id", "bad_checksum")],
    "medical_insurance": [("patient_id", "excel_damage")],
}


def _inject_faults(source: str, frame: pd.DataFrame, persons: dict[str, np.ndarray], referenced: np.ndarray,
                   rng: np.random.Generator, ids: np.ndarray) -> list[dict[str, Any]]:
    """Row-level faults an agency extract really has, on rows no claim depends on. Each one is a row reject."""
    faults: list[dict[str, Any]] = []
    free = np.ones(len(frame), bool)
    for people in persons.values():
        free &= ~referenced[np.maximum(people, 0)] | (people < 0)
    candidates = rng.permutation(np.flatnonzero(free)).tolist()
    per_kind = max(1, int(len(frame) * 0.0002))
    for column, kind in FAULT_PLAN[source]:
        for _ in range(per_kind):
            if not candidates:
                break
            row = candidates.pop()
            id_column = column if column.endswith("_id") else next(iter(persons))
            person = int(persons[id_column][row])
            value = str(frame.at[row, column])
            if kind == "excel_damage":
                value = excel_damaged(str(ids[person]))
            elif kind == "bad_checksum":
                canonical = str(ids[person])
                wrong = "10X98765432".replace(check_char(canonical[:17]), "")
                value = canonical[:17] + wrong[int(rng.integers(0, len(wrong)))]
            elif kind == "month_13":
                value = value[:4] + ("-13" if "-" in value else "13")
            elif kind == "invalid_date":
                value = value[:4] + "-02-30"
            frame.at[row, column] = value
            faults.append({"source": source, "line": row + 2, "column": column, "fault": kind})
    faults.sort(key=lambda f: (f["source"], f["line"]))
    return faults


# ---- writing ------------------------------------------------------------------------------------------------
def _format_plan(formats: str, n_claims: int, household_rows: int) -> dict[str, tuple[str, str | None, bool]]:
    if formats == "auto":
        formats = "mixed" if n_claims <= AUTO_MIXED_MAX_CLAIMS else "csv"
    if formats == "csv":
        return {source: ("csv", "utf-8", False) for source in SOURCES}
    if formats == "parquet":
        return {source: ("parquet", None, False) for source in SOURCES}
    plan = dict(MIXED_PLAN)
    if household_rows > XLSX_MAX_ROWS:
        plan["household"] = ("csv", "gb18030", True)
    return plan


def _write(frame: pd.DataFrame, path: Path, fmt: str, encoding: str | None, headers: dict[str, str] | None,
           source: str, *, header: bool = True) -> None:
    """One block's part of an output file. ``header=False`` (a block after the first, appended to the file): a
    CSV without its header line and byte-order mark."""
    frame = frame.rename(columns=headers) if headers else frame
    if fmt == "csv":
        encoding = encoding or "utf-8"
        if not header and encoding == "utf-8-sig":
            encoding = "utf-8"
        frame.to_csv(path, index=False, header=header, encoding=encoding, lineterminator="\n",
                     chunksize=200_000)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP)
    elif fmt == "xlsx":
        _write_xlsx(frame, path, source)
    else:  # pragma: no cover
        raise ValueError(fmt)


def _write_xlsx(frame: pd.DataFrame, path: Path, source: str) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(source)
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False, name=None):
        # Excel-damaged IDs are real numbers in a real workbook; everything else is text
        sheet.append([_excel_number(v) for v in row])
    workbook.save(path)
    _fix_zip_times(path)


def _excel_number(value: Any) -> Any:
    if isinstance(value, str) and "E+" in value:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _fix_zip_times(path: Path) -> None:
    """Rewrite an XLSX with fixed member timestamps and core-properties dates, so a seed gives identical bytes."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in members:
            if name == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2000-01-01T00:00:00Z", data)
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)


__all__ = ["BLOCK_CLAIMS", "FORMAT_CHOICES", "SOURCES", "block_sizes", "families_for", "generate"]
