"""Calibration against mpmath closed forms (Balle & Wang 2018), conservative rounding, round trips."""

from __future__ import annotations

import math

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.dp.accountant import compose
from safesynth.gateway.dp.calibration import (
    gaussian_delta,
    gaussian_epsilon,
    gaussian_sigma,
    gaussian_sigma_for_rho,
    laplace_epsilon,
    laplace_scale,
)
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.events import GaussianEvent

mpmath.mp.dps = 50


def mp_delta(mu: float, eps: float) -> mpmath.mpf:
    """delta(eps) of mu-GDP / the analytic Gaussian, 50 digits."""
    mu_, eps_ = mpmath.mpf(mu), mpmath.mpf(eps)
    return mpmath.ncdf(-eps_ / mu_ + mu_ / 2) - mpmath.e**eps_ * mpmath.ncdf(-eps_ / mu_ - mu_ / 2)


def mp_epsilon(mu: float, delta: float) -> float:
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    while mp_delta(mu, float(hi)) > delta:
        hi *= 2
    for _ in range(120):
        mid = (lo + hi) / 2
        if mp_delta(mu, float(mid)) > delta:
            lo = mid
        else:
            hi = mid
    return float(hi)


@pytest.mark.parametrize("eps", [0.1, 1.0, 4.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_gaussian_sigma_meets_the_exact_profile_and_is_tight(eps: float, delta: float) -> None:
    sigma = gaussian_sigma(eps, delta, 2.0)
    exact = mp_delta(2.0 / sigma, eps)
    assert exact <= delta  # meets the target (never too little noise)
    # tight: 0.1 % less noise would miss it
    assert mp_delta(2.0 / (sigma * 0.999), eps) > delta


@pytest.mark.parametrize("sigma", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_gaussian_epsilon_never_below_exact(sigma: float, delta: float) -> None:
    ours = gaussian_epsilon(sigma, delta)
    exact = mp_epsilon(1.0 / sigma, delta)
    assert exact <= ours <= exact * (1 + 1e-9) + 1e-12
    assert gaussian_delta(sigma, ours) <= delta


def test_laplace_and_rho() -> None:
    assert laplace_scale(0.5, 2.0) >= 4.0
    assert laplace_scale(0.5, 2.0) <= 4.0 * (1 + 1e-15)
    assert laplace_epsilon(4.0, 2.0) >= 0.5
    s = gaussian_sigma_for_rho(0.125)
    assert 1.0 / (2 * s * s) <= 0.125


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_inputs_are_typed(bad: float) -> None:
    with pytest.raises(InvalidParameter, match="epsilon"):
        gaussian_sigma(bad, 1e-6)
    with pytest.raises(InvalidParameter, match="delta"):
        gaussian_sigma(1.0, bad if bad != 0.5 else 2.0)
    with pytest.raises(InvalidParameter, match="sigma"):
        gaussian_epsilon(bad, 1e-6)


@settings(max_examples=40, deadline=None)
@given(
    eps=st.floats(0.05, 10.0),
    log_delta=st.floats(-12.0, -4.0),
    count=st.integers(1, 200),
)
def test_calibrate_then_cost_round_trips_conservatively(eps: float, log_delta: float, count: int) -> None:
    delta = 10.0**log_delta
    sigma = gaussian_sigma(eps, delta, count=count)
    spent = compose([GaussianEvent(sigma, count=count)], delta=delta, methods=("gdp", "rdp")).epsilon
    assert spent <= eps  # never more than asked
    assert spent >= eps * (1 - 1e-6)  # and not wastefully less


def test_gdp_mu_of_pure_is_never_below_the_exact_value_and_finite_for_large_epsilon() -> None:
    """Reference: mpmath at 60 digits. Float rounding may only raise mu (never under-report)."""
    import mpmath

    from safesynth.gateway.dp.calibration import gdp_mu_of_pure

    mpmath.mp.dps = 60
    previous = 0.0
    for eps in (1e-9, 1e-6, 1e-3, 0.1, 0.5, 0.999, 1.0, 2.0, 10.0, 20.0, 36.0, 37.5, 40.0, 100.0):
        q = 1 / (1 + mpmath.exp(mpmath.mpf(eps)))
        exact = -2 * mpmath.sqrt(2) * mpmath.erfinv(2 * q - 1)
        got = gdp_mu_of_pure(eps)
        assert math.isfinite(got), eps
        assert got >= exact, (eps, got, exact)
        assert got <= exact * (1 + 1e-9) + 1e-14, (eps, got, exact)  # 4 ulps of p near 1/2
        assert got > previous
        previous = got
    assert gdp_mu_of_pure(800.0) == math.inf


def test_filter_decides_a_very_large_pure_event_without_error() -> None:
    from safesynth.gateway.dp.events import PureDpEvent
    from safesynth.gateway.dp.filter import PrivacyFilter

    flt = PrivacyFilter(100.0, 1e-6)
    decision = flt.decide(flt.empty_state(), [PureDpEvent(epsilon=50.0)])
    assert decision.admitted
    refused = flt.decide(decision.new_state, [PureDpEvent(epsilon=60.0)])
    assert not refused.admitted


def test_bounded_range_rdp_does_not_collapse_for_huge_epsilon() -> None:
    """Regression: the product A*B overflowed for epsilon(alpha + 1) > 709, q became 0 and the
    bounded-range RDP bound 0 (an under-report). The bound must stay near epsilon there."""
    import numpy as np

    from safesynth.gateway.dp.rdp import br_rdp, pure_dp_rdp

    orders = np.array([1.25, 1.5, 2.0, 3.0, 4.0])
    for eps in (150.0, 300.0, 500.0):
        curve = br_rdp(eps, orders)
        assert np.all(np.isfinite(curve))
        assert np.all(curve >= 0.9 * eps), (eps, curve)
        assert np.all(curve <= pure_dp_rdp(eps, orders))


def test_filter_refuses_a_huge_exponential_event() -> None:
    from safesynth.gateway.dp.events import ExponentialEvent
    from safesynth.gateway.dp.filter import PrivacyFilter

    # With the overflow, a budget of 20 admitted an epsilon-250 selection at order 2 for free.
    flt = PrivacyFilter(20.0, 1e-6)
    for eps in (50.0, 150.0, 250.0, 300.0):
        assert not flt.decide(flt.empty_state(), [ExponentialEvent(epsilon=eps)]).admitted, eps


# Reference points for the GDP profile's inverse: small and large mu, deltas from 1e-3 to 1e-14, and
# points where the solver leaves the pure-math domain (eps > 700, erfc arguments beyond 26).
_GDP_CASES = [
    (1e-3, 1e-12),
    (0.00245, 0.000975),
    (0.025, 4.9e-6),
    (0.05, 1e-6),
    (0.5, 1e-5),
    (1.0, 1e-14),
    (2.0, 1e-8),
    (10.0, 1e-5),
    (40.0, 1e-9),
    (100.0, 1e-10),
    (1000.0, 1e-5),  # the second term's slope underflows next to the first: bisection steps
    (3000.0, 1e-12),
]


@pytest.mark.parametrize(("mu", "delta"), _GDP_CASES)
def test_gdp_epsilon_is_a_tight_upper_bound_of_the_exact_inverse(mu: float, delta: float) -> None:
    from safesynth.gateway.dp.calibration import gdp_delta, gdp_epsilon

    ours = gdp_epsilon(mu, delta)
    exact = mp_epsilon(mu, delta)
    # the solver aims 1e-9 (relative) inside delta: never above the exact inverse at a 2e-9 smaller delta
    tight = mp_epsilon(mu, delta * (1 - 2e-9))
    assert exact <= ours <= tight * (1 + 1e-12), (mu, delta, ours, exact, tight)
    assert mp_delta(mu, ours) <= delta  # the exact profile at the returned epsilon meets delta
    assert gdp_delta(mu, ours) <= delta


def test_gdp_epsilon_is_zero_when_delta_is_met_at_zero() -> None:
    from safesynth.gateway.dp.calibration import gdp_epsilon

    assert mp_delta(1e-4, 0.0) <= 1e-3 * (1 - 1e-9)
    assert gdp_epsilon(1e-4, 1e-3) == 0.0
    assert gdp_epsilon(1.0, 1e-3) > 0.0


@settings(max_examples=60, deadline=None)
@given(log_mu=st.floats(-3.0, 1.5), log_delta=st.floats(-14.0, -2.0))
def test_gdp_epsilon_meets_its_delta_and_agrees_with_a_root_bracket(log_mu: float, log_delta: float) -> None:
    """Invariant: the returned epsilon meets delta (profile evaluated in scipy's log_ndtr form, not the
    solver's), and a value 1e-9 smaller does not (tight), unless it is 0."""
    from scipy.special import log_ndtr

    from safesynth.gateway.dp.calibration import gdp_epsilon

    mu, delta = 10.0**log_mu, 10.0**log_delta

    def profile(eps: float) -> float:
        la = float(log_ndtr(-eps / mu + mu / 2.0))
        lb = float(log_ndtr(-eps / mu - mu / 2.0)) + eps
        return 0.0 if lb >= la else math.exp(la) * -math.expm1(lb - la)

    ours = gdp_epsilon(mu, delta)
    assert profile(ours) <= delta
    if ours > 0.0:
        assert profile(ours * (1 - 1e-9)) > delta * (1 - 1e-8)


@settings(max_examples=200, deadline=None)
@given(mu=st.floats(1e-3, 50.0), eps=st.floats(0.0, 800.0))
def test_profile_terms_in_math_agree_with_log_ndtr(mu: float, eps: float) -> None:
    """The pure-math terms of the profile (math.erfc) equal scipy's log_ndtr form to ~1e-13."""
    from scipy.special import log_ndtr

    from safesynth.gateway.dp.calibration import _log_terms

    la, lb = _log_terms(mu, eps)
    ra = float(log_ndtr(-eps / mu + mu / 2.0))
    rb = float(log_ndtr(-eps / mu - mu / 2.0)) + eps
    assert la == pytest.approx(ra, rel=1e-12, abs=1e-12)
    assert lb == pytest.approx(rb, rel=1e-12, abs=1e-12)
