"""Tests for the synthetic data generator (matchkit.synth): determinism, valid IDs, coherent families, every defect
class, row counts, declared encodings, and the internal consistency of the expected outcomes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchkit.synth import generate
from matchkit.synth.claims import DEFECT_WEIGHTS, REASON_ORDER
from matchkit.synth.gb11643 import check_char, is_valid_id18, make_ids, to_legacy15
from matchkit.synth.population import build_population
from matchkit.synth.reference import CHINESE_HEADERS

N_CLAIMS = 200
SEED = 7
ID_COLUMNS = {
    "education": ["student_id"], "household": ["parent_id", "child_id"],
    "civil_affairs": ["person_id", "partner_id"], "only_child": ["person_id"], "medical_insurance": ["patient_id"],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("synth")
    return generate(N_CLAIMS, SEED, out, noise=0.6, formats="mixed")


def read(path: Path) -> pd.DataFrame:
    """Read a generated file the way a user would, everything as text, headers mapped to canonical names."""
    if path.suffix == ".csv":
        raw = path.read_bytes()
        encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            encoding = "gb18030"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    elif path.suffix == ".xlsx":
        frame = pd.read_excel(path, dtype=object).fillna("")
        frame = frame.map(lambda v: v if isinstance(v, str) else repr(v))
    else:
        frame = pd.read_parquet(path).astype(str)
    source = path.stem
    return frame.rename(columns={zh: en for en, zh in CHINESE_HEADERS.get(source, {}).items()})


def canonical_id(raw: str) -> str | None:
    """A small independent normaliser: trim, full-width to ASCII, x to X, lossless '.0', 15 -> 18 digits."""
    value = raw.strip().translate(str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789XX")).replace("x", "X")
    value = value.removesuffix(".0")
    if len(value) == 15 and value.isdigit():
        body = value[:6] + "19" + value[6:]
        value = body + check_char(body)
    return value if is_valid_id18(value) else None


# ---- the ID helpers themselves ------------------------------------------------------------------------------
def test_check_character_known_values() -> None:
    # The GB 11643-1999 standard's own example, and a body whose check is X.
    assert check_char("11010519491231002") == "X"
    assert check_char("44052418800101001") == "4"
    ids = make_ids(np.array([110105, 440524]), np.array([19491231, 18800101]), np.array([2, 1]))
    assert ids.tolist() == ["11010519491231002X", "440524188001010014"]
    assert to_legacy15("11010519491231002X") == "110105491231002"


def test_every_single_digit_error_breaks_the_check() -> None:
    body = "32040219800101123"
    good = body + check_char(body)
    for position in range(17):
        for digit in "0123456789":
            if digit != body[position]:
                assert not is_valid_id18(body[:position] + digit + body[position + 1:] + good[17])


# ---- output files -------------------------------------------------------------------------------------------
def test_deterministic_for_a_seed(dataset: dict[str, Path], tmp_path: Path) -> None:
    again = generate(N_CLAIMS, SEED, tmp_path, noise=0.6, formats="mixed")
    for name, path in dataset.items():
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(again[name].read_bytes()).digest(), name


def test_another_seed_differs(dataset: dict[str, Path], tmp_path: Path) -> None:
    other = generate(N_CLAIMS, SEED + 1, tmp_path, noise=0.6, formats="mixed")
    assert other["claims"].read_bytes() != dataset["claims"].read_bytes()


def test_row_counts(dataset: dict[str, Path]) -> None:
    claims = read(dataset["claims"])
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    assert len(claims) == N_CLAIMS == len(truth)
    assert claims["claim_id"].is_unique
    assert claims["claim_id"].tolist() == truth["claim_id"].tolist()
    manifest = json.loads(dataset["manifest"].read_text(encoding="utf-8"))
    for source, info in manifest["files"].items():
        assert len(read(dataset[source])) == info["rows"], source
    assert manifest["people"] >= 300


def test_encodings_as_declared(dataset: dict[str, Path]) -> None:
    claims = dataset["claims"].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        claims.decode("utf-8")
    header = claims.decode("gb18030").splitlines()[0]
    assert header.startswith("申报编号,纳税人证件号码")
    education = dataset["education"].read_bytes()
    assert education.startswith(b"\xef\xbb\xbf")
    assert education.decode("utf-8-sig").startswith("学生证件号码")
    civil = dataset["civil_affairs"].read_bytes()
    assert not civil.startswith(b"\xef\xbb\xbf")
    assert civil.decode("utf-8").startswith("event,person_id")
    assert dataset["household"].read_bytes()[:2] == b"PK"  # an XLSX (zip) workbook
    assert dataset["medical_insurance"].read_bytes()[:4] == b"PAR1"


def test_ids_valid_except_injected_faults(dataset: dict[str, Path]) -> None:
    faults = pd.read_csv(dataset["injected_faults"], dtype={"line": int})
    assert set(faults["fault"]) >= {"excel_damage", "bad_checksum", "month_13"}
    expected_bad = {(f.file, f.line, f.column) for f in faults.itertuples()}
    found_bad = set()
    for source, columns in ID_COLUMNS.items():
        frame = read(dataset[source])
        for column in columns:
            for row, raw in enumerate(frame[column].tolist()):
                if raw == "" and column == "partner_id":
                    continue
                if canonical_id(raw) is None:
                    found_bad.add((dataset[source].name, row + 2, column))
    id_faults = {f for f in expected_bad if f[2].endswith("_id")}
    assert found_bad == id_faults
    claims = read(dataset["claims"])
    assert all(canonical_id(v) for v in claims["taxpayer_id"])  # a taxpayer ID is never invalid


def test_subject_ids_invalid_only_where_labelled(dataset: dict[str, Path]) -> None:
    claims = read(dataset["claims"])
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    for raw, reasons in zip(claims["subject_id"], truth["expected_reasons"]):
        if raw == "":
            continue
        assert (canonical_id(raw) is None) == ("INVALID_SUBJECT_ID" in reasons.split(";"))


def test_families_coherent(dataset: dict[str, Path]) -> None:
    household = read(dataset["household"])
    gaps = []
    for parent, child in zip(household["parent_id"], household["child_id"]):
        parent_id, child_id = canonical_id(parent), canonical_id(child)
        if parent_id is None or child_id is None:
            continue  # an injected fault
        gaps.append(int(child_id[6:10]) - int(parent_id[6:10]))
    assert gaps and min(gaps) >= 15 and max(gaps) <= 50


def test_population_invariants() -> None:
    pop = build_population(np.random.default_rng(3), 300, 2024)
    assert len(set(pop.ids.tolist())) == len(pop)
    assert all(is_valid_id18(v) for v in pop.ids.tolist())
    sex_digit = np.array([int(v[16]) % 2 == 1 for v in pop.ids.tolist()])
    assert (sex_digit == pop.male).all()
    for parent in (pop.father, pop.mother):
        has = parent >= 0
        age_at_birth = (pop.birth[has] - pop.birth[parent[has]]) / 365.25
        assert age_at_birth.min() >= 15 and age_at_birth.max() <= 50
    fathers = pop.father[pop.father >= 0]
    mothers = pop.mother[pop.mother >= 0]
    assert pop.male[fathers].all() and not pop.male[mothers].any()
    m = pop.marriages
    assert (pop.male[m["husband"]]).all() and not pop.male[m["wife"]].any()
    # never a sibling marriage
    assert not ((pop.mother[m["husband"]] >= 0) & (pop.mother[m["husband"]] == pop.mother[m["wife"]])).any()
    assert (pop.medical["out_of_pocket"] > 0).all()
    assert (pop.medical["total_cost"] >= pop.medical["out_of_pocket"] - 0.01).all()
    spells = pop.spells
    assert (spells["from_month"] <= spells["to_month"]).all()
    assert pop.minority.any() or len(pop) < 2000


def test_every_defect_class_present(dataset: dict[str, Path]) -> None:
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    assert set(DEFECT_WEIGHTS) <= set(truth["defect"])
    reasons = {code for value in truth["expected_reasons"] for code in value.split(";") if code}
    assert reasons == set(REASON_ORDER)
    assert (truth["defect"] == "none").mean() > 0.6
    manifest = json.loads(dataset["manifest"].read_text(encoding="utf-8"))
    assert not {k: v for k, v in manifest["not_built"].items() if k != "legitimate"}


def test_expected_outcomes_consistent(dataset: dict[str, Path]) -> None:
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    claims = read(dataset["claims"])
    allowed = truth["expected_allowed_amount"].astype(float)
    claimed = truth["claimed_amount"].astype(float)
    status = truth["expected_status"]
    assert set(status) <= {"verified", "partial", "rejected", "review", "unverifiable"}
    assert ((status == "verified") == (truth["expected_reasons"] == "")).all()
    assert (allowed[status == "verified"] == claimed[status == "verified"]).all()
    partial = status == "partial"
    assert ((allowed[partial] > 0) & (allowed[partial] < claimed[partial])).all()
    assert (allowed[status.isin(["rejected", "unverifiable"])] == 0).all()
    assert (allowed <= claimed + 1e-9).all()
    for reasons in truth["expected_reasons"]:
        codes = [c for c in reasons.split(";") if c]
        assert codes == [c for c in REASON_ORDER if c in codes]
    # the annual amount column agrees with the claimed amount
    assert np.allclose(claims["annual_amount"].astype(float), claimed)
    # duplicates come after an identical earlier line
    key_cols = ["taxpayer_id", "deduction", "subject_id", "period_start"]
    dup_rows = truth.index[truth["defect"] == "duplicate_claim"]
    for row in dup_rows:
        same = (truth["true_taxpayer_id"] == truth.at[row, "true_taxpayer_id"]) & (
            truth["true_subject_id"] == truth.at[row, "true_subject_id"]) & (
            truth["deduction"] == truth.at[row, "deduction"])
        assert same[:row].any(), key_cols


def test_legit_children_education_matches_sources(dataset: dict[str, Path]) -> None:
    """Re-derive one rule from the written files: a verified school-stage line's months lie inside an enrolment
    spell of its subject in the education extract."""
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    claims = read(dataset["claims"])
    education = read(dataset["education"])
    spells: dict[str, list[tuple[int, int]]] = {}

    def month(text: str, default: int) -> int:
        digits = text.replace("-", "")
        return int(digits[:4]) * 12 + int(digits[4:6]) - 1 if digits else default

    for sid, start, end in zip(education["student_id"], education["enrolled_from"], education["enrolled_to"]):
        canonical = canonical_id(sid)
        if canonical and not start.endswith("13"):
            spells.setdefault(canonical, []).append((month(start, 0), month(end, 10**7)))
    checked = 0
    for row in truth.itertuples():
        line = claims.iloc[row.Index]
        stage = line["education_stage"]
        if row.defect != "none" or row.deduction != "children_education" or stage in ("preschool", "学前教育"):
            continue
        first, last = month(line["period_start"], 0), month(line["period_end"], 0)
        for m in range(first, last + 1):
            assert any(a <= m <= b for a, b in spells[row.true_subject_id]), row.claim_id
        checked += 1
    assert checked > 10


def test_cli_help_and_run(tmp_path: Path) -> None:
    from matchkit.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["synth", "--help"])
    assert exc.value.code == 0
    assert main(["synth", "--claims", "60", "--seed", "1", "--out", str(tmp_path / "a"),
                 "--formats", "parquet", "--noise", "0"]) == 0
    claims = pd.read_parquet(tmp_path / "a" / "claims.parquet")
    assert len(claims) >= 60
    assert main(["synth", "--claims", "60"]) == 2


def test_module_entry_point_writes_sample(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "matchkit", "synth", "--sample", str(tmp_path)],
                            capture_output=True, text=True, check=True)
    assert "claims" in result.stdout
    assert (tmp_path / "claims.csv").exists() and (tmp_path / "household.xlsx").exists()
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total < 200_000


def test_ambiguous_case_has_two_equal_candidates(dataset: dict[str, Path]) -> None:
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    claims = read(dataset["claims"])
    education = read(dataset["education"])
    by_id = {canonical_id(i): n for i, n in zip(education["student_id"], education["student_name"])}
    rows = truth.index[truth["defect"] == "ambiguous_match"]
    assert len(rows)
    for row in rows:
        claimed = canonical_id(claims.at[row, "subject_id"])
        assert claimed is not None and claimed not in by_id
        near = [i for i in by_id if i and i[:16] == claimed[:16] and i != claimed]
        assert len(near) >= 2
        assert len({by_id[i] for i in near}) == 1 and by_id[near[0]] == claims.at[row, "subject_name"]


def test_id_of_another_person_is_a_real_neighbour_with_another_name(dataset: dict[str, Path]) -> None:
    """Issue 16: the claim's subject ID is valid and belongs to another real person — one sequence digit away (same
    county and birth date), another name — while the truth names the right person and expects a fuzzy link."""
    from pypinyin import lazy_pinyin

    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    claims = read(dataset["claims"])
    household = read(dataset["household"])
    names = {canonical_id(i): n for i, n in zip(household["child_id"], household["child_name"])}
    names.update({canonical_id(i): n for i, n in zip(household["parent_id"], household["parent_name"])})
    rows = truth.index[truth["defect"] == "id_of_another_person"]
    assert len(rows)
    for row in rows:
        typed, right = canonical_id(claims.at[row, "subject_id"]), truth.at[row, "true_subject_id"]
        assert typed is not None and typed != right and typed in names
        assert typed[:14] == right[:14] and sum(a != b for a, b in zip(typed[14:17], right[14:17])) == 1
        other = names[typed].replace(" ", "")
        assert lazy_pinyin(other) != lazy_pinyin(claims.at[row, "subject_name"].replace(" ", ""))
        assert (truth.at[row, "expected_status"], truth.at[row, "expected_reasons"]) == ("review", "FUZZY_MATCH")
    typos = truth.index[truth["defect"] == "subject_name_typo"]
    assert len(typos) and set(truth.loc[typos, "expected_reasons"]) == {"NAME_MISMATCH"}
    for row in typos:
        assert canonical_id(claims.at[row, "subject_id"]) == truth.at[row, "true_subject_id"]


def test_continuing_education_kinds_per_taxpayer(dataset: dict[str, Path]) -> None:
    """At most one degree-study and one certificate line per taxpayer; both kinds together are not duplicates."""
    truth = pd.read_csv(dataset["truth"], dtype=str, keep_default_na=False)
    claims = read(dataset["claims"])
    ce = truth["deduction"] == "continuing_education"
    kind = np.where(claims["monthly_amount"].astype(str).str.strip() != "", "degree", "certificate")
    pairs = pd.DataFrame({"taxpayer": truth["true_taxpayer_id"], "kind": kind})[ce]
    assert not pairs.duplicated().any()
    assert set(truth.loc[ce, "expected_reasons"]) == {"SOURCE_MISSING"}
