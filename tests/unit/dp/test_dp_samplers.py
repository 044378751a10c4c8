"""Exactness of the samplers against their pmf, the exact slow paths, and the randomness source.

Statistical tests use fixed seeds (so they are deterministic); each asserts p > 1e-4, i.e. a false
failure rate of 1e-4 per test for an exact sampler and a fresh seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy import stats

from safesynth.gateway.dp import rng as rng_mod
from safesynth.gateway.dp import samplers
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.dp.samplers import (
    bernoulli_exp_neg,
    discrete_gaussian,
    discrete_laplace,
    exp_neg_interval,
    geometric,
    rounded_laplace,
    uniform_below,
)

P_MIN = 1e-4


def chi_square_p(samples: np.ndarray, pmf: Callable[[int], float], min_expected: float = 20.0) -> float:
    """Chi-square goodness of fit with tails lumped into the outermost bins."""
    n = samples.size
    lo, hi = int(samples.min()), int(samples.max())
    support = np.arange(lo - 50, hi + 51)
    probs = np.array([pmf(int(k)) for k in support], dtype=np.float64)
    probs /= probs.sum()
    keep = probs * n >= min_expected
    idx = np.flatnonzero(keep)
    first, last = int(idx[0]), int(idx[-1])
    edges_p = np.concatenate([[probs[: first + 1].sum()], probs[first + 1 : last], [probs[last:].sum()]])
    cut = support[first : last + 1]
    counts = np.concatenate(
        [
            [np.sum(samples <= cut[0])],
            [np.sum(samples == k) for k in cut[1:-1]],
            [np.sum(samples >= cut[-1])],
        ]
    )
    return float(stats.chisquare(counts, edges_p * n).pvalue)


@pytest.mark.parametrize("scale", [0.3, 1.7, 12.0])
def test_discrete_laplace_matches_pmf(scale: float) -> None:
    x = discrete_laplace(60_000, scale, RandomSource.seeded(11))
    assert chi_square_p(x, lambda k: math.exp(-abs(k) / scale)) > P_MIN


@pytest.mark.parametrize(("sigma", "center"), [(0.6, 0.0), (3.5, 0.0), (2.0, 0.3), (25.0, -0.45)])
def test_discrete_gaussian_matches_pmf(sigma: float, center: float) -> None:
    x = discrete_gaussian(np.full(60_000, center), sigma, RandomSource.seeded(12))
    assert chi_square_p(x, lambda k: math.exp(-((k - center) ** 2) / (2 * sigma * sigma))) > P_MIN


@pytest.mark.parametrize(("scale", "center"), [(0.8, 0.0), (3.0, 0.25), (5.0, -0.5), (5.0, 7.4)])
def test_rounded_laplace_is_round_of_continuous_laplace(scale: float, center: float) -> None:
    x = rounded_laplace(np.full(60_000, center), scale, RandomSource.seeded(13))
    lap = stats.laplace(loc=center, scale=scale)
    assert chi_square_p(x, lambda k: float(lap.cdf(k + 0.5) - lap.cdf(k - 0.5))) > P_MIN


def test_geometric_matches_pmf() -> None:
    scale = 4.0
    x = geometric(60_000, scale, RandomSource.seeded(14))
    q = math.exp(-1 / scale)
    assert x.min() >= 0
    assert chi_square_p(x, lambda k: (1 - q) * q**k if k >= 0 else 0.0) > P_MIN


def test_uniform_below_is_uniform_and_in_range() -> None:
    for n in (1, 3, 1000, (1 << 40) + 7):
        x = uniform_below(n, 5000, RandomSource.seeded(15))
        assert x.min() >= 0 and x.max() < n
    x = uniform_below(7, 70_000, RandomSource.seeded(16))
    assert float(stats.chisquare(np.bincount(x, minlength=7)).pvalue) > P_MIN


@pytest.mark.parametrize("gamma", [0.05, 0.7, 3.0])
def test_bernoulli_exact_slow_path(gamma: float) -> None:
    """widen=1 sends every draw through the lazy-bit exact comparison."""
    n = 4000
    g = np.full(n, gamma)
    out = bernoulli_exp_neg(g, np.zeros(n), lambda _i: Fraction(gamma), RandomSource.seeded(17), widen=1.0)
    p = float(stats.binomtest(int(out.sum()), n, math.exp(-gamma)).pvalue)
    assert p > P_MIN


def test_bernoulli_fast_path_probability() -> None:
    n = 200_000
    out = bernoulli_exp_neg(np.full(n, 0.4), np.zeros(n), lambda _i: Fraction(0.4), RandomSource.seeded(18))
    assert float(stats.binomtest(int(out.sum()), n, math.exp(-0.4)).pvalue) > P_MIN


def test_geometric_exact_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge float slack makes (almost) every draw use the exact lazy-uniform search."""
    monkeypatch.setattr(samplers, "_RELC", 0.45)
    x = discrete_laplace(3000, 2.5, RandomSource.seeded(19))
    assert chi_square_p(x, lambda k: math.exp(-abs(k) / 2.5), min_expected=10) > P_MIN


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 3), Fraction(7), Fraction(12345, 7)])
def test_exp_neg_interval_encloses_mpmath(gamma: Fraction) -> None:
    mpmath.mp.dps = 80
    a, b = exp_neg_interval(gamma, 40)
    true = mpmath.e ** (-mpmath.mpf(gamma.numerator) / gamma.denominator)
    assert mpmath.mpf(a.numerator) / a.denominator <= true <= mpmath.mpf(b.numerator) / b.denominator
    assert b - a <= (gamma + 1) * Fraction(1, 10**35) * b


def test_scales_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="scale"):
        discrete_laplace(3, 2.0**50, RandomSource.seeded(1))
    with pytest.raises(InvalidParameter, match="sigma"):
        discrete_gaussian(np.zeros(3), 0.0, RandomSource.seeded(1))


def test_secure_source_is_default_and_draws_from_the_os(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = rng_mod.os.urandom

    def spy(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(rng_mod.os, "urandom", spy)
    src = RandomSource.secure()
    assert not src.is_seeded
    assert calls  # the AES-CTR key and counter come from os.urandom
    a, b = src.words(4), RandomSource.secure().words(4)
    assert not np.array_equal(a, b)
    with pytest.raises(TypeError):
        RandomSource()


def test_seeded_source_is_reproducible_and_flagged() -> None:
    a, b = RandomSource.seeded(5), RandomSource.seeded(5)
    assert a.is_seeded
    assert np.array_equal(a.words(8), b.words(8))
    assert np.array_equal(discrete_gaussian(np.zeros(50), 3.0, a), discrete_gaussian(np.zeros(50), 3.0, b))
    with pytest.raises(InvalidParameter):
        RandomSource.seeded(-1)


def test_secure_source_never_repeats_keystream_across_threads() -> None:
    import threading

    src = RandomSource.secure()
    chunks: list[np.ndarray] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            w = src.words(64)
            with lock:
                chunks.append(w.copy())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allw = np.concatenate(chunks)
    assert np.unique(allw).size == allw.size  # 12,800 64-bit words: a repeat would mean reuse


def test_bernoulli_exact_path_with_astronomical_gamma() -> None:
    """exp(-5000) is never hit; the exact path settles it through the 2^-k bound, no underflow."""
    n = 200
    g = np.full(n, 5000.0)
    out = bernoulli_exp_neg(g, np.zeros(n), lambda _i: Fraction(5000), RandomSource.seeded(30), widen=1.0)
    assert not out.any()
    a, b = exp_neg_interval(Fraction(5000), 40)
    assert 0 < a <= b < Fraction(1, 2**5000)
