"""Statistics against textbook cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasonir_rag.eval.stats import (
    accuracy,
    binom_two_sided_half,
    bootstrap_ci,
    gains,
    mcnemar_exact,
    paired_bootstrap_diff_ci,
)


def _pairs(b: int, c: int, both_right: int = 10, both_wrong: int = 5):
    """Condition/baseline outcome vectors with b (condition right only) and c (baseline right only)."""
    cond = [1] * b + [0] * c + [1] * both_right + [0] * both_wrong
    base = [0] * b + [1] * c + [1] * both_right + [0] * both_wrong
    return cond, base


def test_mcnemar_fagerland_airway_example():
    """Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: 1 vs 7 discordant pairs,
    exact conditional two-sided p = 0.0703 (= 2 * 9 / 256)."""
    cond, base = _pairs(b=7, c=1)
    result = mcnemar_exact(cond, base)
    assert (result.b, result.c, result.n) == (7, 1, 23)
    assert result.p_value == pytest.approx(18 / 256, abs=1e-12)
    assert round(result.p_value, 4) == 0.0703
    assert mcnemar_exact(base, cond).p_value == result.p_value  # two-sided: symmetric


def test_mcnemar_edge_cases_and_fallback_formula():
    assert mcnemar_exact(*_pairs(0, 0)).p_value == 1.0  # no discordant pair: no evidence
    assert mcnemar_exact(*_pairs(5, 5)).p_value == 1.0
    assert mcnemar_exact(*_pairs(10, 0)).p_value == pytest.approx(2 / 2**10)
    # the scipy-free exact sum agrees with scipy (here) on a large table (Wikipedia's 121 vs 59 example)
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = scipy_stats.binomtest(59, 180, 0.5).pvalue
    assert binom_two_sided_half(59, 180) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(*_pairs(121, 59)).p_value == pytest.approx(expected, rel=1e-9)
    assert binom_two_sided_half(0, 0) == 1.0
    # thousands of discordant pairs: exact integers, no overflow or underflow on the way
    big = scipy_stats.binomtest(1420, 3000, 0.5).pvalue
    assert 1e-4 < big < 1e-2 and binom_two_sided_half(1420, 3000) == pytest.approx(big, rel=1e-9)
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([1, 0], [1])


def test_bootstrap_matches_the_normal_approximation_for_a_large_sample():
    correct = [1] * 280 + [0] * 120  # p = 0.7, n = 400: Wald 95% CI 0.7 +- 0.0449
    lo, hi = bootstrap_ci(correct, seed=0)
    half = 1.959964 * math.sqrt(0.7 * 0.3 / 400)
    assert lo == pytest.approx(0.7 - half, abs=0.006) and hi == pytest.approx(0.7 + half, abs=0.006)
    assert bootstrap_ci(correct, seed=0) == (lo, hi)  # seeded: identical
    wider = bootstrap_ci(correct, confidence=0.99, seed=0)
    assert wider[0] < lo and wider[1] > hi


def test_bootstrap_degenerate_and_invalid():
    assert bootstrap_ci([1] * 30) == (1.0, 1.0)
    assert bootstrap_ci([0] * 30) == (0.0, 0.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    with pytest.raises(ValueError, match="only 0/1"):
        bootstrap_ci([0, 2, 1])
    with pytest.raises(ValueError, match="confidence must be in"):
        bootstrap_ci([0, 1], confidence=95)


def test_paired_difference_ci():
    cond, base = _pairs(b=30, c=10, both_right=40, both_wrong=20)  # +20 points on 100 questions
    lo, hi = paired_bootstrap_diff_ci(cond, base, seed=1)
    assert lo < 0.2 < hi and lo > 0  # a real gain: the interval excludes 0
    assert paired_bootstrap_diff_ci(cond, cond) == (0.0, 0.0)


def test_accuracy_and_gains():
    assert accuracy([True, False, True, True]) == 0.75
    assert math.isnan(accuracy([]))
    assert accuracy(np.array([1, 0])) == 0.5
    absolute, relative = gains(0.532, 0.5)  # the paper reports MMLU +6.4% relative
    assert absolute == pytest.approx(0.032) and relative == pytest.approx(0.064)
    assert gains(0.3, 0.0) == (0.3, None)
