"""Engine-level tests: random claims through the vectorised engine, policy loading and validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchkit.errors import SchemaError
from matchkit.verify import OUTPUT_COLUMNS, REASON_CODES, load_policy, verify_tables
from matchkit.verify.policy import parse_policy

DEDUCTIONS = np.array(
    [
        "children_education",
        "elderly_support",
        "serious_illness",
        "infant_care",
        "continuing_education",
        "housing_rent",
    ]
)
STAGES = np.array(["preschool", "compulsory", "high_school", "higher"])


def _tokens(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8).tobytes()
    return np.array([raw[i * 16 : (i + 1) * 16] for i in range(n)], dtype=object)


def _entity(prefix: str, toks: np.ndarray, names: np.ndarray) -> dict[str, object]:
    return {
        f"{prefix}_id_tok": toks,
        f"{prefix}_id_near": [None] * len(toks),
        f"{prefix}_name_fz": [[int(x)] for x in names],
        f"{prefix}_dob_tok": [None] * len(toks),
    }


def synthetic(n_claims: int, seed: int = 7) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Random families (two parents, a child, a grandparent) and claims about them, a few with broken links."""
    rng = np.random.default_rng(seed)
    families = max(n_claims // 2, 1)
    parent_a, parent_b, child, grand = (_tokens(rng, families) for _ in range(4))
    child_name = rng.integers(0, 2**40, families)
    grand_name = rng.integers(0, 2**40, families)
    child_birth = rng.integers(2002, 2024, families) * 100 + rng.integers(1, 13, families)
    grand_birth = rng.integers(1940, 1968, families) * 100 + rng.integers(1, 13, families)

    fam = rng.integers(0, families, n_claims)
    deduction = DEDUCTIONS[rng.choice(len(DEDUCTIONS), n_claims, p=[0.4, 0.3, 0.1, 0.08, 0.07, 0.05])]
    year = rng.integers(2021, 2026, n_claims)
    start = rng.integers(1, 4, n_claims)
    end = rng.integers(9, 13, n_claims)
    taxpayer = np.where(rng.random(n_claims) < 0.5, parent_a[fam], parent_b[fam])
    is_elderly = deduction == "elderly_support"
    taxpayer = np.where(is_elderly, parent_a[fam], taxpayer)
    subject = np.where(is_elderly, grand[fam], child[fam])
    names = np.where(is_elderly, grand_name[fam], child_name[fam])
    births = np.where(is_elderly, grand_birth[fam], child_birth[fam])
    broken = rng.random(n_claims) < 0.03
    subject = subject.copy()
    subject[broken] = _tokens(rng, int(broken.sum()))
    share = np.where(rng.random(n_claims) < 0.5, 0.5, 1.0)
    claims = pd.DataFrame(
        {
            "claim_id": [f"C{i}" for i in range(n_claims)],
            "_line": np.arange(2, n_claims + 2),
            "taxpayer_id_tok": taxpayer,
            "taxpayer_id_valid": True,
            "subject_id_tok": subject,
            "subject_id_valid": rng.random(n_claims) > 0.01,
            "subject_id_near": [None] * n_claims,
            "subject_name_fz": [[int(x)] for x in names],
            "subject_dob_tok": [None] * n_claims,
            "subject_birth_ym": pd.array(births, dtype="Int64"),
            "subject_id_birth_ym": pd.array(births, dtype="Int64"),
            "deduction": deduction,
            "tax_year": year,
            "period_start": year * 100 + start,
            "period_end": year * 100 + end,
            "subject_relation": np.where(is_elderly, "parent", "child"),
            "share": share,
            "monthly_amount": np.where(
                rng.random(n_claims) < 0.8, 1000.0 * rng.integers(1, 4, n_claims), np.nan
            ),
            "annual_amount": np.where(
                deduction == "serious_illness", rng.integers(0, 90000, n_claims) * 1.0, np.nan
            ),
            "education_stage": np.where(
                deduction == "children_education", STAGES[rng.integers(0, 4, n_claims)], None
            ),
            "only_child": rng.random(n_claims) < 0.3,
        }
    )
    stage_of_child = STAGES[rng.integers(0, 4, families)]
    spell_from = rng.integers(2015, 2024, families) * 100 + 9
    education = pd.DataFrame(
        {
            **_entity("student", child, child_name),
            "education_stage": stage_of_child,
            "enrolled_from": spell_from,
            "enrolled_to": pd.array(
                np.where(rng.random(families) < 0.7, None, spell_from + 300), dtype="Int64"
            ),
        }
    )
    household = pd.DataFrame(
        {
            **_entity(
                "parent", np.concatenate([parent_a, parent_b, grand]), np.zeros(3 * families, dtype=np.int64)
            ),
            **_entity(
                "child",
                np.concatenate([child, child, parent_a]),
                np.concatenate([child_name, child_name, np.zeros(families, np.int64)]),
            ),
        }
    )
    dead = rng.random(families) < 0.05
    marriage = np.full(families, "marriage", dtype=object)
    civil = pd.DataFrame(
        {
            "event": np.concatenate([marriage, np.full(int(dead.sum()), "death", dtype=object)]),
            **_entity(
                "person",
                np.concatenate([parent_a, grand[dead]]),
                np.zeros(families + int(dead.sum()), np.int64),
            ),
            **_entity(
                "partner",
                np.concatenate([parent_b, np.full(int(dead.sum()), None, dtype=object)]),
                np.zeros(families + int(dead.sum()), np.int64),
            ),
            "event_date": [dt.date(2010, 5, 1)] * families + [dt.date(2022, 6, 1)] * int(dead.sum()),
        }
    )
    certified = parent_a[rng.random(families) < 0.4]
    only_child = pd.DataFrame(_entity("person", certified, np.zeros(len(certified), np.int64)))
    sick = rng.random(families) < 0.2
    medical = pd.DataFrame(
        {
            **_entity("patient", child[sick], child_name[sick]),
            "year": rng.integers(2021, 2026, int(sick.sum())),
            "total_cost": 1.0,
            "out_of_pocket": rng.integers(0, 120000, int(sick.sum())) * 1.0,
        }
    )
    sources = {
        "education": education,
        "household": household,
        "civil_affairs": civil,
        "only_child": only_child,
        "medical_insurance": medical,
    }
    return claims, sources


def name_linker(queries: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """A vectorised fake linker: exact equality of the first name code; ties are ambiguous."""
    q = pd.DataFrame({"q": queries.index, "code": [v[0] if v else None for v in queries["name_fz"]]}).dropna()
    p = pd.DataFrame({"id_tok": persons["id_tok"], "code": [v[0] if v else None for v in persons["name_fz"]]})
    p = p.dropna()
    p = p[p["code"] != 0]
    joined = q.merge(p, on="code")
    counts = joined.groupby("q")["id_tok"].transform("size")
    first = joined.drop_duplicates("q")
    return pd.DataFrame(
        {
            "person_id_tok": first["id_tok"].to_numpy(),
            "score": 0.8,
            "ambiguous": (counts.loc[first.index] > 1).to_numpy(),
        },
        index=first["q"].to_numpy(),
    )


def test_random_claims_one_row_per_claim_in_order() -> None:
    claims, sources = synthetic(20_000)
    out = verify_tables(claims, sources, linker=name_linker)
    assert len(out) == len(claims) and list(out.columns) == OUTPUT_COLUMNS
    assert (out["claim_id"].to_numpy() == claims["claim_id"].to_numpy()).all()
    assert set(out["status"]) <= {"verified", "partial", "rejected", "review", "unverifiable"}
    assert set(out["match"]) <= {"exact", "fuzzy", "none"}
    assert (out["allowed_amount"] >= 0).all()
    claimed = out["claimed_amount"].fillna(np.inf)
    assert (out["allowed_amount"] <= claimed + 0.01).all()
    assert (out.loc[out.status == "verified", "reasons"] == "").all()
    assert (out.loc[out.status.isin(["rejected", "unverifiable"]), "allowed_amount"].ge(0)).all()
    assert (out.loc[out.status == "rejected", "allowed_amount"] == 0).all()
    known = set(REASON_CODES)
    for text in out["reasons"].unique():
        assert set(filter(None, text.split(";"))) <= known
    assert {"verified", "partial", "rejected"} <= set(out["status"])


def test_random_claims_without_sources_are_never_rejected_unless_duplicate() -> None:
    claims, _ = synthetic(2_000, seed=3)
    out = verify_tables(claims, {}, linker=name_linker)
    rejected = out[out.status == "rejected"]
    assert rejected["reasons"].str.contains("DUPLICATE_CLAIM").all()
    assert set(out.status) <= {"unverifiable", "rejected", "review"}


def test_partitioned_by_subject_equals_whole() -> None:
    """Rules are keyed by subject and taxpayer; splitting families apart must not change any line."""
    claims, sources = synthetic(3_000, seed=11)
    whole = verify_tables(claims, sources, linker=name_linker)
    again = verify_tables(claims.iloc[::-1].reset_index(drop=True), sources, linker=name_linker)
    pd.testing.assert_frame_equal(whole, again.iloc[::-1].reset_index(drop=True))


# ----------------------------------------------------------------------------------------------------
# policy file


def test_default_policy_figures() -> None:
    policy = load_policy()
    months = np.array([2022 * 12, 2023 * 12, 2021 * 12])
    assert list(policy.figure_by_month("children_education", "monthly", months)) == [1000, 2000, 1000]
    infant = policy.figure_by_month("infant_care", "monthly", months)
    assert infant[0] == 1000 and infant[1] == 2000 and np.isnan(infant[2])
    assert np.isnan(policy.figure_by_month("children_education", "monthly", np.array([2018 * 12 + 11])))[0]
    assert list(policy.figure_by_year("elderly_support", "per_sibling_cap", np.array([2019, 2025]))) == [
        1000,
        1500,
    ]


def test_policy_errors_are_reported_together_with_paths(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(
        'format = "matchkit-policy"\nversion = 1\n[ages]\npreschool_from = 3\n'
        "[[periods]]\neffective = 2023-01-15\nchildren_education = { monthly = -5 }\nbogus = { x = 1 }\n"
        "[[periods]]\neffective = 2019-01-01\nelderly_support = { monthly = 2000, per_sibling_cap = 2500 }\n",
        encoding="utf-8",
    )
    with pytest.raises(SchemaError) as info:
        load_policy(bad)
    problems = "\n".join(info.value.problems)
    for expected in (
        "ages.preschool_until",
        "periods[0].effective: must be the first day of a month",
        "periods[0].children_education.monthly: must be a positive number",
        "periods[0].bogus: unknown deduction",
        "periods[1].effective: must be later",
        "periods[1].elderly_support.per_sibling_cap: must not exceed monthly",
    ):
        assert expected in problems
    assert str(bad) in str(info.value)


def test_policy_not_toml_and_missing(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(SchemaError):
        load_policy(tmp_path / "policy.toml")
    with pytest.raises(SchemaError):
        load_policy(tmp_path / "absent.toml")


def test_config_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = load_policy().path
    assert source is not None
    text = (
        Path(source)
        .read_text(encoding="utf-8")
        .replace("children_education = { monthly = 2000 }", "children_education = { monthly = 2500 }")
    )
    (tmp_path / "policy.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("MATCHKIT_CONFIG_DIR", str(tmp_path))
    policy = load_policy()
    assert policy.figure_by_year("children_education", "monthly", np.array([2024]))[0] == 2500


def test_parse_policy_rejects_wrong_format() -> None:
    with pytest.raises(SchemaError) as info:
        parse_policy({"format": "x"})
    assert any(p.startswith("format") for p in info.value.problems)
    assert any(p.startswith("periods") for p in info.value.problems)
