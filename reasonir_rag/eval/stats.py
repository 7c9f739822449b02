"""Statistics a reader comparison can be trusted with: accuracy intervals, paired bootstrap, exact McNemar, gains.

All inputs are per-question 0/1 outcomes; paired tests take two aligned vectors (same questions, same
order). Seeds are explicit so a report can be recomputed bit for bit.

An accuracy's interval is Wilson's score interval (or Clopper-Pearson's exact one): a percentile bootstrap
of a proportion under-covers on the small per-subject samples a report has, and collapses to zero width at
0% or 100% (a subject with 5 questions all right is not known to be 100% accurate). The bootstrap stays for
a paired difference, where no closed form accounts for the pairing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from reasonir_rag._common.names import by_name
from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError

Outcomes = Sequence[bool] | Sequence[int] | np.ndarray


def _as_bool(values: Outcomes, name: str = "outcomes") -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-d sequence of 0/1 values, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise InvalidInputError(f"{name} must hold only 0/1 (or booleans)")
    return arr.astype(bool)


def accuracy(correct: Outcomes) -> float:
    """Fraction correct; NaN for no questions (a report shows it as missing, never as 0)."""
    arr = _as_bool(correct)
    return float(arr.mean()) if arr.size else float("nan")


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")


def _check_counts(successes: int, n: int, confidence: float) -> None:
    if n < 1 or not 0 <= successes <= n:
        raise InvalidInputError(f"an interval needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    _check_confidence(confidence)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval: the proportions the normal score test does not reject. Never zero width."""
    _check_counts(successes, n, confidence)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = (successes + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(successes * (n - successes) / n + z * z / 4)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0 or n
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def clopper_pearson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson's exact interval (beta quantiles): at least the nominal coverage, so wider than Wilson."""
    _check_counts(successes, n, confidence)
    beta = require("scipy.stats").beta
    alpha = 1 - confidence
    lo = float(beta.ppf(alpha / 2, successes, n - successes + 1)) if successes > 0 else 0.0
    hi = float(beta.ppf(1 - alpha / 2, successes + 1, n - successes)) if successes < n else 1.0
    return lo, hi


INTERVALS: dict[str, Callable[[int, int, float], tuple[float, float]]] = {
    "wilson": wilson_interval,
    "clopper-pearson": clopper_pearson_interval,
}
INTERVAL_NAMES = {"wilson": "Wilson score interval", "clopper-pearson": "Clopper-Pearson exact interval"}


def accuracy_ci(correct: Outcomes, *, confidence: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Interval for the accuracy by ``method`` (``"wilson"`` or ``"clopper-pearson"``); NaN for no questions."""
    interval = by_name(INTERVALS, method, "interval method")
    _check_confidence(confidence)
    arr = _as_bool(correct)
    if not arr.size:
        return float("nan"), float("nan")
    return interval(int(arr.sum()), int(arr.size), confidence)


def bootstrap_ci(
    correct: Outcomes, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the accuracy (resampling questions with replacement).

    Kept for comparison: it under-covers on small samples and is zero width at 0% or 100%; reports use
    :func:`accuracy_ci`."""
    arr = _as_bool(correct).astype(np.float64)
    if not arr.size:
        return float("nan"), float("nan")
    return bootstrap_ci_of_mean(arr, confidence=confidence, n_resamples=n_resamples, seed=seed)


def paired_bootstrap_diff_ci(
    a: Outcomes, b: Outcomes, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for accuracy(a) - accuracy(b), resampling questions jointly."""
    x, y = _paired(a, b)
    if not x.size:
        return float("nan"), float("nan")
    diff = x.astype(np.float64) - y.astype(np.float64)
    return bootstrap_ci_of_mean(diff, confidence=confidence, n_resamples=n_resamples, seed=seed)


def bootstrap_ci_of_mean(
    values: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (chunked: bounded memory)."""
    _check_confidence(confidence)
    if n_resamples < 1:
        raise InvalidInputError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts and the two-sided exact (binomial) p-value.

    ``b``: questions the condition got right and the baseline wrong; ``c``: the reverse.
    """

    b: int
    c: int
    n: int
    p_value: float


def _paired(a: Outcomes, b: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_bool(a, "a"), _as_bool(b, "b")
    if x.shape != y.shape:
        raise InvalidInputError(f"paired outcomes need equal lengths, got {x.size} and {y.size}")
    return x, y


def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided binomial p-value for k successes in n trials at p = 1/2 (doubling the smaller tail)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers, one correctly rounded division: no underflow


def mcnemar_exact(condition: Outcomes, baseline: Outcomes) -> McNemarResult:
    """Paired exact McNemar test of ``condition`` against ``baseline`` on the same questions."""
    x, y = _paired(condition, baseline)
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    try:
        from scipy.stats import binomtest
    except ImportError:  # scipy is optional: the exact sum is the same test
        p = binom_two_sided_half(min(b, c), b + c)
    else:
        p = float(binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
    return McNemarResult(b=b, c=c, n=int(x.size), p_value=min(1.0, p))


def gains(accuracy_value: float, baseline: float) -> tuple[float, float | None]:
    """(absolute, relative) gain over the baseline; relative is None when the baseline is 0."""
    absolute = accuracy_value - baseline
    relative = absolute / baseline if baseline and not math.isnan(baseline) else None
    return absolute, relative


def paired_randomization_test(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, n_resamples: int = 10_000, seed: int = 0,
) -> float:
    """Two-sided p-value of mean(a) - mean(b) under the paired sign-flip randomisation test (any per-item
    scores: nDCG, recall). Identical inputs give 1; the +1 correction keeps p above 0 for a finite sample."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise InvalidInputError(f"paired scores need two 1-d sequences of equal length, got {x.shape} and {y.shape}")
    if n_resamples < 1:
        raise InvalidInputError(f"n_resamples must be >= 1, got {n_resamples}")
    diff = x - y
    if not diff.size:
        return float("nan")
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 2_000_000 // diff.size)
    for start in range(0, n_resamples, chunk):
        size = min(n_resamples, start + chunk) - start
        signs = rng.choice((-1.0, 1.0), size=(size, diff.size))
        hits += int(np.sum(np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12))
    return (hits + 1) / (n_resamples + 1)
