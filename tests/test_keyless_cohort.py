"""Only the list: on a dense cohort, a request opens the listed child's rows and nobody else's.

Hundreds of children are born in the listed child's county and month (they share its weak near tokens: county +
birth month), several on its very day (they share its birth date too), one has its name but another birth day.
A request for the child, with its correct ID and with a mistyped one (one sequence digit, check character
recomputed: a valid ID of nobody), opens exactly the child's own rows; a listed same-day neighbour opens only its
own row. No token can be tested offline: the table
holds no public encoding, and tags are found only through the agency's evaluation.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from matchkit.encode.person import Encoder
from matchkit.jobs.keyless import request_file, seal_file
from matchkit.keyless.answer import answer_file
from matchkit.keyless.common import PUBLIC_ENCODING_KEY, new_oprf_key
from matchkit.keyless.evidence import Person
from matchkit.keyless.opener import _probe, open_request
from matchkit.keyless.sealed import open_sealed
from matchkit.security import oprf
from tests.conftest import make_id

COUNTY = "110105"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
CHILD_NAME = "张子涵"
CHILD_BODY = COUNTY + "20150314" + "123"
HEADER = ["student_id", "student_name", "birth_date", "education_stage", "enrolled_from", "enrolled_to"]


def _name(rng: random.Random) -> str:
    while True:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
        if name != CHILD_NAME:
            return name


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("cohort")
    rng = random.Random(13)
    rows: list[list[str]] = []
    child_id = make_id(CHILD_BODY)
    rows.append([child_id, CHILD_NAME, "2015-03-14", "compulsory", "2021-09", "2023-06"])
    rows.append([child_id, CHILD_NAME, "2015-03-14", "compulsory", "2023-09", ""])
    used = {CHILD_BODY}
    same_day = 0
    for index in range(400):
        day = 14 if index < 8 else rng.randint(1, 31)
        if index >= 8 and day == 14:
            day = 15
        born = f"201503{day:02d}"
        while True:
            body = COUNTY + born + f"{rng.randint(0, 999):03d}"
            if body not in used:
                used.add(body)
                break
        same_day += day == 14
        name = CHILD_NAME if index == 8 else _name(rng)  # index 8: the child's namesake, born another day
        rows.append([make_id(body), name, f"2015-03-{day:02d}", "compulsory", "2021-09", ""])
    order = list(range(len(rows)))
    rng.shuffle(order)
    extract = out / "education.csv"
    with open(extract, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in order:
            writer.writerow(rows[i])
    child_lines = {order.index(0) + 2, order.index(1) + 2}  # data lines start at 2
    key = new_oprf_key()
    seal_file("education", extract, key, out / "table.parquet", tax_year=2024)
    return {"out": out, "key": key, "child_id": child_id, "child_lines": child_lines, "same_day": same_day,
            "rows": rows}


def _claims(path: Path, subject_id: str, name: str = CHILD_NAME) -> Path:
    taxpayer = make_id("11010519800101001")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["claim_id", "taxpayer_id", "taxpayer_name", "deduction", "tax_year", "period_start",
                         "period_end", "subject_id", "subject_name", "subject_birth_date", "subject_relation",
                         "share", "monthly_amount", "education_stage"])
        writer.writerow(["C1", taxpayer, "张伟", "children_education", "2024", "2024-01", "2024-12", subject_id,
                         name, "2015-03-14", "child", "1", "2000", "compulsory"])
    return path


def _open(cohort: dict, subject_id: str, label: str, name: str = CHILD_NAME) -> set[int]:
    out: Path = cohort["out"]
    name_ = label
    claims = _claims(out / f"{name_}.csv", subject_id, name)
    request_file(claims, out / f"{name_}.request.parquet", out / f"{name_}.state")
    answer_file(out / f"{name_}.request.parquet", cohort["key"], out / f"{name_}.answer.parquet")
    open_request(out / f"{name_}.state", {"education": out / f"{name_}.answer.parquet"},
                 {"education": out / "table.parquet"}, out / f"{name_}.opened")
    opened = pq.read_table(out / f"{name_}.opened" / "education.parquet")
    return set(opened.column("_line").to_pylist())


def test_the_cohort_is_dense(cohort: dict) -> None:
    assert len(cohort["rows"]) >= 400
    assert cohort["same_day"] >= 8  # born the very same day, same county: same weak near tokens and birth date


def test_a_correct_id_opens_only_the_childs_rows(cohort: dict) -> None:
    assert _open(cohort, cohort["child_id"], "correct") == cohort["child_lines"]


def test_a_mistyped_id_opens_only_the_childs_rows(cohort: dict) -> None:
    mistyped = make_id(CHILD_BODY[:16] + "7")  # last sequence digit wrong, check character recomputed
    assert mistyped != cohort["child_id"]
    assert all(row[0] != mistyped for row in cohort["rows"])  # nobody has it
    assert _open(cohort, mistyped, "mistyped") == cohort["child_lines"]


def test_a_listed_same_day_neighbour_opens_only_its_own_row(cohort: dict) -> None:
    """List a child born the same day in the same county (it shares the listed child's weak near tokens and birth
    date): only its own row opens, none of the child's, none of the other neighbours'."""
    rows = cohort["rows"]
    neighbour = next(row for row in rows[2:] if row[2] == "2015-03-14" and row[1] != CHILD_NAME)
    lines = _open(cohort, neighbour[0], "neighbour", name=neighbour[1])
    assert len(lines) == 1 and not lines & cohort["child_lines"]


def test_no_token_can_be_tested_offline(cohort: dict) -> None:
    table = open_sealed(cohort["out"] / "table.parquet")
    encoder = Encoder(PUBLIC_ENCODING_KEY, "iit-special-deduction")
    canonical = "RID:" + cohort["child_id"]
    child = Person(encoder.id_token(canonical), None, None, encoder.dob_token(20150314))
    # no public encoding of the child is stored anywhere in the table
    raw = (cohort["out"] / "table.parquet").read_bytes()
    assert child.id_tok is not None and child.dob is not None
    assert child.id_tok not in raw and child.dob not in raw
    tags = set(table.entry_tags.tolist())
    assert child.id_tok[:16] not in tags
    # the tags of the child's ID are found only through the agency's key: a guessed key finds nothing
    x_id = child.id_input()
    assert x_id is not None
    right = oprf.evaluate(cohort["key"].evaluation_key("iit-special-deduction", 2024).secret, x_id)
    wrong_key = new_oprf_key().evaluation_key("iit-special-deduction", 2024)
    wrong = oprf.evaluate(wrong_key.secret, x_id)
    other_year = oprf.evaluate(cohort["key"].evaluation_key("iit-special-deduction", 2023).secret, x_id)
    assert len(_probe(table, [right])) == 2  # the child's two spells
    assert _probe(table, [wrong]) == []
    assert _probe(table, [other_year]) == []  # bound to the tax year


def test_an_excel_damaged_id_opens_by_name_and_birth_date_only_the_child(cohort: dict) -> None:
    """No usable ID (case D): the exact name salted by the birth date opens the child's rows; its namesake born on
    another day of the month stays sealed."""
    assert _open(cohort, "1.10105E+17", "damaged") == cohort["child_lines"]
