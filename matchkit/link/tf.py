"""Term-frequency adjustment of exact agreements (what Splink calls ``term_frequency_adjustments``).

The Fellegi–Sunter model weighs an exact agreement on a field by ``ln(m / u)`` with one ``u`` for the whole field:
``u = sum_v p_left(v) p_right(v)``, the chance that two random records agree on *some* value. Two records that
both hold a rare value agree far less often by chance than two that both hold the commonest one, so the weight of an
exact agreement on value ``v`` should use ``u_v``, the chance of a random agreement *on v*:

    u_v = p_left(v) p_right(v) / p(v),   p(v) = (c_left(v) + c_right(v)) / (n_left + n_right)

(the share of random pairs agreeing on ``v``, over the share of matches that hold ``v``, taken as the value's
frequency in both files together; with one file, or two alike, ``u_v = p(v)``: Splink's term frequency). A pair
agreeing exactly on ``v`` gets ``ln(u / u_v)`` added to its match weight; averaged over the values, the adjustment
is zero-centred in the sense that ``sum_v P(v | agree) u / u_v`` restores the field's own ``u``.

A *group* of fields (first name + surname) is adjusted as one term when every field of the group agrees: its
value is the combination of the fields' tokens, and the adjustment replaces the sum of the fields' own weights'
``u`` by the combination's ``u_v``: ``ln(prod_f u_f / u_v)``. This also corrects the independence assumption for
that pair (two random records sharing both a first name and a surname happen far more often than the product of
the two agreement rates says, because names cluster). Where only some fields of a group agree, their own
single-field adjustments apply.

Everything comes from the keyed exact tokens the files already carry: a value is its token (or the combination of
its fields' tokens), its frequency the count of records holding that token. Nothing else is needed, and nothing is
revealed that the token columns do not already show (SECURITY.md, "Term frequencies"). The adjustment is applied at
scoring, after EM, as Splink does (``estimate_without_term_frequencies``): EM estimates m of the plain levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from matchkit.errors import IncompatibleFilesError
from matchkit.io.hashed.format import FieldSpec, LinkageLayout, TermFrequencySpec
from matchkit.link.em import FLOOR
from matchkit.link.token_columns import ScalarTokens, TokenFrame, mix_keys

DEFAULT_TF_TYPES = frozenset({"name", "text"})  # skewed value distributions: where the adjustment helps


@dataclass(frozen=True)
class TfTerm:
    """A field (one name in ``fields``) or a declared group of fields adjusted as one value."""

    name: str
    fields: tuple[str, ...]

    @property
    def is_group(self) -> bool:
        return len(self.fields) > 1


def declared_terms(layout_fields: Mapping[str, FieldSpec], declared: TermFrequencySpec | None,
                   compared: Sequence[str]) -> list[TfTerm]:
    """The terms to adjust, from a file's linkage layout: each field of ``compared`` with an exact token whose
    ``tf`` setting is true, or, where the schema says nothing, whose type is a name or text; then every declared
    group whose fields are all compared."""
    explicit: Mapping[str, bool] = declared.fields if declared is not None else {}
    groups: Mapping[str, tuple[str, ...]] = declared.groups if declared is not None else {}
    terms: list[TfTerm] = []
    for name in compared:
        spec = layout_fields.get(name)
        if spec is None or "exact" not in spec.encodings:
            continue
        wanted = explicit.get(name)
        if wanted is None:
            wanted = spec.type in DEFAULT_TF_TYPES
        if wanted:
            terms.append(TfTerm(name, (name,)))
    for group, members in groups.items():
        if all(member in compared and member in layout_fields and "exact" in layout_fields[member].encodings
               for member in members):
            terms.append(TfTerm(group, tuple(members)))
    return terms


def check_same_declaration(left: LinkageLayout, right: LinkageLayout, left_name: str, right_name: str) -> None:
    """Refuse two files whose schemas declare term frequencies differently (the model would depend on the side)."""
    if (left.term_frequencies or TermFrequencySpec()) != (right.term_frequencies or TermFrequencySpec()):
        raise IncompatibleFilesError(
            f"{left_name} and {right_name} declare term-frequency adjustment differently (tf / [[tf_group]] in "
            "their schemas); hash both sides with the same schema")


def layout_terms(left: LinkageLayout, right: LinkageLayout, compared: Sequence[str],
                 names: tuple[str, str] = ("left", "right")) -> list[TfTerm]:
    """The term-frequency terms both files' schemas declare (or the defaults), refused when they differ."""
    check_same_declaration(left, right, names[0], names[1])
    return declared_terms(left.fields, left.term_frequencies, compared)


def value_keys(frame: TokenFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit key, valid) per record of the combination of ``columns``' whole tokens (valid only when every
    column has a token). 16-byte tokens are folded into 64 bits: a collision merges two values' counts, one in 2^64
    per pair of distinct values."""
    key: np.ndarray | None = None
    valid: np.ndarray | None = None
    for name in columns:
        column = frame.column(name)
        assert isinstance(column, ScalarTokens)
        words = column.words
        folded = words[:, 0]
        for extra in range(1, words.shape[1]):
            folded = mix_keys(folded, words[:, extra])
        key = folded if key is None else mix_keys(key, folded)
        valid = column.valid if valid is None else valid & column.valid
    assert key is not None and valid is not None
    return key, valid


@dataclass(frozen=True)
class TermFrequencies:
    """One term's value of every record on both sides (``-1``: no value) and ``ln u_v`` per value."""

    term: TfTerm
    left_codes: np.ndarray
    right_codes: np.ndarray
    log_u: np.ndarray  # per value code
    log_u_exact: float  # ln sum_v p_left(v) p_right(v): the term's chance agreement averaged over values

    @property
    def values(self) -> int:
        return len(self.log_u)


def term_frequencies(term: TfTerm, token_columns: Sequence[str], left: TokenFrame,
                     right: TokenFrame) -> TermFrequencies:
    """Count each value of ``term`` on both sides (``right`` may be ``left``: one file, deduplicated)."""
    same = right is left
    left_keys, left_valid = value_keys(left, token_columns)
    right_keys, right_valid = (left_keys, left_valid) if same else value_keys(right, token_columns)
    lk, rk = left_keys[left_valid], right_keys[right_valid]
    distinct, inverse = np.unique(np.concatenate([lk, rk]) if not same else lk, return_inverse=True)
    left_counts = np.bincount(inverse[: len(lk)], minlength=len(distinct)).astype(np.float64)
    right_counts = left_counts if same else np.bincount(inverse[len(lk):], minlength=len(distinct)).astype(np.float64)
    log_u, u_exact = value_log_u(left_counts, right_counts, len(lk), len(rk))
    left_codes = np.full(len(left_valid), -1, dtype=np.int64)
    left_codes[left_valid] = inverse[: len(lk)]
    if same:
        right_codes = left_codes
    else:
        right_codes = np.full(len(right_valid), -1, dtype=np.int64)
        right_codes[right_valid] = inverse[len(lk):]
    return TermFrequencies(term, left_codes, right_codes, log_u, float(np.log(max(u_exact, FLOOR * FLOOR))))


def value_log_u(left_counts: np.ndarray, right_counts: np.ndarray, valid_left: int,
                valid_right: int) -> tuple[np.ndarray, float]:
    """``(ln u_v per value, sum_v p_left(v) p_right(v))`` from each value's counts (float64) on the two sides and
    the number of records with a value on each; value by value, so a partition of the values gives the same
    ``ln u_v`` (:mod:`matchkit.link.partitioned`)."""
    n_left, n_right = max(valid_left, 1), max(valid_right, 1)
    p_left, p_right = left_counts / n_left, right_counts / n_right
    p_both = (left_counts + right_counts) / (n_left + n_right)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(p_both > 0, p_left * p_right / np.maximum(p_both, FLOOR * FLOOR), 0.0)
    return np.log(np.maximum(u, FLOOR * FLOOR)), float((p_left * p_right).sum())


def adjust_pairs(terms: Sequence[TfTerm], pair_log_u: Sequence[np.ndarray], field_index: Mapping[str, int],
                 top_levels: Sequence[int], model_log_u: Sequence[float], levels: np.ndarray) -> np.ndarray:
    """:func:`adjustments` from each term's ``ln u_v`` per pair (NaN where the two records do not hold the same
    value): the same sums, term by term, for pairs compared apart from their files' value codes."""
    total = np.zeros(len(levels), dtype=np.float64)
    grouped = {field_index[name] for t in terms if t.is_group for name in t.fields}
    covered = {column: np.zeros(len(levels), dtype=bool) for column in grouped}
    ordered = sorted(zip(terms, pair_log_u), key=lambda item: not item[0].is_group)  # groups first
    for term, values in ordered:
        columns = [field_index[name] for name in term.fields]
        agree = np.ones(len(levels), dtype=bool)
        for column in columns:
            agree &= levels[:, column] == top_levels[column]
        if not term.is_group and columns[0] in covered:
            agree &= ~covered[columns[0]]
        at = np.flatnonzero(agree & ~np.isnan(values))
        base = float(sum(model_log_u[column] for column in columns))
        total[at] += base - values[at]
        if term.is_group:
            for column in columns:
                covered[column][at] = True
    return total


def adjustments(tables: Sequence[TermFrequencies], field_index: Mapping[str, int], top_levels: Sequence[int],
                model_log_u: Sequence[float], levels: np.ndarray, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """Per pair, the sum of ``ln(u / u_v)`` over the terms it agrees on exactly (0 elsewhere).

    ``field_index`` maps a field to its column in ``levels``; ``top_levels[i]`` is the exact-agreement level of
    column ``i`` and ``model_log_u[i]`` the model's ``ln u`` there (what the adjustment replaces). A group that
    agrees is adjusted as a whole and its fields' own terms are then skipped for that pair.
    """
    total = np.zeros(len(lpos), dtype=np.float64)
    grouped = {field_index[name] for t in tables if t.term.is_group for name in t.term.fields}
    covered = {column: np.zeros(len(lpos), dtype=bool) for column in grouped}  # only the grouped fields' columns
    ordered = sorted(tables, key=lambda table: not table.term.is_group)  # groups first
    for table in ordered:
        columns = [field_index[name] for name in table.term.fields]
        agree = np.ones(len(lpos), dtype=bool)
        for column in columns:
            agree &= levels[:, column] == top_levels[column]
        if not table.term.is_group and columns[0] in covered:
            agree &= ~covered[columns[0]]
        at = np.flatnonzero(agree)
        left_codes, right_codes = table.left_codes[lpos[at]], table.right_codes[rpos[at]]
        same = (left_codes == right_codes) & (left_codes >= 0)
        at, codes = at[same], left_codes[same]
        base = float(sum(model_log_u[column] for column in columns))
        total[at] += base - table.log_u[codes]
        if table.term.is_group:
            for column in columns:
                covered[column][at] = True
    return total
