"""Comparators: one similarity in [0, 1] per candidate pair, NaN where either side has no value.

Every comparator is a plain function ``(left_column, right_column, left_positions, right_positions) -> float64
array`` over prepared token columns (:mod:`matchkit.link.token_columns`), registered under one or more aliases in
:data:`COMPARATORS`: a new comparator is one function plus one registry line. Comparators see only keyed tokens; the
levels they return are what a scoring model (:mod:`matchkit.link.scoring`) turns into evidence.

Set comparisons gather each pair's two token lists into small dense blocks (pairs x list width) and compare every
token with every other with numpy broadcasting, a chunk of pairs at a time: the same result as exploding both sides
and merging on ``(pair, token)``, without the sort, and with memory bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from matchkit.link.token_columns import ListTokens, ScalarTokens, TokenColumn, mix_keys

Comparator = Callable[[TokenColumn, TokenColumn, np.ndarray, np.ndarray], np.ndarray]

CHUNK_PAIRS = 1 << 20

# ID near tokens (matchkit.encode.person.NEAR_WINDOWS): token w is the 17-digit body with window w removed.
# Windows 0 ([0,4], address) and 1 ([4,8], end of address + first year digits) leave the rest of the birth date and
# the sequence number in the token, so sharing one of them alone is rare between different people. Windows 2 ([8,12])
# and 3 ([12,16]) remove the birth date's month/day and the sequence number: what remains (county + birth month, or
# county + century + sequence) is shared by tens to hundreds of people in a real register.
STRONG_NEAR_WINDOWS: tuple[int, ...] = (0, 1)

NEAR_ALL = 1.0  # every window equal: the same body (only the check character may differ)
NEAR_SEVERAL = 0.75  # two or more windows (one wrong digit on a window overlap, or structured agreement)
NEAR_STRONG = 0.5  # exactly one window, a strong one
NEAR_WEAK = 0.25  # exactly one window, a weak one
NAME_EXACT = 1.0  # element 0 equal: the same normalised name (and, by the salt, the same birth date)
NAME_PHONETIC = 2.0 / 3.0  # element 1 equal: the same toneless pinyin (homophone, traditional variant)
NAME_ONE_EDIT = 1.0 / 3.0  # a pinyin or deletion token in common: one syllable dropped, added or replaced


def as_lists(column: TokenColumn) -> ListTokens:
    """A scalar column as lists of length 0 or 1 (a multi-word token becomes one 64-bit mixed token)."""
    if isinstance(column, ListTokens):
        return column
    key = column.words[:, 0]
    for extra in range(1, column.words.shape[1]):
        key = mix_keys(key, column.words[:, extra])
    lengths = column.valid.astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return ListTokens(offsets, key[column.valid], column.valid.copy())


def _both_valid(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    return left.valid[lpos] & right.valid[rpos]


def _chunks(count: int) -> range:
    return range(0, count, CHUNK_PAIRS)


def _mark_repeats(tokens: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Valid mask with repeats of an earlier token in the same row removed (lists as sets)."""
    unique = valid.copy()
    for column in range(1, tokens.shape[1]):
        earlier = (tokens[:, :column] == tokens[:, column : column + 1]) & valid[:, :column]
        unique[:, column] &= ~earlier.any(axis=1)
    return unique


def shared_token_counts(
    left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray, *, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: (distinct tokens in common, distinct tokens left, distinct tokens right), from list position
    ``start`` on."""
    left_lists, right_lists = as_lists(left), as_lists(right)
    shared = np.zeros(len(lpos), dtype=np.int64)
    left_count = np.zeros(len(lpos), dtype=np.int64)
    right_count = np.zeros(len(lpos), dtype=np.int64)
    for begin in _chunks(len(lpos)):
        part = slice(begin, begin + CHUNK_PAIRS)
        left_tokens, left_valid = left_lists.gather(lpos[part], start)
        right_tokens, right_valid = right_lists.gather(rpos[part], start)
        left_valid = _mark_repeats(left_tokens, left_valid)
        right_valid = _mark_repeats(right_tokens, right_valid)
        equal = (
            (left_tokens[:, :, None] == right_tokens[:, None, :])
            & left_valid[:, :, None]
            & right_valid[:, None, :]
        )
        shared[part] = equal.any(axis=2).sum(axis=1)
        left_count[part] = left_valid.sum(axis=1)
        right_count[part] = right_valid.sum(axis=1)
    return shared, left_count, right_count


def exact_token(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """1 when the two tokens (or the two whole lists) are equal, else 0."""
    if isinstance(left, ScalarTokens) and isinstance(right, ScalarTokens):
        result = np.zeros(len(lpos), dtype=np.float64)
        if left.words.shape[1] == right.words.shape[1]:
            for begin in _chunks(len(lpos)):
                part = slice(begin, begin + CHUNK_PAIRS)
                result[part] = (left.words[lpos[part]] == right.words[rpos[part]]).all(axis=1)
    else:
        shared, left_count, right_count = shared_token_counts(left, right, lpos, rpos)
        result = ((shared == left_count) & (shared == right_count)).astype(np.float64)
    result[~_both_valid(left, right, lpos, rpos)] = np.nan
    return result


def token_overlap(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """Overlap coefficient of the two token sets: shared / min(|left|, |right|)."""
    shared, left_count, right_count = shared_token_counts(left, right, lpos, rpos)
    smaller = np.minimum(left_count, right_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(smaller > 0, shared / np.maximum(smaller, 1), np.nan)
    result[~_both_valid(left, right, lpos, rpos)] = np.nan
    return result


def near_windows(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """ID near tokens compared window by window (position w against position w: tokens are keyed per window).

    1 all windows equal, 0.75 two or more, 0.5 exactly one strong window, 0.25 exactly one weak window, 0 none.
    """
    left_lists, right_lists = as_lists(left), as_lists(right)
    result = np.zeros(len(lpos), dtype=np.float64)
    for begin in _chunks(len(lpos)):
        part = slice(begin, begin + CHUNK_PAIRS)
        left_tokens, left_valid = left_lists.gather(lpos[part])
        right_tokens, right_valid = right_lists.gather(rpos[part])
        width = min(left_tokens.shape[1], right_tokens.shape[1])
        equal = (
            (left_tokens[:, :width] == right_tokens[:, :width])
            & left_valid[:, :width]
            & right_valid[:, :width]
        )
        count = equal.sum(axis=1)
        same_length = left_valid.sum(axis=1) == right_valid.sum(axis=1)
        strong = equal[:, [w for w in STRONG_NEAR_WINDOWS if w < width]].any(axis=1)
        level = np.where(count >= 2, NEAR_SEVERAL, np.where(strong, NEAR_STRONG, NEAR_WEAK))
        level = np.where(count == 0, 0.0, level)
        level = np.where((count == left_valid.sum(axis=1)) & same_length & (count > 0), NEAR_ALL, level)
        result[part] = level
    result[~_both_valid(left, right, lpos, rpos)] = np.nan
    return result


def name_fuzzy(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """Name tokens ``[exact, pinyin, pinyin minus one syllable, ...]``: exact 1 > phonetic 2/3 > one edit 1/3 > 0.

    One edit: any token in common from position 1 on. The other's full pinyin among one's deletions is a dropped
    or added character; two deletions in common is one replaced character (or, for two-character names, one
    shared syllable anywhere, which is why one edit is weak evidence).
    """
    left_lists, right_lists = as_lists(left), as_lists(right)
    first_left, first_right = left_lists.element(0), right_lists.element(0)
    second_left, second_right = left_lists.element(1), right_lists.element(1)
    exact = (
        first_left.valid[lpos] & first_right.valid[rpos] & (first_left.keys[lpos] == first_right.keys[rpos])
    )
    phonetic = (
        second_left.valid[lpos]
        & second_right.valid[rpos]
        & (second_left.keys[lpos] == second_right.keys[rpos])
    )
    result = np.where(exact, NAME_EXACT, np.where(phonetic, NAME_PHONETIC, 0.0))
    undecided = np.flatnonzero(~exact & ~phonetic)
    if len(undecided):
        shared, _, _ = shared_token_counts(left_lists, right_lists, lpos[undecided], rpos[undecided], start=1)
        result[undecided[shared > 0]] = NAME_ONE_EDIT
    result[~_both_valid(left, right, lpos, rpos)] = np.nan
    return result


def set_bits_per_row(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a 2-D array of 64-bit words, as int64. Summed column by column: numpy's reduction over
    a short row axis is several times slower."""
    unsigned = words.view(np.uint64)  # numpy counts the bits of a signed integer's absolute value
    total = np.zeros(len(words), dtype=np.int64)
    for column in range(unsigned.shape[1]):
        total += np.bitwise_count(unsigned[:, column])
    return total


def popcounts(column: ScalarTokens) -> np.ndarray:
    """Set bits per row of a bit-array column (memoised on the column: blocking and EM reuse it)."""
    cached = getattr(column, "_popcounts", None)
    if cached is None:
        cached = set_bits_per_row(column.words)
        object.__setattr__(column, "_popcounts", cached)
    return cached


def dice(left: TokenColumn, right: TokenColumn, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """Dice coefficient of two Bloom filters, ``2 |a & b| / (|a| + |b|)``, by popcount over 64-bit words.

    Vectorised a chunk of pairs at a time: gather both sides' words, AND, ``np.bitwise_count``, sum per row.
    NaN where either side has no filter (a null cell); two present but empty filters are equal (1).
    """
    if not isinstance(left, ScalarTokens) or not isinstance(right, ScalarTokens):
        raise TypeError("dice compares bit-array (binary) columns")
    if not left.valid.any() or not right.valid.any():
        return np.full(len(lpos), np.nan)  # a side with no filters at all (its width is not even known)
    if left.words.shape[1] != right.words.shape[1]:
        raise ValueError("dice needs Bloom filters of the same size on both sides")
    left_pop, right_pop = popcounts(left), popcounts(right)
    result = np.empty(len(lpos), dtype=np.float64)
    for begin in _chunks(len(lpos)):
        part = slice(begin, begin + CHUNK_PAIRS)
        lp, rp = lpos[part], rpos[part]
        common = set_bits_per_row(left.words[lp] & right.words[rp])
        total = left_pop[lp] + right_pop[rp]
        with np.errstate(invalid="ignore", divide="ignore"):
            result[part] = np.where(total > 0, 2.0 * common / np.maximum(total, 1), 1.0)  # two empty sets: equal
    result[~_both_valid(left, right, lpos, rpos)] = np.nan
    return result


# One registry of comparator aliases.
COMPARATORS: dict[str, Comparator] = {
    "exact": exact_token,
    "equal": exact_token,
    "overlap": token_overlap,
    "set_overlap": token_overlap,
    "near_windows": near_windows,
    "id_near": near_windows,
    "name_fuzzy": name_fuzzy,
    "name_fz": name_fuzzy,
    "dice": dice,
    "bloom": dice,
}


def get_comparator(alias: str) -> Comparator:
    try:
        return COMPARATORS[alias]
    except KeyError:
        raise KeyError(f"unknown comparator {alias!r}; known: {', '.join(sorted(COMPARATORS))}") from None
