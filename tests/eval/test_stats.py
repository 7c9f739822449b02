"""Statistics against textbook cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasonir_rag.eval.stats import (
    accuracy,
    accuracy_ci,
    binom_two_sided_half,
    bootstrap_ci,
    clopper_pearson_interval,
    gains,
    mcnemar_exact,
    paired_bootstrap_diff_ci,
    wilson_interval,
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


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857, Table I:
# (successes, n) -> method 3 (Wilson score) and method 5 (Clopper-Pearson exact), four decimals.
NEWCOMBE = {
    (81, 263): ((0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148): ((0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20): ((0.0, 0.1611), (0.0, 0.1684)),
    (1, 29): ((0.0061, 0.1718), (0.0009, 0.1776)),
}


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE.items(), ids=[f"{k}/{n}" for k, n in NEWCOMBE])
def test_intervals_match_newcombe_table(counts, expected):
    wilson, exact = expected
    assert wilson_interval(*counts) == pytest.approx(wilson, abs=6e-5)
    assert clopper_pearson_interval(*counts) == pytest.approx(exact, abs=6e-5)
    k, n = counts
    assert accuracy_ci([1] * k + [0] * (n - k)) == wilson_interval(k, n)
    assert accuracy_ci([1] * k + [0] * (n - k), method="clopper-pearson") == clopper_pearson_interval(k, n)


def test_intervals_are_never_zero_width_and_check_their_input():
    for n in (1, 5, 40):
        for interval in (wilson_interval, clopper_pearson_interval):
            lo, hi = interval(0, n)
            assert lo == 0.0 and hi > 0.01  # all wrong: the accuracy is low, not known to be 0
            lo, hi = interval(n, n)
            assert hi == 1.0 and lo < 0.99
    narrow, wide = wilson_interval(20, 40), wilson_interval(20, 40, 0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    assert all(math.isnan(v) for v in accuracy_ci([]))
    with pytest.raises(ValueError, match="unknown interval method 'wald'"):
        accuracy_ci([1, 0], method="wald")
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        clopper_pearson_interval(0, 0)
    with pytest.raises(ValueError, match="confidence must be in"):
        accuracy_ci([1, 0], confidence=1.0)


COVERAGE_GRID = [(p, n) for p in (0.02, 0.25, 0.5, 0.9) for n in (10, 40, 200)]


def _coverage(interval, p: float, n: int, rng: np.random.Generator, draws: int = 2000) -> float:
    """Share of ``draws`` simulated samples (n questions, true accuracy p) whose interval holds p."""
    counts = rng.binomial(n, p, size=draws)
    covers = {}
    for k in np.unique(counts):  # the interval depends on the sample only through its count
        lo, hi = interval(int(k), n)
        covers[int(k)] = lo <= p <= hi
    return float(np.mean([covers[int(k)] for k in counts]))


def test_wilson_holds_nominal_coverage_where_the_percentile_bootstrap_under_covers():
    """Seeded simulation over true accuracies and sample sizes a report meets (a subject has 10 questions,
    a run 200): Wilson stays near 95% in every cell; the bootstrap drops far below it for small samples
    and accuracies near 0 or 1 (at 2% on 10 questions most samples are all wrong: a [0, 0] interval)."""
    rng = np.random.default_rng(2024)
    wilson = {cell: _coverage(wilson_interval, *cell, rng) for cell in COVERAGE_GRID}
    exact = {cell: _coverage(clopper_pearson_interval, *cell, rng) for cell in COVERAGE_GRID}

    def percentile_bootstrap(k: int, n: int) -> tuple[float, float]:
        return bootstrap_ci([1] * k + [0] * (n - k), n_resamples=1000, seed=k)

    bootstrap = {cell: _coverage(percentile_bootstrap, *cell, rng) for cell in COVERAGE_GRID}
    for cell in COVERAGE_GRID:  # Wilson's exact coverage here lies in 0.93..0.98; 2000 draws add +-0.01
        assert abs(wilson[cell] - 0.95) <= 0.04, (cell, wilson[cell])
        assert exact[cell] >= 0.935, (cell, exact[cell])  # Clopper-Pearson is conservative
    assert abs(np.mean(list(wilson.values())) - 0.95) <= 0.015
    assert bootstrap[(0.02, 10)] < 0.3 and bootstrap[(0.9, 10)] < 0.75
    assert np.mean(list(bootstrap.values())) < np.mean(list(wilson.values())) - 0.08
