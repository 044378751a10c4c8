"""The real-valued Gaussian is a lattice sample: its grid, its closeness bound and how it is accounted."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy import stats

from safesynth.gateway.dp import mechanisms
from safesynth.gateway.dp.accountant import compose, smallest_delta
from safesynth.gateway.dp.calibration import gdp_delta, gdp_epsilon
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.events import GaussianEvent, LaplaceEvent
from safesynth.gateway.dp.filter import GDP_MAX_GAUSSIAN_CALLS, PrivacyFilter
from safesynth.gateway.dp.rng import RandomSource


def _max_bulk_log_ratio(s: int, centre: float) -> float:
    """max over |k - c| <= 64 s of |ln(N_Z(c, s^2)(k) / P[round(N(c, s^2)) = k])|, by mpmath."""
    mp.mp.dps = 40
    sm, c = mp.mpf(s), mp.mpf(centre)
    k_max = 64 * s + 2
    z = mp.fsum(mp.e ** (-((k - c) ** 2) / (2 * sm * sm)) for k in range(-k_max - 60, k_max + 61))
    worst = mp.mpf(0)
    for k in range(-k_max, k_max + 1):
        t = k - c
        if abs(t) > 64 * sm:
            continue
        p = mp.e ** (-(t**2) / (2 * sm * sm)) / z
        a = abs(t)
        r = mp.ncdf(-(a - mp.mpf(0.5)) / sm) - mp.ncdf(-(a + mp.mpf(0.5)) / sm)
        worst = max(worst, abs(mp.log(p / r)))
    return float(worst)


@pytest.mark.parametrize("s", [8, 16])
def test_bulk_log_ratio_bound_of_the_module_doc(s: int) -> None:
    # The accountant relies on |ln(p/r)| <= 181 / s^2 on the bulk (derived for s >= 2^10; the
    # asymptote is 4095/24 = 170.6). Checked exactly at small s, where it is hardest to hold.
    for c in (0.0, 0.3, 0.5):
        assert _max_bulk_log_ratio(s, c) * s * s <= 181.0
    # and the constant used per call covers 2^20 coordinates at s >= 2^30
    assert mechanisms.GAUSSIAN_MAX_COORDINATES * 181.0 / 2.0**60 <= mechanisms.LATTICE_LOG_RATIO_PER_CALL


def test_grid_depends_on_sigma_only_and_huge_values_work() -> None:
    rng = RandomSource.seeded(5)
    sigma = 3.0
    g = mechanisms.release_grid(sigma, bits=30)
    small = mechanisms.gaussian_mechanism(np.full(2000, 0.1), sensitivity=1.0, sigma=sigma, rng=rng)
    huge = mechanisms.gaussian_mechanism(np.full(2000, 1e12), sensitivity=1.0, sigma=sigma, rng=rng)
    assert np.all(small / g == np.round(small / g))  # the same grid whatever the values
    # huge values: the noise is still N(0, sigma^2) (KS, false-failure rate 1e-4 per check)
    assert stats.kstest((huge - 1e12), stats.norm(scale=sigma).cdf).pvalue > 1e-4
    assert stats.kstest((small - 0.1), stats.norm(scale=sigma).cdf).pvalue > 1e-4


def test_too_many_coordinates_per_call_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="values"):
        mechanisms.gaussian_mechanism(
            np.zeros(mechanisms.GAUSSIAN_MAX_COORDINATES + 1),
            sensitivity=1.0,
            sigma=1.0,
            rng=RandomSource.seeded(1),
        )


@pytest.mark.parametrize(("k", "sigma", "delta"), [(1, 1.0, 1e-6), (1000, 30.0, 1e-9), (1000, 5.0, 1e-9)])
def test_gaussian_composition_pays_the_lattice_term_and_nothing_more(
    k: int, sigma: float, delta: float
) -> None:
    cost = compose([GaussianEvent(sigma, 1.0, count=k)], delta=delta)
    exact = gdp_epsilon(math.sqrt(k) / sigma, delta)
    assert cost.method == "gdp"
    assert cost.epsilon >= exact + 2 * k * mechanisms.LATTICE_LOG_RATIO_PER_CALL  # the term is charged
    assert cost.epsilon <= exact * (1 + 1e-6)  # and it is negligible
    back = smallest_delta([GaussianEvent(sigma, 1.0, count=k)], epsilon=exact)
    assert back.delta >= gdp_delta(math.sqrt(k) / sigma, exact)


def test_mixed_pld_path_includes_the_lattice_term() -> None:
    events = [GaussianEvent(2.0, 1.0, count=10), LaplaceEvent(2.0, 1.0, count=10)]
    with_pld = compose(events, delta=1e-6, methods=("pld",))
    # the same PLD value for a Laplace-only sequence has no term; with Gaussians it is >= 2 eta above
    assert with_pld.epsilon > 0
    eta = 10 * mechanisms.LATTICE_LOG_RATIO_PER_CALL
    from safesynth.gateway.dp.pld import pld_for

    raw = float(pld_for(events, value_discretization_interval=1e-4).get_epsilon_for_delta(1e-6))
    assert with_pld.epsilon >= raw + 2 * eta * 0.999


def test_filter_gdp_test_stops_at_its_call_cap() -> None:
    f = PrivacyFilter(1000.0, 1e-6)
    state = f.empty_state()
    # tiny Gaussians: mu^2 stays far below the GDP budget, only the call cap can stop the gdp test
    dec = f.decide(state, [GaussianEvent(1e6, 1.0, count=GDP_MAX_GAUSSIAN_CALLS)])
    assert dec.admitted and dec.test == "gdp"
    dec2 = f.decide(dec.new_state, [GaussianEvent(1e6, 1.0)])
    assert dec2.admitted and dec2.test != "gdp"  # admitted by a Rényi test instead
    assert dec2.new_state.gaussian_calls == GDP_MAX_GAUSSIAN_CALLS + 1
    assert f.replay([[GaussianEvent(1e6, 1.0, count=GDP_MAX_GAUSSIAN_CALLS)], [GaussianEvent(1e6, 1.0)]]) == (
        dec2.new_state
    )
