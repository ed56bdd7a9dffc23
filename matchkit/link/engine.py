"""The generic linkage engine behind ``matchkit link``: two loaded linkage files in, scored record pairs out.

The job around it (opening and checking the files, writing pairs, candidates and statistics) is
:mod:`matchkit.jobs.link`; this module reads and writes no file.

Steps, each a piece of :mod:`matchkit.link` that ``verify``'s fuzzy fallback uses too:

1. **Refuse** what cannot be linked, by file name: a file that is not a linkage file, files hashed under
   different keys, purposes or encoding versions, a field encoded differently on the two sides, no blocking pass
   in common, a file not signed by a trusted agency when trust is configured.
2. **Block** (:func:`matchkit.link.blocking.block`) on every common ``[[blocking]]`` pass's keyed token and take
   the union; the candidate count per pass is reported.
3. **Compare** every candidate pair field by field: exact tokens, and Dice similarity of the Bloom filters (numpy
   popcount); each field's similarity becomes an agreement *level*. Both files' compared columns are first laid out
   as record rows (:mod:`matchkit.link.rows`: a pair is two row reads); :func:`field_levels` is the column-by-column
   reference (:func:`matchkit.link.compare.dice`) and the fallback.
4. **Score** with a Fellegi–Sunter model (:mod:`matchkit.link.scoring`) whose u comes from random pairs and whose
   m and prior come from EM over the candidates (:mod:`matchkit.link.em`); the score is the posterior match
   probability. Exact agreements are adjusted for the frequency of the agreed value (:mod:`matchkit.link.tf`) and
   name fields that repeat others are counted once (:mod:`matchkit.link.repeats`). When EM does not converge or
   does not separate, the plain fallback scores a pair by its mean field similarity instead, and says so.
5. **Select** pairs scoring at least the threshold, and, with ``one_to_one``, a greedy 1:1 assignment by score
   (:func:`matchkit.link.select.one_to_one`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from matchkit.errors import IncompatibleFilesError, MatchkitError
from matchkit.io.hashed.format import FieldSpec, LinkageLayout, blocking_column, bloom_column, token_column
from matchkit.link import blocking
from matchkit.link.blocking import DEFAULT_MAX_BLOCK_SIZE, CandidatePairs, block
from matchkit.link.compare import dice, exact_token
from matchkit.link.em import FLOOR, estimate, exact_float, exact_sum, level_frequencies
from matchkit.link.rows import DICE_CUTS, RecordRows, agreement_levels, compare_rows, record_rows
from matchkit.link.scoring import FieldModel, LinkageModel, Table, match_weights, probability
from matchkit.link.select import one_to_one_rows
from matchkit.link.stats import LinkStats
from matchkit.link.tf import TermFrequencies, TfTerm, adjustments, declared_terms, term_frequencies
from matchkit.link.token_columns import (
    ScalarTokens,
    TokenColumn,
    TokenFrame,
    WordPieces,
    arrow_tokens,
    word_pieces,
)
from matchkit.runtime.workers import default_workers
from matchkit.settings import EM_THRESHOLD, FALLBACK_THRESHOLD

if TYPE_CHECKING:
    import pandas as pd

RANDOM_PAIRS = 100_000  # u of the Dice levels; measured: 300,000 gave the same links at 100k x 100k
MIN_SESSION_PAIRS = 50  # a blocking pass with fewer candidates is too small for its own EM session
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FieldPlan:
    """How one field common to both files is compared."""

    name: str
    exact: str | None  # token column
    bloom: str | None  # Bloom-filter column
    type: str = ""  # the field's type in the schema (name, text, date, number, id)

    @property
    def n_levels(self) -> int:
        if self.bloom is None:
            return 2  # disagree, agree
        return len(DICE_CUTS) + 2  # dice bands 0..3, then exact agreement (or Dice >= 0.999 without a token)


@dataclass(frozen=True)
class ScoredCandidates:
    """Every candidate pair with its score: positions into each side's record ids."""

    left_ids: np.ndarray  # every record id of each side
    right_ids: np.ndarray
    left: np.ndarray  # per candidate pair
    right: np.ndarray
    scores: np.ndarray

    def chunks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(left ids, right ids, scores)`` a part at a time (tens of millions of candidates never become one
        array of ids)."""
        for start in range(0, len(self.scores), rows):
            part = slice(start, start + rows)
            yield self.left_ids[self.left[part]], self.right_ids[self.right[part]], self.scores[part]


@dataclass
class LinkResult:
    left_ids: np.ndarray  # per link, ordered by left record, then score (best first), then right record
    right_ids: np.ndarray
    scores: np.ndarray
    output: Path | None
    stats: LinkStats
    candidates: ScoredCandidates | None = field(default=None, repr=False)  # kept when asked (keep_candidates)

    @property
    def pairs(self) -> pd.DataFrame:
        """The links as a DataFrame ``left_id, right_id, score`` (imports pandas; the job itself does not)."""
        import pandas as pd

        return pd.DataFrame({"left_id": self.left_ids, "right_id": self.right_ids, "score": self.scores})


def plan_fields(left: LinkageLayout, right: LinkageLayout, names: tuple[str, str] = ("left", "right")
                ) -> list[FieldPlan]:
    """Fields present in both files, refusing any field whose encodings differ between them. ``names``: the two
    files' names, for the message."""
    plans = []
    for name, spec in left.fields.items():
        other = right.fields.get(name)
        if other is None:
            continue
        if other != spec:
            raise IncompatibleFilesError(
                f"field {name!r} is encoded differently in {names[0]} ({spec.describe()}) and "
                f"{names[1]} ({other.describe()}); hash both sides with the same schema")
        plans.append(FieldPlan(name, token_column(name) if "exact" in spec.encodings else None,
                               bloom_column(name) if "bloom" in spec.encodings else None, spec.type))
    if not plans:
        raise IncompatibleFilesError(f"{names[0]} and {names[1]} have no field in common")
    return plans


@dataclass(frozen=True)
class BlockingPass(blocking.BlockingPass):
    """A blocking pass of a linkage file: the generic pass plus the fields its key is built from."""

    fields: frozenset[str] = frozenset()


def plan_passes(left: LinkageLayout, right: LinkageLayout, names: tuple[str, str] = ("left", "right")
                ) -> list[BlockingPass]:
    """The blocking passes both files were hashed with, alike."""
    common = [name for name, spec in left.blocking.items() if right.blocking.get(name) == spec]
    if not common:
        raise IncompatibleFilesError(
            f"{names[0]} and {names[1]} have no blocking pass in common; both sides must be hashed "
            "with the same schema (blocking is mandatory: every pair of two large files is never compared)")
    return [BlockingPass(name, blocking_column(name), fields=left.blocking[name].fields) for name in common]


@dataclass
class LinkSide:
    """One loaded file: blocking keys and exact tokens as token columns, Bloom filters still as Arrow columns
    (they go straight into the record rows, or become token columns if the rows cannot take them), and ids."""

    frame: TokenFrame
    filters: dict[str, pa.ChunkedArray]
    ids: np.ndarray


def side_columns(plans: list[FieldPlan], passes: list[BlockingPass]) -> tuple[list[str], list[str]]:
    """(token columns, Bloom-filter columns) a side of the link reads."""
    return [p.column for p in passes] + [plan.exact for plan in plans if plan.exact], \
        [plan.bloom for plan in plans if plan.bloom]


def load_side(table: pa.Table, id_column: str, plans: list[FieldPlan], passes: list[BlockingPass]) -> LinkSide:
    """A side of the link from its Arrow columns (``id_column`` and :func:`side_columns`)."""
    tokens, filters = side_columns(plans, passes)
    prepared: dict[str, TokenColumn] = {name: arrow_tokens(table.column(name)) for name in tokens}
    ids = table.column(id_column)
    ids_array = ids.to_numpy() if pa.types.is_integer(ids.type) else np.asarray(ids.to_pylist(), dtype=object)
    return LinkSide(TokenFrame.from_columns(table.num_rows, prepared), {name: table.column(name) for name in filters},
                 ids_array)


def field_levels(plan: FieldPlan, left: TokenFrame, right: TokenFrame, lpos: np.ndarray,
                 rpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level, similarity) per pair for one field, column by column; level -1 and similarity NaN where a side has
    no value. The reference for :func:`matchkit.link.rows.compare_rows`."""
    exact = (exact_token(left.column(plan.exact), right.column(plan.exact), lpos, rpos)
             if plan.exact else None)
    similarity = dice(left.column(plan.bloom), right.column(plan.bloom), lpos, rpos) if plan.bloom else None
    return agreement_levels(exact, similarity)


def comparison_rows(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame,
                    left_filters: dict[str, pa.ChunkedArray] | None = None,
                    right_filters: dict[str, pa.ChunkedArray] | None = None) -> tuple[RecordRows, RecordRows] | None:
    """Both sides' compared columns as record rows (:mod:`matchkit.link.rows`). Bloom filters come from the
    frames, or from Arrow columns (``*_filters``, by name) copied once, straight into the rows. None when a column
    does not fit that layout: then the Arrow filters are added to the frames as token columns, for the
    column-by-column path."""
    fields = [(plan.exact, plan.bloom) for plan in plans]
    names = [name for field in fields for name in field if name is not None]
    sides: list[dict[str, WordPieces]] = []
    for frame, filters in ((left, left_filters or {}), (right, right_filters or {})):
        columns = {name: word_pieces(filters[name] if name in filters else frame.column(name)) for name in names}
        sides.append({name: pieces for name, pieces in columns.items() if pieces is not None})
    fits = all(len(side) == len(names) for side in sides)
    rows = record_rows(fields, sides[0], sides[1]) if fits else None
    if rows is None:
        for frame, filters in ((left, left_filters or {}), (right, right_filters or {})):
            for name, array in filters.items():
                frame.add(name, arrow_tokens(array))
    return rows


def comparison_table(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame, lpos: np.ndarray,
                     rpos: np.ndarray, rows: tuple[RecordRows, RecordRows] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(levels, similarities), each pairs x fields (int8 and float32: at a million records a side the candidates
    run to tens of millions, and these two tables are most of the job's memory). With ``rows`` (from
    :func:`comparison_rows`) a pair is two record-row reads; without, each field is compared column by column."""
    if rows is not None:
        return compare_rows(rows[0], rows[1], lpos, rpos, threads=compare_threads())
    levels = np.empty((len(lpos), len(plans)), dtype=np.int8)
    similarities = np.empty((len(lpos), len(plans)), dtype=np.float32)

    def compare_field(index: int) -> None:
        levels[:, index], similarities[:, index] = field_levels(plans[index], left, right, lpos, rpos)

    for plan in plans:  # prepare token columns once, before the threads share them
        for column in (plan.exact, plan.bloom):
            if column:
                left.column(column)
                right.column(column)
    # numpy releases the GIL in its gathers, popcounts and reductions: fields compare in parallel threads
    with ThreadPoolExecutor(max_workers=compare_threads()) as pool:
        list(pool.map(compare_field, range(len(plans))))
    return levels, similarities


def compare_threads() -> int:
    """Threads for field comparison: as many as hashing uses workers (``MATCHKIT_WORKERS``, else the cores)."""
    return default_workers()


def _model(plans: list[FieldPlan], m: list[tuple[float, ...]], u: list[tuple[float, ...]], *,
           prior: float) -> LinkageModel:
    def reader(name: str) -> Callable[[Table], np.ndarray]:
        return lambda table: np.asarray(table[name])

    fields = [FieldModel(name=plan.name, levels=tuple(str(level) for level in range(len(m_f))), m=m_f, u=u_f,
                         level_of=reader(plan.name)) for plan, m_f, u_f in zip(plans, m, u)]
    return LinkageModel(tuple(fields), prior=prior)


def link_tables(
    left_side: LinkSide,
    right_side: LinkSide,
    plans: list[FieldPlan],
    passes: list[BlockingPass],
    *,
    threshold: float | None = None,
    one_to_one: bool = False,
    method: str = "auto",
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    random_pairs: int = RANDOM_PAIRS,
    seed: int = 0,
    keep_candidates: bool = False,
    load_seconds: float = 0.0,
    progress: Progress | None = None,
    terms: Sequence[TfTerm] | None = None,
) -> LinkResult:
    """Link two loaded sides (:func:`load_side`) on the fields and passes planned for them.

    ``method``: ``"auto"`` (EM, falling back to the plain threshold when EM cannot be trusted), ``"em"`` (EM or
    an error) or ``"threshold"`` (mean field similarity only). ``threshold`` defaults to 0.5 (posterior) for
    EM and 0.85 (mean similarity) for the fallback. ``keep_candidates``: also return every candidate pair.
    ``terms``: the term-frequency adjustment of exact agreements (:mod:`matchkit.link.tf`; the job passes what the
    files' schemas declare, :func:`matchkit.link.tf.layout_terms`); None: the default (names and texts), ``[]``:
    none.
    """
    say = progress or (lambda message: None)
    check_method(method, threshold)
    if terms is None:
        terms = default_terms(plans)
    stats: dict[str, Any] = {"fields": [p.name for p in plans]}

    started = time.perf_counter()
    left, right, left_ids, right_ids = left_side.frame, right_side.frame, left_side.ids, right_side.ids
    rows = comparison_rows(plans, left, right, left_side.filters, right_side.filters)
    left_side.filters = right_side.filters = {}  # the Arrow filter columns: the rows hold a copy now
    stats.update(left_records=len(left), right_records=len(right),
                 load_seconds=load_seconds + time.perf_counter() - started)
    say(f"loaded {len(left):,} x {len(right):,} records")

    started = time.perf_counter()
    candidates = block(left, right, passes, max_block_size=max_block_size)
    stats.update(
        candidates=candidates.total,
        blocking_seconds=time.perf_counter() - started,
        passes={name: {"candidates": s.candidates, "skipped_keys": s.skipped_keys, "skipped_pairs": s.skipped_pairs}
                for name, s in candidates.passes.items()},
        reduction_ratio=1.0 - candidates.total / max(len(left) * len(right), 1),
    )
    say(f"{candidates.total:,} candidate pairs from {len(passes)} blocking passes")

    started = time.perf_counter()
    levels, similarities = comparison_table(plans, left, right, candidates.left, candidates.right, rows)
    seconds = time.perf_counter() - started
    stats.update(compare_seconds=seconds,
                 comparisons_per_second=candidates.total * len(plans) / seconds if seconds > 0 else None)

    started = time.perf_counter()
    scores, used = score_candidates(plans, left, right, candidates, levels, similarities, passes, method, random_pairs, seed,
                          stats, rows, terms=list(terms))
    stats.update(method=used, score_seconds=time.perf_counter() - started)
    if threshold is None:
        threshold = EM_THRESHOLD if used == "em" else FALLBACK_THRESHOLD
    stats["threshold"] = threshold

    keep = np.flatnonzero(scores >= threshold)
    if one_to_one:
        keep = keep[one_to_one_rows(candidates.left[keep], candidates.right[keep], scores[keep])]
    lpos, rpos, kept_scores = candidates.left[keep], candidates.right[keep], scores[keep]
    order = np.lexsort((rpos, -kept_scores, lpos))  # by left record, best score first, then right record
    lpos, rpos, kept_scores = lpos[order], rpos[order], kept_scores[order]
    stats["links"] = len(lpos)
    stats["links_found_by_pass"] = {p.name: int(shares_key(left, right, p, lpos, rpos).sum()) for p in passes}
    return LinkResult(left_ids[lpos], right_ids[rpos], kept_scores, None, LinkStats.from_record(stats),
                      ScoredCandidates(left_ids, right_ids, candidates.left, candidates.right, scores)
                      if keep_candidates else None)


def check_method(method: str, threshold: float | None) -> None:
    if method not in ("auto", "em", "threshold"):
        raise MatchkitError(f"unknown method {method!r}: auto, em or threshold")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise MatchkitError(f"threshold must be in [0, 1], got {threshold}")


def score_candidates(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame, candidates: CandidatePairs,
           levels: np.ndarray, similarities: np.ndarray, passes: list[BlockingPass], method: str,
           random_pairs: int, seed: int, stats: dict[str, Any],
           rows: tuple[RecordRows, RecordRows] | None = None, *, terms: Sequence[TfTerm] | None = None,
           all_pairs: float | None = None) -> tuple[np.ndarray, str]:
    if method == "em" and not len(levels):
        raise MatchkitError("no candidate pairs: the Fellegi-Sunter model cannot be estimated (and there is "
                            "nothing to link)")
    if method != "threshold" and len(levels):
        repeats = model_repeats(plans, left, right, levels, stats, seed=seed)
        adjust = TfAdjuster(plans, terms or [], left, right, candidates, levels, stats)
        model = estimate_model(plans, left, right, candidates, levels, passes, random_pairs=random_pairs,
                               seed=seed, stats=stats, rows=rows, adjust=adjust, all_pairs=all_pairs,
                               repeats=repeats)
        if model is not None:
            return probability(match_weights(_level_table(plans, levels), model) + adjust(model)), "em"
        if method == "em":
            raise MatchkitError("the Fellegi-Sunter model could not be estimated from these files (EM did not "
                                "converge or does not separate matches); use --method threshold")
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(similarities, axis=1) if similarities.size else np.zeros(len(levels))
    return np.nan_to_num(mean, nan=0.0), "threshold"


def u_probabilities(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame, *, random_pairs: int,
                    seed: int, rows: tuple[RecordRows, RecordRows] | None = None) -> list[tuple[float, ...]]:
    """P(level | non-match) per field: level frequencies over uniformly random pairs, except exact agreement,
    whose probability ``sum_v p_left(v) p_right(v)`` is computed exactly from the two files' token counts (a
    sample would see too few exact agreements of a near-unique field to estimate it)."""
    rng = np.random.default_rng(seed)
    sample = min(random_pairs, len(left) * len(right))
    lpos, rpos = rng.integers(0, len(left), sample), rng.integers(0, len(right), sample)
    order = np.argsort(lpos, kind="stable")  # the same pairs, in left order: gathers walk memory forwards
    random_levels, _ = comparison_table(plans, left, right, lpos[order], rpos[order], rows)
    sampled = level_frequencies(random_levels, [plan.n_levels for plan in plans])
    out = []
    for index, plan in enumerate(plans):
        u = np.asarray(sampled[index])
        if plan.exact is not None:
            agree = max(_exact_agreement(left.column(plan.exact), right.column(plan.exact)), FLOOR)
            u = np.append(u[:-1] / max(u[:-1].sum(), FLOOR) * (1.0 - agree), agree)
        out.append(tuple(u.tolist()))
    return out


def _exact_agreement(left: TokenColumn, right: TokenColumn) -> float:
    assert isinstance(left, ScalarTokens) and isinstance(right, ScalarTokens)
    left_keys, left_counts = np.unique(left.keys[left.valid], return_counts=True)
    right_keys, right_counts = np.unique(right.keys[right.valid], return_counts=True)
    if not len(left_keys) or not len(right_keys):
        return 0.0
    _, in_left, in_right = np.intersect1d(left_keys, right_keys, assume_unique=True, return_indices=True)
    shared = int((left_counts[in_left].astype(np.int64) * right_counts[in_right]).sum())  # exact, any order
    return float(shared) / (float(left_counts.sum()) * float(right_counts.sum()))


def estimate_model(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame, candidates: CandidatePairs,
                   levels: np.ndarray, passes: list[BlockingPass], *, random_pairs: int = RANDOM_PAIRS,
                   seed: int = 0, stats: dict[str, Any] | None = None,
                   rows: tuple[RecordRows, RecordRows] | None = None,
                   adjust: Callable[[LinkageModel], np.ndarray] | None = None,
                   all_pairs: float | None = None,
                   repeats: dict[str, list[str]] | None = None) -> LinkageModel | None:
    """The Fellegi–Sunter model, estimated without labels; None when it cannot be trusted.

    Blocked candidates are not a random sample: a non-matching pair found by the date-of-birth pass agrees on the
    date of birth far more often than u says. So m is estimated the way Splink does it, one EM session per
    blocking pass over that pass's candidates with the fields the pass blocks on left out of the session (their
    levels set to missing); a field's m is the average over the sessions where it was free, weighted by the
    matches each session found. u comes from random pairs (:func:`u_probabilities`). The prior of the final
    model is P(match) for a random pair, solved by fixed-point iteration so that it equals the expected number
    of links among the candidates divided by all pairs (``all_pairs``, by default left x right; one file
    deduplicated has n (n - 1) / 2), with ``adjust`` (the term-frequency adjustment per candidate) in the weights.
    A field that repeats a field a pass blocks on (``repeats``, :mod:`matchkit.link.repeats`) is left out of that
    pass's session too.
    """
    n_levels = [plan.n_levels for plan in plans]
    u = u_probabilities(plans, left, right, random_pairs=random_pairs, seed=seed, rows=rows)
    m_sum = [np.zeros(count) for count in n_levels]
    m_weight = np.zeros(len(plans))
    sessions: dict[str, Any] = {}
    for blocking_pass in passes:
        in_pass = shares_key(left, right, blocking_pass, candidates.left, candidates.right)
        blocked = session_blocked(plans, blocking_pass, repeats)
        if in_pass.sum() < MIN_SESSION_PAIRS or len(blocked) == len(plans):
            continue
        session_levels = levels[in_pass]
        session_levels[:, blocked] = -1
        fitted = estimate(session_levels, n_levels, u, prior=0.5)
        sessions[blocking_pass.name] = {"pairs": int(in_pass.sum()), "iterations": fitted.iterations,
                                        "converged": fitted.converged, "separating": fitted.separating,
                                        "match_share": fitted.prior}
        if not (fitted.converged and fitted.separating):
            continue
        matches = fitted.prior * float(in_pass.sum())
        for index in range(len(plans)):
            if index not in blocked:
                m_sum[index] += matches * np.asarray(fitted.m[index])
                m_weight[index] += matches
    if stats is not None:
        stats["em"] = {"sessions": sessions, "u": {p.name: list(u_f) for p, u_f in zip(plans, u)}}
    if not (m_weight > 0).all():
        return None  # some field was never estimated: no trustworthy model
    m = [tuple((total / weight).tolist()) for total, weight in zip(m_sum, m_weight)]
    if all_pairs is None:
        all_pairs = float(len(left)) * float(len(right))
    model = _model(plans, m, u, prior=min(min(len(left), len(right)) / max(all_pairs, 1.0), 0.5))
    bayes = match_weights(_level_table(plans, levels), model) - model.prior_weight
    if adjust is not None:
        bayes = bayes + adjust(model)
    prior = model.prior
    for _ in range(50):  # prior = expected links / all pairs (a contraction: converges in a few steps)
        logit = np.log(prior) - np.log1p(-prior)
        # an exact sum: the same whatever order or partitions the candidates come in (matchkit.link.partitioned)
        updated = float(np.clip(exact_float(exact_sum(probability(bayes + logit))) / all_pairs, FLOOR / all_pairs,
                                0.5))
        if abs(updated - prior) <= 1e-9 * prior:
            break
        prior = updated
    if stats is not None:
        stats["em"].update(m={p.name: list(m_f) for p, m_f in zip(plans, m)}, prior=prior,
                           expected_links=prior * all_pairs)
    return _model(plans, m, u, prior=prior)


def session_blocked(plans: list[FieldPlan], blocking_pass: BlockingPass,
                    repeats: dict[str, list[str]] | None) -> list[int]:
    """The field columns a pass's EM session leaves out: the fields it blocks on and those repeating them."""
    blocked_fields = set(blocking_pass.fields)
    blocked_fields |= {a for a, bs in (repeats or {}).items() if blocked_fields & set(bs)}
    return [i for i, plan in enumerate(plans) if plan.name in blocked_fields]


def model_repeats(plans: list[FieldPlan], left: TokenFrame, right: TokenFrame, levels: np.ndarray,
                  stats: dict[str, Any] | None = None, *, seed: int = 0) -> dict[str, list[str]]:
    """Name fields that repeat others (:mod:`matchkit.link.repeats`): found from the exact tokens, their repeated
    fields' levels masked in ``levels`` (in place) where they agree, and a warning in ``stats``."""
    from matchkit.link import repeats as repeated

    found = repeated.repeated_fields([(plan.name, plan.exact) for plan in plans if plan.exact and plan.type == "name"],
                                     left, right, seed=seed)
    if found:
        masked = repeated.mask_repeated(levels, {plan.name: i for i, plan in enumerate(plans)},
                                        [plan.n_levels - 1 for plan in plans], found)
        if stats is not None:
            stats["repeated_fields"] = {"fields": found, "levels_masked": masked}
            stats.setdefault("warnings", []).extend(repeated.describe(found))
    return found


def default_terms(plans: list[FieldPlan]) -> list[TfTerm]:
    """The term-frequency terms when no schema declaration is at hand: every name or text field with an exact
    token (:data:`matchkit.link.tf.DEFAULT_TF_TYPES`)."""
    return declared_terms({plan.name: FieldSpec(plan.type, ("exact",)) for plan in plans if plan.exact}, None,
                          [plan.name for plan in plans])


class TfAdjuster:
    """The term-frequency adjustment of every candidate under a model (:func:`matchkit.link.tf.adjustments`),
    value counts made once; the last model's result is remembered (the prior solve and the final score share it)."""

    def __init__(self, plans: list[FieldPlan], terms: Sequence[TfTerm], left: TokenFrame, right: TokenFrame,
                 candidates: CandidatePairs, levels: np.ndarray, stats: dict[str, Any] | None = None) -> None:
        by_name = {plan.name: plan for plan in plans}
        self.plans, self.levels, self.candidates = plans, levels, candidates
        self.tables: list[TermFrequencies] = [
            term_frequencies(term, [by_name[f].exact or "" for f in term.fields], left, right) for term in terms]
        self._last: tuple[tuple[float, ...], np.ndarray] | None = None
        if stats is not None and self.tables:
            stats["term_frequencies"] = {t.term.name: {"fields": list(t.term.fields), "values": t.values}
                                         for t in self.tables}

    def __call__(self, model: LinkageModel) -> np.ndarray:
        if not self.tables:
            return np.zeros(len(self.levels))
        exact_u = tuple(f.u[-1] for f in model.fields)
        if self._last is not None and self._last[0] == exact_u:
            return self._last[1]
        result = adjustments(self.tables, {plan.name: i for i, plan in enumerate(self.plans)},
                             [plan.n_levels - 1 for plan in self.plans], [float(np.log(u)) for u in exact_u],
                             self.levels, self.candidates.left, self.candidates.right)
        self._last = (exact_u, result)
        return result


def shares_key(left: TokenFrame, right: TokenFrame, blocking_pass: BlockingPass, lpos: np.ndarray,
               rpos: np.ndarray) -> np.ndarray:
    """Whether each pair shares ``blocking_pass``'s key (was found by that pass)."""
    lcol, rcol = left.column(blocking_pass.column), right.column(blocking_pass.column)
    assert isinstance(lcol, ScalarTokens) and isinstance(rcol, ScalarTokens)
    return lcol.valid[lpos] & rcol.valid[rpos] & (lcol.keys[lpos] == rcol.keys[rpos])


def _level_table(plans: list[FieldPlan], levels: np.ndarray) -> dict[str, np.ndarray]:
    return {plan.name: levels[:, index] for index, plan in enumerate(plans)}
