"""best_links: constructed cases for the acceptance policy, ties, and the output contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matchkit.link import best_links
from matchkit.link.token_columns import TokenFrame
from tests.test_link_fakes import frame, record, swap, typo

ZHANG = "11010519800101123"
LI = "11010819750615042"
WANG = "31011519920230457"


@pytest.fixture(scope="module")
def persons() -> pd.DataFrame:
    return frame(
        [
            record(ZHANG, "张伟", ("zhang", "wei")),
            record(LI, "李娜", ("li", "na")),
            record(WANG, "王小明", ("wang", "xiao", "ming"), dob=19920228),
            record("44030119880808888", "陈静", ("chen", "jing")),
        ]
    )


def one(queries: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    return best_links(queries, persons)


@pytest.mark.parametrize("position", [0, 2, 5, 7, 10, 15, 16])
def test_one_digit_typo_with_same_name_links(persons: pd.DataFrame, position: int) -> None:
    queries = frame([record(typo(ZHANG, position), "张伟", ("zhang", "wei"), dob=19800101)], index=["q1"])
    links = one(queries, persons)
    assert list(links.index) == ["q1"]
    assert links.loc["q1", "person_id_tok"] == persons["id_tok"].iloc[0]
    assert not links.loc["q1", "ambiguous"]
    assert 0.75 <= links.loc["q1", "score"] <= 1.0


@pytest.mark.parametrize("position", [1, 3, 9, 13, 14])
def test_transposition_links(persons: pd.DataFrame, position: int) -> None:
    swapped = swap(LI, position)
    assert swapped != LI
    queries = frame([record(swapped, "李娜", ("li", "na"), dob=19750615)], index=[7])
    links = one(queries, persons)
    assert links.loc[7, "person_id_tok"] == persons["id_tok"].iloc[1]


def test_homophone_with_strong_typo_links(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(ZHANG, 3), "章伟", ("zhang", "wei"), dob=19800101)])
    assert len(one(queries, persons)) == 1


def test_dropped_character_with_typo_on_a_window_overlap_links(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(WANG, 4), "王明", ("wang", "ming"), dob=19920228)])
    links = one(queries, persons)
    assert links["person_id_tok"].iloc[0] == persons["id_tok"].iloc[2]


def test_dropped_character_with_one_strong_window_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(WANG, 1), "王明", ("wang", "ming"), dob=19920228)])
    assert one(queries, persons).empty


def test_dropped_character_with_weak_window_only_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(WANG, 15), "王明", ("wang", "ming"), dob=19920228)])
    assert one(queries, persons).empty


def test_name_only_agreement_does_not_link(persons: pd.DataFrame) -> None:
    unrelated = "52010119800101999"  # same birth date, different ID everywhere else
    queries = frame([record(unrelated, "张伟", ("zhang", "wei"), dob=19800101)])
    assert one(queries, persons).empty


def test_window_only_agreement_with_other_name_and_dob_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(ZHANG, 2), "刘洋", ("liu", "yang"), dob=19660303)])
    assert one(queries, persons).empty


def test_strong_window_and_same_dob_with_a_different_name_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(ZHANG, 2), "刘洋", ("liu", "yang"), dob=19800101)])
    assert one(queries, persons).empty


def test_one_window_and_same_dob_without_a_name_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(typo(ZHANG, 2), None, dob=19800101)])
    assert one(queries, persons).empty


def test_same_body_with_another_check_character_and_same_dob_links_without_a_name(
    persons: pd.DataFrame,
) -> None:
    queries = frame([record(ZHANG, None, check="X")])
    links = one(queries, persons)
    assert links["person_id_tok"].iloc[0] == persons["id_tok"].iloc[0]


def test_no_id_links_on_exact_name_and_dob(persons: pd.DataFrame) -> None:
    queries = frame([record(None, "李娜", ("li", "na"), dob=19750615)])
    links = one(queries, persons)
    assert links["person_id_tok"].iloc[0] == persons["id_tok"].iloc[1]


def test_no_id_with_homophone_name_does_not_link(persons: pd.DataFrame) -> None:
    queries = frame([record(None, "李纳", ("li", "na"), dob=19750615)])
    assert one(queries, persons).empty


def test_two_identical_candidates_are_ambiguous() -> None:
    twins = frame(
        [
            record("11010519800101123", "张伟", ("zhang", "wei")),
            record("37020219800101555", "张伟", ("zhang", "wei")),
        ]
    )
    queries = frame([record(None, "张伟", ("zhang", "wei"), dob=19800101)], index=["c9"])
    links = best_links(queries, twins)
    assert links.loc["c9", "ambiguous"]
    assert links.loc["c9", "n_candidates"] == 2
    assert links.loc["c9", "person_id_tok"] in set(twins["id_tok"])


def test_clear_winner_is_not_ambiguous() -> None:
    people = frame(
        [
            record("11010519800101123", "张伟", ("zhang", "wei")),
            record(
                "11010519800101124", "张伟", ("zhang", "wei")
            ),  # one digit from the first, same name and dob
        ]
    )
    queries = frame([record("11010519800101123", "张伟", ("zhang", "wei"))])
    links = best_links(queries, people)
    assert links["person_id_tok"].iloc[0] == people["id_tok"].iloc[0]
    assert not links["ambiguous"].iloc[0]
    assert links["n_candidates"].iloc[0] == 2


def test_output_contract(persons: pd.DataFrame) -> None:
    queries = frame(
        [
            record(typo(ZHANG, 2), "张伟", ("zhang", "wei"), dob=19800101),
            record(None, None),
            record("52010119800101999", "无名", ("wu", "ming"), dob=19800101),
            record(swap(LI, 3), "李娜", ("li", "na"), dob=19750615),
        ],
        index=pd.Index(["a", "b", "c", "d"], name="claim_id"),
    )
    links = best_links(queries, TokenFrame(persons))
    assert list(links.index) == ["a", "d"]
    assert list(links.columns) == ["person_id_tok", "score", "ambiguous", "n_candidates"]
    assert links["score"].between(0, 1).all()
    assert links["ambiguous"].dtype == bool
    assert links["n_candidates"].dtype == np.int64
    assert all(isinstance(t, bytes) for t in links["person_id_tok"])


def test_empty_queries(persons: pd.DataFrame) -> None:
    queries = frame([record(None, None)]).iloc[:0]
    links = best_links(queries, persons)
    assert links.empty
    assert list(links.columns) == ["person_id_tok", "score", "ambiguous", "n_candidates"]


def test_missing_columns_are_reported(persons: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="name_fz"):
        best_links(pd.DataFrame({"id_near": [None], "dob_tok": [None]}), persons)
