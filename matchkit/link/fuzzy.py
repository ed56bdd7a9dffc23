"""Fuzzy person links: find the person behind a query whose exact ID token matched nobody.

Pipeline (each step a reusable piece of :mod:`matchkit.link`):
blocking (:data:`PERSON_PASSES`) -> comparison vectors (:func:`person_comparison_vectors`) -> Fellegi–Sunter
weights (:data:`PERSON_MODEL`) -> acceptance policy (:func:`acceptable`) -> best candidate per query.

Inputs are encoding ``mk1`` columns (see docs/DESIGN.md): ``id_near`` (4 near tokens, window w removed),
``name_fz`` (``[exact, pinyin, pinyin minus one syllable, ...]``, salted by birth date), ``dob_tok``.

Acceptance policy
-----------------
A wrong link is worse than no link, so a candidate is linked only when two independent kinds of evidence agree and
no single field is ever enough. With ``near`` the ID near level (see :func:`matchkit.link.compare.near_windows`)
and ``name`` the name level (:func:`matchkit.link.compare.name_fuzzy`), a pair is acceptable when its score reaches
``min_score`` and one of:

A. **same ID body**: all four near tokens are shared (only the check character differs), and the names agree at
   least to one edit (the salt makes that a same-birth-date agreement) or, where a side has no name, the
   birth-date tokens are equal.
B. **one wrong ID digit on a window overlap**: two or more near tokens are shared and the names agree at least to
   one edit.
C. **one ID window**: exactly one near token is shared and the names agree exactly or phonetically and the
   birth-date tokens are equal. One window is never enough with a lesser name: the ID body *contains* the birth
   date, so a window plus an equal birth date is far weaker than the two look apart (window 1 + birth date leaves
   only the county digits free: in a register of 5 million about one random ID in six has such a neighbour);
   windows 2 and 3 are weaker still (county + birth month: hundreds of people share one).
D. **no ID**: the query has no ID near tokens at all, the name agrees exactly and the birth-date tokens are equal.
   Two people with one name and birth date then tie, and the tie is reported as ambiguous, not resolved.

A name present on both sides that does not agree always blocks the link, whatever the ID and birth date say.

Never enough: a name (at any level) with a disagreeing ID; an ID window with a different name or birth date; one
window with a one-edit name or without a name; a phonetic name without an ID. Fuzzy links are still only
candidates for a human (the caller marks them for review).

Blocking passes are chosen so that every pair the policy can accept shares a key (tested against all pairs on
random data): near token 0, near token 1, near tokens 2+3 together (A, B: two shared windows always include
window 0 or 1, or are exactly windows 2 and 3), name element 0 and element 1 (C, D). Single windows 2 and 3 are
not passes: their blocks are large (token 3 is county + birth month) and a pair they alone find is acceptable only
through C, whose name agreement the name passes already find. Likewise a pass on every name token
(dropped/added character) would only find pairs that need two shared windows, which the near passes find.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from matchkit.link.blocking import DEFAULT_MAX_BLOCK_SIZE, BlockingPass, CandidatePairs, block
from matchkit.link.compare import (
    NAME_EXACT,
    NAME_ONE_EDIT,
    NAME_PHONETIC,
    NEAR_ALL,
    NEAR_SEVERAL,
    NEAR_STRONG,
    NEAR_WEAK,
    exact_token,
    name_fuzzy,
    near_windows,
)
from matchkit.link.scoring import (
    FieldModel,
    LinkageModel,
    comparison_levels,
    level_from_thresholds,
    match_weights,
    probability,
)
from matchkit.link.select import best_per_left
from matchkit.link.token_columns import TokenFrame

PERSON_PASSES: tuple[BlockingPass, ...] = (
    BlockingPass("id_near_w0", "id_near", elements=(0,)),
    BlockingPass("id_near_w1", "id_near", elements=(1,)),
    BlockingPass("id_near_w2+w3", "id_near", elements=(2, 3), combine=True),
    BlockingPass("name_exact", "name_fz", elements=(0,)),
    BlockingPass("name_pinyin", "name_fz", elements=(1,)),
)

# Levels of the two model fields. The name is salted by the birth date, so name and birth date are not independent
# evidence: they form one field, whose levels say how much of (name, birth date) agrees.
NEAR_NONE, NEAR_WEAK_LEVEL, NEAR_STRONG_LEVEL, NEAR_SEVERAL_LEVEL, NEAR_ALL_LEVEL = range(5)
(
    NAME_DOB_DISAGREE,
    NAME_DIFFERS_DOB_EQUAL,
    DOB_ONLY,
    NAME_ONE_EDIT_LEVEL,
    NAME_PHONETIC_LEVEL,
    NAME_EXACT_LEVEL,
) = range(6)


def _name_dob_level(vectors: pd.DataFrame) -> np.ndarray:
    name = vectors["name"].to_numpy(dtype=np.float64)
    dob = vectors["dob"].to_numpy(dtype=np.float64)
    level = np.full(len(vectors), -1, dtype=np.int64)
    level[dob == 0] = NAME_DOB_DISAGREE
    level[np.isnan(dob) & (name == 0)] = NAME_DOB_DISAGREE  # no birth dates, names present and different
    level[(dob == 1) & np.isnan(name)] = DOB_ONLY
    level[(dob == 1) & (name == 0)] = NAME_DIFFERS_DOB_EQUAL
    level[name == NAME_ONE_EDIT] = NAME_ONE_EDIT_LEVEL
    level[name == NAME_PHONETIC] = NAME_PHONETIC_LEVEL
    level[name == NAME_EXACT] = NAME_EXACT_LEVEL
    return level


# Fixed m/u priors until EM (a later issue) estimates them from data. Natural-log weights ln(m/u) in brackets.
# m: among true links of claims to a register, most subject IDs are right and typos are mostly one digit; u: the
# chance that two *different* people in a city-sized register (~5 million, ~80 birth years, ~10 counties) agree
# so, estimated from the GB 11643 layout (6 address digits, 8 birth-date digits, 3 sequence digits).
ID_NEAR_FIELD = FieldModel(
    name="id_near",
    levels=("none", "weak_window", "strong_window", "several_windows", "same_body"),
    # none (-4.6): 1% of true links carry someone else's ID entirely; u ~ 1.
    # weak_window (+5.8): typo in the birth day or sequence digits (~1.6% of links); different people share county +
    #   birth month (window 3) or county + century + day digit + sequence (window 2): u ~ 5e-5.
    # strong_window (+11.1): typo in the address or year digits (~2%); sharing county prefix + birth date +
    #   sequence by chance: u ~ 3e-7.
    # several_windows (+11.8): typo on a window overlap (positions 4, 8, 12: ~0.4%); 16 of 17 digits: u ~ 3e-8.
    # same_body (+15.4): only the check character differs (or none): u ~ 1 / register size.
    m=(0.010, 0.016, 0.020, 0.004, 0.950),
    u=(0.99995, 5e-5, 3e-7, 3e-8, 2e-7),
    level_of=level_from_thresholds("id_near", (NEAR_WEAK, NEAR_STRONG, NEAR_SEVERAL, NEAR_ALL)),
)
NAME_DOB_FIELD = FieldModel(
    name="name_dob",
    levels=("disagree", "name_differs_dob_equal", "dob_only", "name_one_edit", "name_phonetic", "name_exact"),
    # u of the name levels includes the same birth date (1/30000 for two random people, ages 0-80) times the
    # chance of the name agreeing: exact ~3e-4 (common full names), phonetic ~1e-3, one edit ~5e-2 (two-character
    # names share a syllable often). m: clerks copy names right ~88% of the time, homophone/traditional 5%,
    # one-character slips 4%, unrelated names 2% (often a nickname), wrong birth date 1%.
    # disagree (-4.6); name_differs_dob_equal (+6.4); dob_only (+9.2: name missing on a side, u raised to 1e-4
    # for birth-date heaping on 1 January and 1st of month); one_edit (+10.1); phonetic (+14.2); exact (+18.3).
    m=(0.010, 0.020, 0.970, 0.040, 0.050, 0.880),
    u=(0.99996, 3.4e-5, 1e-4, 1.7e-6, 3.4e-8, 1e-8),
    level_of=_name_dob_level,
)
# Prior: one true person among a register of ~5 million (logit -15.4). Weights are added to this.
PERSON_MODEL = LinkageModel(fields=(ID_NEAR_FIELD, NAME_DOB_FIELD), prior=2e-7)

# Ambiguity: the best and runner-up accepted candidates are different persons (person rows are unique by
# id_tok); when the runner-up's weight is within ln(10) of the best (its likelihood ratio at least a tenth of
# the best's), the evidence cannot choose between them.
AMBIGUITY_MARGIN = math.log(10.0)

QUERY_COLUMNS = ("id_near", "name_fz", "dob_tok")
PERSON_COLUMNS = ("id_tok", "id_near", "name_fz", "dob_tok")


def person_comparison_vectors(
    queries: TokenFrame, persons: TokenFrame, pairs: CandidatePairs
) -> pd.DataFrame:
    """One row per candidate pair: positions and the raw comparator outputs (NaN where a side lacks the value)."""
    lpos, rpos = pairs.left, pairs.right
    return pd.DataFrame(
        {
            "left": lpos,
            "right": rpos,
            "id_near": near_windows(queries.column("id_near"), persons.column("id_near"), lpos, rpos),
            "name": name_fuzzy(queries.column("name_fz"), persons.column("name_fz"), lpos, rpos),
            "dob": exact_token(queries.column("dob_tok"), persons.column("dob_tok"), lpos, rpos),
        }
    )


def acceptable(vectors: pd.DataFrame, levels: pd.DataFrame, query_has_id: np.ndarray) -> np.ndarray:
    """The acceptance policy (module docstring) as a boolean per pair, before the score threshold."""
    near = levels["id_near"].to_numpy()
    name_dob = levels["name_dob"].to_numpy()
    dob_equal = vectors["dob"].to_numpy(dtype=np.float64) == 1
    same_body = (near == NEAR_ALL_LEVEL) & (name_dob >= DOB_ONLY)
    overlap_digit = (near >= NEAR_SEVERAL_LEVEL) & (name_dob >= NAME_ONE_EDIT_LEVEL)
    one_window = (near >= NEAR_WEAK_LEVEL) & (name_dob >= NAME_PHONETIC_LEVEL) & dob_equal
    no_id = ~query_has_id & (name_dob == NAME_EXACT_LEVEL) & dob_equal
    return same_body | overlap_digit | one_window | no_id


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise KeyError(f"{what}: missing column(s) {', '.join(missing)}")


def best_links(
    queries: pd.DataFrame,
    persons: pd.DataFrame | TokenFrame,
    *,
    min_score: float = 0.75,
    ambiguity_margin: float = AMBIGUITY_MARGIN,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    model: LinkageModel = PERSON_MODEL,
    exclude: np.ndarray | None = None,
) -> pd.DataFrame:
    """The accepted person for each query that has one.

    ``queries``: indexed by query key, columns ``id_near``, ``name_fz``, ``dob_tok`` (each may be null per row).
    ``persons``: columns ``id_tok`` (unique), ``id_near``, ``name_fz``, ``dob_tok``; a :class:`TokenFrame` over
    them may be passed to reuse its prepared columns across calls.

    Returns a frame indexed like ``queries`` (only queries with an accepted candidate, in query order) with
    ``person_id_tok`` (bytes), ``score`` (posterior match probability), ``ambiguous`` (the runner-up accepted
    candidate, a different person, is within ``ambiguity_margin`` of the best in log-odds; ``person_id_tok`` is
    then the best's, which the caller must not trust) and ``n_candidates`` (accepted candidates of the query).

    ``exclude``: optional, one integer per query (by position): the position in ``persons`` of a person the query
    must never be paired with (-1: none). Verify uses it to look for *another* person than the one a subject ID
    names exactly when the names disagree (SPEC §5, docs/RULES.md).
    """
    _check_columns(queries, QUERY_COLUMNS, "queries")
    person_frame = TokenFrame.of(persons)
    _check_columns(person_frame.frame, PERSON_COLUMNS, "persons")
    query_frame = TokenFrame(queries.reset_index(drop=True))

    pairs = block(query_frame, person_frame, PERSON_PASSES, max_block_size=max_block_size)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=np.int64)
        if len(excluded) != len(query_frame):
            raise ValueError("exclude must hold one person position per query")
        if (excluded >= 0).any():
            keep = pairs.right != excluded[pairs.left]
            pairs = CandidatePairs(pairs.left[keep], pairs.right[keep], pairs.passes)
    vectors = person_comparison_vectors(query_frame, person_frame, pairs)
    levels = comparison_levels(vectors, model)
    weights = match_weights(levels, model)
    scores = probability(weights)
    query_has_id = query_frame.column("id_near").valid[pairs.left]
    accepted = acceptable(vectors, levels, query_has_id) & (scores >= min_score)

    chosen = best_per_left(
        pairs.left[accepted], pairs.right[accepted], weights[accepted], margin=ambiguity_margin
    )
    query_positions = chosen.index.to_numpy()
    person_positions = chosen["right"].to_numpy()
    assert person_frame.frame is not None, "persons must carry their id_tok column"
    id_tokens = person_frame.frame["id_tok"].iloc[person_positions].to_numpy(dtype=object)
    result = pd.DataFrame(
        {
            "person_id_tok": pd.Series(id_tokens, dtype=object),
            "score": probability(chosen["weight"].to_numpy()),
            "ambiguous": chosen["ambiguous"].to_numpy(dtype=bool),
            "n_candidates": chosen["n_candidates"].to_numpy(dtype=np.int64),
        }
    )
    result.index = queries.index[query_positions]
    return result
