"""Contract and property tests for the generic link core: blocking, comparators, scoring, selection."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.link import COMPARATORS, PERSON_MODEL, PERSON_PASSES, BlockingPass, block, one_to_one
from matchkit.link.blocking import pass_keys
from matchkit.link.fuzzy import acceptable, person_comparison_vectors
from matchkit.link.scoring import comparison_levels, match_weights
from matchkit.link.select import best_per_left
from matchkit.link.token_columns import ListTokens, ScalarTokens, TokenFrame, prepare_column
from tests.test_link_fakes import frame, record, swap, typo

# --- data generators --------------------------------------------------------------------------------------------

token = st.integers(min_value=-3, max_value=3)  # a tiny alphabet, so tokens collide often
token_list = st.one_of(st.none(), st.lists(token, min_size=1, max_size=5))
scalar_token = st.one_of(st.none(), st.sampled_from([b"a" * 16, b"b" * 16, b"c" * 16]))


@st.composite
def token_frames(draw: st.DrawFn, max_rows: int = 8) -> pd.DataFrame:
    rows = draw(st.integers(min_value=0, max_value=max_rows))
    return pd.DataFrame(
        {
            "lists": pd.Series([draw(token_list) for _ in range(rows)], dtype=object),
            "near": pd.Series(
                [draw(st.one_of(st.none(), st.lists(token, min_size=4, max_size=4))) for _ in range(rows)],
                dtype=object,
            ),
            "scalar": pd.Series([draw(scalar_token) for _ in range(rows)], dtype=object),
            "bits": pd.Series([draw(st.one_of(st.none(), st.binary(min_size=16, max_size=16)))
                               for _ in range(rows)], dtype=object),
        }
    )


GENERIC_PASSES = [
    BlockingPass("all", "lists"),
    BlockingPass("first", "lists", elements=(0,)),
    BlockingPass("first_two", "lists", elements=(0, 1)),
    BlockingPass("pair", "near", elements=(2, 3), combine=True),
    BlockingPass("scalar", "scalar"),
]


def reference_keys(cells: pd.Series, blocking_pass: BlockingPass) -> list[set[object]]:
    """Each record's keys computed from the raw cells in plain Python."""
    keys: list[set[object]] = []
    for cell in cells:
        if cell is None:
            keys.append(set())
        elif isinstance(cell, bytes):
            keys.append({cell})
        elif blocking_pass.elements is None:
            keys.append(set(cell))
        elif blocking_pass.combine:
            keys.append(
                {tuple(cell[p] for p in blocking_pass.elements)}
                if len(cell) > max(blocking_pass.elements)
                else set()
            )
        else:
            keys.append({cell[p] for p in blocking_pass.elements if p < len(cell)})
    return keys


def brute_force_pairs(
    left: pd.DataFrame, right: pd.DataFrame, passes: list[BlockingPass]
) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    for blocking_pass in passes:
        left_keys = reference_keys(left[blocking_pass.column], blocking_pass)
        right_keys = reference_keys(right[blocking_pass.column], blocking_pass)
        for (i, lk), (j, rk) in itertools.product(enumerate(left_keys), enumerate(right_keys)):
            if lk & rk:
                found.add((i, j))
    return found


# --- tokens -------------------------------------------------------------------------------------------------------


def test_prepare_column_kinds() -> None:
    lists = prepare_column(pd.Series([[1, 2], None, np.array([3], dtype=np.int64)], dtype=object))
    assert isinstance(lists, ListTokens)
    assert lists.valid.tolist() == [True, False, True]
    assert lists.element(1).valid.tolist() == [True, False, False]
    tokens = prepare_column(pd.Series([b"x" * 16, None, b"y" * 16], dtype=object))
    assert isinstance(tokens, ScalarTokens) and tokens.words.shape == (3, 2)
    assert tokens.valid.tolist() == [True, False, True]
    arrow = prepare_column(
        pd.Series(
            [[5, 6], None], dtype=pd.ArrowDtype(__import__("pyarrow").list_(__import__("pyarrow").int64()))
        )
    )
    assert isinstance(arrow, ListTokens) and arrow.values.tolist() == [5, 6]


# --- blocking -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blocking_pass", GENERIC_PASSES, ids=lambda p: p.name)
@settings(max_examples=60, deadline=None)
@given(left=token_frames(), right=token_frames())
def test_blocking_pass_matches_brute_force(
    blocking_pass: BlockingPass, left: pd.DataFrame, right: pd.DataFrame
) -> None:
    pairs = block(left, right, [blocking_pass], max_block_size=10_000)
    found = set(zip(pairs.left.tolist(), pairs.right.tolist()))
    expected = brute_force_pairs(left, right, [blocking_pass])
    if blocking_pass.combine:
        assert expected <= found  # mixed keys may collide (an extra candidate), never miss
    else:
        assert found == expected
    assert pairs.passes[blocking_pass.name].candidates == len(found)


@settings(max_examples=60, deadline=None)
@given(left=token_frames(), right=token_frames())
def test_union_of_passes_is_sorted_distinct_and_complete(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pairs = block(left, right, GENERIC_PASSES, max_block_size=10_000)
    codes = pairs.left * max(len(right), 1) + pairs.right
    assert (np.diff(codes) > 0).all()
    assert brute_force_pairs(left, right, GENERIC_PASSES) <= set(
        zip(pairs.left.tolist(), pairs.right.tolist())
    )
    assert pairs.total == len(pairs.left)


def test_frequent_keys_are_skipped_and_counted() -> None:
    left = pd.DataFrame({"t": pd.Series([[1], [2]], dtype=object)})
    right = pd.DataFrame({"t": pd.Series([[1]] * 5 + [[2]] * 2, dtype=object)})
    pairs = block(left, right, [BlockingPass("t", "t")], max_block_size=3)
    assert set(pairs.right.tolist()) == {5, 6}
    assert pairs.passes["t"].skipped_keys == 1
    assert pairs.passes["t"].skipped_pairs == 5


@pytest.mark.parametrize("blocking_pass", PERSON_PASSES, ids=lambda p: p.name)
def test_person_passes_pair_records_sharing_their_key(blocking_pass: BlockingPass) -> None:
    people = frame([record("11010519800101123", "张伟", ("zhang", "wei")), record(None, None)])
    queries = frame([record("11010519800101123", "张伟", ("zhang", "wei"))])
    pairs = block(queries, people, [blocking_pass])
    assert list(zip(pairs.left.tolist(), pairs.right.tolist())) == [(0, 0)]
    rows, keys = pass_keys(TokenFrame(people), blocking_pass)
    assert rows.tolist() == [0] * len(rows) and len(keys) >= 1


# --- comparators --------------------------------------------------------------------------------------------------

COMPARATOR_INPUT = {  # which column of token_frames each comparator reads
    "exact": "scalar",
    "equal": "scalar",
    "overlap": "lists",
    "set_overlap": "lists",
    "near_windows": "near",
    "id_near": "near",
    "name_fuzzy": "lists",
    "name_fz": "lists",
    "dice": "bits",
    "bloom": "bits",
}


def test_every_comparator_has_a_contract_input() -> None:
    assert set(COMPARATORS) == set(COMPARATOR_INPUT)


@pytest.mark.parametrize("alias", sorted(COMPARATORS))
@settings(max_examples=80, deadline=None)
@given(left=token_frames(), right=token_frames())
def test_comparator_contract(alias: str, left: pd.DataFrame, right: pd.DataFrame) -> None:
    compare = COMPARATORS[alias]
    column = COMPARATOR_INPUT[alias]
    lcol, rcol = prepare_column(left[column]), prepare_column(right[column])
    lpos = np.repeat(np.arange(len(left)), len(right)).astype(np.int64)
    rpos = np.tile(np.arange(len(right)), len(left)).astype(np.int64)
    forward = compare(lcol, rcol, lpos, rpos)
    backward = compare(rcol, lcol, rpos, lpos)
    assert forward.dtype == np.float64 and forward.shape == lpos.shape
    finite = forward[~np.isnan(forward)]
    assert ((finite >= 0) & (finite <= 1)).all()
    np.testing.assert_array_equal(forward, backward)  # symmetric (NaN in the same places)
    missing = ~(lcol.valid[lpos] & rcol.valid[rpos])
    assert np.isnan(forward[missing]).all() and not np.isnan(forward[~missing]).any()
    own = np.arange(len(left), dtype=np.int64)
    self_similarity = compare(lcol, lcol, own, own)
    assert (self_similarity[lcol.valid] == 1).all()


@pytest.mark.parametrize("alias", sorted(COMPARATORS))
def test_comparator_on_no_pairs(alias: str) -> None:
    data = pd.DataFrame({"lists": [[1]], "near": [[1, 2, 3, 4]], "scalar": [b"a" * 16], "bits": [b"b" * 16]})
    column = prepare_column(data[COMPARATOR_INPUT[alias]])
    empty = np.zeros(0, dtype=np.int64)
    assert COMPARATORS[alias](column, column, empty, empty).shape == (0,)


def test_name_levels() -> None:
    names = frame(
        [
            record(None, "张伟", ("zhang", "wei"), dob=19800101),
            record(None, "章伟", ("zhang", "wei"), dob=19800101),  # homophone
            record(None, "张伟明", ("zhang", "wei", "ming"), dob=19800101),  # added character
            record(None, "张伟", ("zhang", "wei"), dob=19800102),  # other birth date: salt differs
            record(None, "刘洋", ("liu", "yang"), dob=19800101),
        ]
    )
    column = prepare_column(names["name_fz"])
    pairs = np.zeros(5, dtype=np.int64), np.arange(5, dtype=np.int64)
    assert COMPARATORS["name_fz"](column, column, *pairs).tolist() == [1.0, 2 / 3, 1 / 3, 0.0, 0.0]


def test_near_levels() -> None:
    body = "11010519800101123"
    bodies = [body, typo(body, 4), typo(body, 2), typo(body, 15), swap(body, 10), "52010119660303999"]
    near = prepare_column(frame([record(b, None) for b in bodies])["id_near"])
    result = COMPARATORS["id_near"](near, near, np.zeros(6, dtype=np.int64), np.arange(6, dtype=np.int64))
    assert result.tolist() == [1.0, 0.75, 0.5, 0.25, 0.25, 0.0]


# --- scoring ------------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_weight_is_monotone_in_added_agreement(data: st.DataObject) -> None:
    levels = {f.name: data.draw(st.integers(0, len(f.levels) - 1)) for f in PERSON_MODEL.fields}
    field = data.draw(st.sampled_from(PERSON_MODEL.fields))
    if levels[field.name] == len(field.levels) - 1:
        return
    higher = dict(levels, **{field.name: levels[field.name] + 1})
    table = pd.DataFrame([levels, higher])
    weights = match_weights(table, PERSON_MODEL)
    assert weights[1] > weights[0]


def test_missing_field_adds_nothing() -> None:
    table = pd.DataFrame({"id_near": [-1], "name_dob": [-1]})
    assert match_weights(table, PERSON_MODEL)[0] == pytest.approx(PERSON_MODEL.prior_weight)


def test_model_accepts_new_probabilities() -> None:
    field = PERSON_MODEL.fields[0]
    updated = PERSON_MODEL.with_probabilities({field.name: [0.2] * 5}, {field.name: [0.2] * 5})
    table = pd.DataFrame({"id_near": [4], "name_dob": [-1]})
    assert match_weights(table, updated)[0] == pytest.approx(PERSON_MODEL.prior_weight)


# --- the person passes find every pair the policy can accept ------------------------------------------------------

NAMES = [
    ("张伟", ("zhang", "wei")),
    ("章伟", ("zhang", "wei")),
    ("张伟明", ("zhang", "wei", "ming")),
    ("李伟", ("li", "wei")),
    ("李娜", ("li", "na")),
]
BASES = ["11010519800101123", "11010519800101124", "11010619800102123"]


@st.composite
def person_records(draw: st.DrawFn) -> dict[str, object]:
    body = draw(st.sampled_from(BASES))
    edit = draw(st.sampled_from(["none", "typo", "swap", "missing"]))
    if edit == "typo":
        body = typo(body, draw(st.integers(0, 16)))
    elif edit == "swap":
        body = swap(body, draw(st.integers(0, 15)))
    name, pinyin = draw(st.sampled_from(NAMES))
    has_name = draw(st.booleans())
    dob = int(body[6:14]) if draw(st.booleans()) else draw(st.sampled_from([19800101, 19800102]))
    return record(None if edit == "missing" else body, name if has_name else None, pinyin, dob)


@settings(max_examples=60, deadline=None)
@given(st.lists(person_records(), min_size=1, max_size=6), st.lists(person_records(), min_size=1, max_size=6))
def test_person_passes_find_every_acceptable_pair(
    queries: list[dict[str, object]], people: list[dict[str, object]]
) -> None:
    query_frame, person_frame = TokenFrame(frame(queries)), TokenFrame(frame(people))
    everything = block(
        query_frame,
        person_frame,
        [BlockingPass("all", "id_near"), BlockingPass("any", "name_fz"), BlockingPass("dob", "dob_tok")],
    )
    # all pairs, including those sharing no key at all
    lpos = np.repeat(np.arange(len(queries)), len(people)).astype(np.int64)
    rpos = np.tile(np.arange(len(people)), len(queries)).astype(np.int64)
    all_pairs = type(everything)(lpos, rpos, {})
    vectors = person_comparison_vectors(query_frame, person_frame, all_pairs)
    levels = comparison_levels(vectors, PERSON_MODEL)
    ok = acceptable(vectors, levels, query_frame.column("id_near").valid[lpos])
    blocked = block(query_frame, person_frame, PERSON_PASSES)
    found = set(zip(blocked.left.tolist(), blocked.right.tolist()))
    assert set(zip(lpos[ok].tolist(), rpos[ok].tolist())) <= found


# --- selection ----------------------------------------------------------------------------------------------------


def test_best_per_left_ties_and_margin() -> None:
    chosen = best_per_left(
        np.array([0, 0, 1, 1, 2]), np.array([5, 6, 7, 8, 9]), np.array([3.0, 3.0, 9.0, 1.0, 2.0]), margin=1e-9
    )
    assert chosen.loc[0, "ambiguous"] and chosen.loc[0, "right"] == 5
    assert not chosen.loc[1, "ambiguous"] and chosen.loc[1, "right"] == 7
    assert chosen.loc[2, "n_candidates"] == 1 and not chosen.loc[2, "ambiguous"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 20)),
        max_size=15,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_one_to_one_matches_sequential_greedy(rows: list[tuple[int, int, int]]) -> None:
    pairs = pd.DataFrame(rows, columns=["left", "right", "score"]).astype({"score": float})
    kept = one_to_one(pairs)
    assert kept["left"].is_unique and kept["right"].is_unique
    used_left: set[int] = set()
    used_right: set[int] = set()
    expected = []
    for left, right, score in sorted(rows, key=lambda r: (-r[2], r[0], r[1])):
        if left not in used_left and right not in used_right:
            expected.append((left, right))
            used_left.add(left)
            used_right.add(right)
    assert sorted(zip(kept["left"], kept["right"])) == sorted(expected)
