"""Mechanisms: output distributions (KS / chi-square with fixed seeds, p > 1e-4 each, i.e. a 1e-4
false-failure rate per test), grids, clamping, typed errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from safesynth.gateway.dp.contribution import bound_contributions, bound_partitions, clamp_sensitivity
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.mechanisms import (
    discrete_gaussian_mechanism,
    discrete_laplace_mechanism,
    exponential_mechanism,
    gaussian_mechanism,
    laplace_mechanism,
    partition_selection,
    partition_selection_threshold,
    release_grid,
    report_noisy_max,
)
from safesynth.gateway.dp.rng import RandomSource

P_MIN = 1e-4


def test_laplace_mechanism_distribution_and_grid() -> None:
    x = np.full(20_000, 3.3)
    y = laplace_mechanism(x, sensitivity=1.0, scale=2.0, rng=RandomSource.seeded(21))
    assert stats.kstest(y - 3.3, stats.laplace(scale=2.0).cdf).pvalue > P_MIN
    g = release_grid(2.0)
    assert np.all(y / g == np.round(y / g))


def test_gaussian_mechanism_distribution_and_shape() -> None:
    x = np.full((100, 200), -7.25)
    y = gaussian_mechanism(x, sensitivity=1.0, sigma=3.0, rng=RandomSource.seeded(22))
    assert y.shape == x.shape
    assert stats.kstest((y + 7.25).ravel(), stats.norm(scale=3.0).cdf).pvalue > P_MIN


def test_clamp_is_part_of_the_mechanism() -> None:
    y = laplace_mechanism(
        np.full(5000, 1e9), sensitivity=1.0, scale=0.01, rng=RandomSource.seeded(23), clamp=(0.0, 1.0)
    )
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert clamp_sensitivity(-2.0, 1.0, 3) == 6.0


def test_discrete_mechanisms_keep_integers() -> None:
    v = np.arange(10_000)
    y = discrete_laplace_mechanism(v, sensitivity=1, scale=3.0, rng=RandomSource.seeded(24))
    z = discrete_gaussian_mechanism(v, sensitivity=1, sigma=3.0, rng=RandomSource.seeded(24))
    assert y.dtype == np.int64 and z.dtype == np.int64
    assert abs(float(np.std(z - v)) - 3.0) < 0.1
    with pytest.raises(InvalidParameter, match="values"):
        discrete_laplace_mechanism([0.5], sensitivity=1, scale=1.0, rng=RandomSource.seeded(1))


@pytest.mark.parametrize("monotonic", [False, True])
def test_exponential_mechanism_matches_softmax(monotonic: bool) -> None:
    scores = np.array([0.0, 1.0, 2.5, 3.0, -1.0])
    eps, sens = 1.0, 1.0
    r = RandomSource.seeded(25)
    draws = np.array(
        [
            exponential_mechanism(scores, sensitivity=sens, epsilon=eps, rng=r, monotonic=monotonic)
            for _ in range(4000)
        ]
    )
    c = 1.0 if monotonic else 2.0
    w = np.exp(eps * scores / (c * sens))
    expected = w / w.sum() * draws.size
    counts = np.bincount(draws, minlength=scores.size)
    assert expected.min() >= 5  # every bin usable by the chi-square test
    assert float(stats.chisquare(counts, expected).pvalue) > P_MIN
    assert report_noisy_max([1.0], sensitivity=1.0, epsilon=1.0, rng=r) == 0


def test_partition_selection_release_probability_of_a_singleton() -> None:
    eps, delta = 1.0, 0.3  # a large delta so the singleton release rate is measurable
    thr = partition_selection_threshold(eps, delta)
    q = math.exp(-eps)
    p_release = q ** (thr - 1) / (1 + q)  # P(1 + Z >= T) for discrete Laplace Z
    assert p_release <= delta
    r = RandomSource.seeded(26)
    counts = {i: 1 for i in range(20_000)}
    released = partition_selection(counts, epsilon=eps, delta=delta, rng=r)
    assert float(stats.binomtest(len(released), len(counts), p_release).pvalue) > P_MIN


def test_partition_selection_keeps_frequent_keys_sorted() -> None:
    r = RandomSource.seeded(27)
    out = partition_selection({"b": 500, "a": 400, "z": 0, "c": 1}, epsilon=1.0, delta=1e-9, rng=r)
    assert out == ["a", "b"]
    assert partition_selection({}, epsilon=1.0, delta=1e-9, rng=r) == []


def test_contribution_bounding() -> None:
    r = RandomSource.seeded(28)
    units = ["u1"] * 10 + ["u2"] * 3 + ["u3"]
    keep = bound_contributions(units, max_contributions=2, rng=r)
    kept = [u for u, k in zip(units, keep, strict=True) if k]
    assert kept.count("u1") == 2 and kept.count("u2") == 2 and kept.count("u3") == 1
    keys = ["a", "a", "b", "c", "d", "a", "b", "c", "d", "e", "x", "y", "z", "q"]
    mask = bound_partitions(units, keys, max_partitions=2, rng=r)
    pairs = {(u, k) for u, k, m in zip(units, keys, mask, strict=True) if m}
    assert sum(1 for u, _ in pairs if u == "u1") == 2
    assert int(mask.sum()) == len(pairs)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0])
def test_bad_parameters_are_typed(bad: float) -> None:
    r = RandomSource.seeded(1)
    with pytest.raises(InvalidParameter, match="sigma"):
        gaussian_mechanism([1.0], sensitivity=1.0, sigma=bad, rng=r)
    with pytest.raises(InvalidParameter, match="scale"):
        laplace_mechanism([1.0], sensitivity=1.0, scale=bad, rng=r)
    with pytest.raises(InvalidParameter, match="epsilon"):
        exponential_mechanism([1.0, 2.0], sensitivity=1.0, epsilon=bad, rng=r)


def test_values_and_rng_are_checked() -> None:
    with pytest.raises(InvalidParameter, match="values"):
        gaussian_mechanism([1.0, math.nan], sensitivity=1.0, sigma=1.0, rng=RandomSource.seeded(1))
    with pytest.raises(InvalidParameter, match="rng"):
        gaussian_mechanism([1.0], sensitivity=1.0, sigma=1.0, rng=np.random.default_rng(1))  # type: ignore[arg-type]
