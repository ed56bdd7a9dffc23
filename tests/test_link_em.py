"""EM for the Fellegi-Sunter model of `matchkit link` (matchkit.link.em): on comparison levels simulated from a
known two-class mixture, EM with u given recovers m and the match prior; degenerate inputs do not separate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchkit.link.em import FLOOR, EmResult, distinct_patterns, estimate, level_frequencies

N_LEVELS = [4, 4, 4]
M_TRUE = np.array([[0.03, 0.04, 0.13, 0.80],
                   [0.02, 0.08, 0.20, 0.70],
                   [0.10, 0.10, 0.10, 0.70]])
U_TRUE = np.array([[0.70, 0.20, 0.08, 0.02],
                   [0.60, 0.25, 0.10, 0.05],
                   [0.85, 0.10, 0.04, 0.01]])
PRIOR = 0.1
PAIRS = 50_000


def simulate(pairs: int, prior: float, m: np.ndarray, u: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels (pairs x fields) drawn from the two-class mixture under conditional independence, and the classes."""
    rng = np.random.default_rng(seed)
    match = rng.random(pairs) < prior
    levels = np.empty((pairs, len(m)), dtype=np.int64)
    for field in range(len(m)):
        from_m = rng.choice(m.shape[1], pairs, p=m[field])
        from_u = rng.choice(u.shape[1], pairs, p=u[field])
        levels[:, field] = np.where(match, from_m, from_u)
    return levels, match


@pytest.fixture(scope="module")
def mixture() -> tuple[np.ndarray, np.ndarray]:
    return simulate(PAIRS, PRIOR, M_TRUE, U_TRUE, seed=20240601)


def test_em_recovers_m_and_prior(mixture):
    levels, match = mixture
    result = estimate(levels, N_LEVELS, U_TRUE.tolist())
    assert result.converged
    assert result.separating
    assert 1 < result.iterations < 200
    assert abs(result.prior - PRIOR) < 0.01
    assert abs(result.prior - match.mean()) < 0.01
    assert np.abs(np.array(result.m) - M_TRUE).max() < 0.02
    assert np.allclose(np.array(result.u), U_TRUE)  # u is given and stays fixed
    for m_f in result.m:
        assert sum(m_f) == pytest.approx(1.0)
        assert min(m_f) >= FLOOR / 2


@pytest.mark.parametrize("start", [0.001, 0.01, 0.5])
def test_em_result_does_not_depend_on_the_starting_prior(mixture, start):
    levels, _ = mixture
    result = estimate(levels, N_LEVELS, U_TRUE.tolist(), prior=start)
    assert result.converged and result.separating
    assert abs(result.prior - PRIOR) < 0.01
    assert np.abs(np.array(result.m) - M_TRUE).max() < 0.02


def test_em_with_u_from_random_pairs(mixture):
    """The job's recipe: u from the level frequencies of (non-matching) random pairs, not the true u."""
    random_pairs, _ = simulate(PAIRS, 0.0, M_TRUE, U_TRUE, seed=11)
    u = level_frequencies(random_pairs, N_LEVELS)
    assert np.abs(np.array(u) - U_TRUE).max() < 0.01
    levels, _ = mixture
    result = estimate(levels, N_LEVELS, u)
    assert result.converged and result.separating
    assert abs(result.prior - PRIOR) < 0.01
    assert np.abs(np.array(result.m) - M_TRUE).max() < 0.03


def test_missing_levels_are_ignored(mixture):
    levels, _ = mixture
    rng = np.random.default_rng(3)
    holed = levels.copy()
    holed[rng.random(levels.shape) < 0.2] = -1
    result = estimate(holed, N_LEVELS, U_TRUE.tolist())
    assert result.converged and result.separating
    assert abs(result.prior - PRIOR) < 0.01
    assert np.abs(np.array(result.m) - M_TRUE).max() < 0.02


def test_a_field_missing_everywhere_changes_nothing(mixture):
    """A missing level contributes 1 to both products: an always-missing extra field leaves the others' estimates
    exactly as they were."""
    levels, _ = mixture
    levels = levels[:5000]
    plain = estimate(levels, N_LEVELS, U_TRUE.tolist())
    extra = np.concatenate([levels, np.full((len(levels), 1), -1, dtype=np.int64)], axis=1)
    with_missing = estimate(extra, [*N_LEVELS, 3], [*U_TRUE.tolist(), [0.5, 0.3, 0.2]])
    assert with_missing.prior == pytest.approx(plain.prior, abs=1e-12)
    assert np.allclose(np.array(with_missing.m[:3]), np.array(plain.m), atol=1e-12)
    assert with_missing.iterations == plain.iterations


def test_level_frequencies_counts():
    levels = np.array([[0, 2], [0, -1], [1, 2], [-1, -1], [0, 0]], dtype=np.int64)
    frequencies = level_frequencies(levels, [3, 3])
    assert frequencies[0] == pytest.approx((3 / 4, 1 / 4, FLOOR), rel=1e-5)
    assert frequencies[1] == pytest.approx((1 / 3, FLOOR, 2 / 3), rel=1e-5)
    for row in frequencies:
        assert sum(row) == pytest.approx(1.0)
        assert min(row) > 0  # floored: an unseen level never has probability 0


def test_level_frequencies_of_a_field_with_no_level():
    frequencies = level_frequencies(np.full((4, 1), -1, dtype=np.int64), [2])
    assert frequencies == ((0.5, 0.5),)


@given(st.lists(st.lists(st.integers(-1, 3), min_size=2, max_size=2), min_size=1, max_size=40))
def test_level_frequencies_match_plain_counting(rows):
    levels = np.array(rows, dtype=np.int64)
    frequencies = level_frequencies(levels, [4, 4])
    for field in range(2):
        present = [row[field] for row in rows if row[field] >= 0]
        if not present:
            continue
        raw = [max(present.count(level) / len(present), FLOOR) for level in range(4)]
        assert frequencies[field] == pytest.approx(tuple(r / sum(raw) for r in raw))


def test_identical_patterns_do_not_separate():
    """Every candidate pair the same pattern, u measured on the same pairs: m cannot differ from u."""
    for level in (0, 3):
        levels = np.full((2000, 3), level, dtype=np.int64)
        result = estimate(levels, N_LEVELS, level_frequencies(levels, N_LEVELS))
        assert result.separating is False


def test_m_equal_to_u_is_not_a_usable_model():
    """Candidate pairs drawn from u alone (no matches at all): the job must not trust the model."""
    levels, _ = simulate(PAIRS, 0.0, M_TRUE, U_TRUE, seed=5)
    result = estimate(levels, N_LEVELS, U_TRUE.tolist())
    assert not (result.converged and result.separating)
    assert result.prior < 0.01


def test_m_equal_to_u_does_not_separate():
    """With no matches among the pairs, no field's m can honestly differ from its u: ``separating`` is False.

    (EM on pure non-matches finds a vanishing 'match' class of a few dozen pairs with m concentrated on whatever
    rare pattern they share; the top level of one field then looks > 10x more likely under m than under u.)"""
    levels, _ = simulate(PAIRS, 0.0, M_TRUE, U_TRUE, seed=5)
    result = estimate(levels, N_LEVELS, U_TRUE.tolist())
    assert result.separating is False


def test_estimate_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match="pairs x fields"):
        estimate(np.zeros((5, 2), dtype=np.int64), N_LEVELS, U_TRUE.tolist())
    with pytest.raises(ValueError, match="pairs x fields"):
        estimate(np.zeros(5, dtype=np.int64), [4], [U_TRUE[0].tolist()])


@given(st.lists(st.lists(st.integers(-1, 3), min_size=3, max_size=3), max_size=60))
def test_distinct_patterns_are_numpy_unique(rows):
    levels = np.array(rows, dtype=np.int64).reshape(len(rows), 3)
    patterns, counts = distinct_patterns(levels, [4, 4, 4])
    expected_patterns, expected_counts = np.unique(levels, axis=0, return_counts=True)
    order = np.lexsort(patterns.T[::-1])
    assert patterns[order].tolist() == expected_patterns.tolist()
    assert counts[order].tolist() == expected_counts.tolist()
    assert counts.sum() == len(rows)


def test_distinct_patterns_of_too_many_levels_to_pack():
    levels = np.array([[0] * 20, [1] * 20, [0] * 20, [-1] * 20], dtype=np.int64)
    patterns, counts = distinct_patterns(levels, [10] * 20)  # 11^20 > 2^62: the row-wise path
    assert sorted(zip(map(tuple, patterns.tolist()), counts.tolist())) == [
        ((-1,) * 20, 1), ((0,) * 20, 2), ((1,) * 20, 1)]


def log_odds(levels: np.ndarray, result: EmResult) -> np.ndarray:
    """logit(prior) + sum over fields of ln(m/u) at each pair's level, 0 for a missing field."""
    total = np.full(len(levels), np.log(result.prior / (1 - result.prior)))
    for field, (m_f, u_f) in enumerate(zip(result.m, result.u)):
        ratio = np.log(np.asarray(m_f) / np.asarray(u_f))
        column = levels[:, field]
        total += np.where(column >= 0, ratio[np.maximum(column, 0)], 0.0)
    return total


def test_em_weights_rank_simulated_matches_first(mixture):
    """Scored by the estimated model, true matches rank above non-matches (what the link job relies on)."""
    levels, match = mixture
    result = estimate(levels, N_LEVELS, U_TRUE.tolist())
    probability = 1 / (1 + np.exp(-log_odds(levels, result)))
    predicted = probability >= 0.5
    precision = (predicted & match).sum() / predicted.sum()
    recall = (predicted & match).sum() / match.sum()
    assert precision > 0.85 and recall > 0.8
