"""The accountant against independent references: mpmath closed forms and dp-accounting's PLD.

Rule checked everywhere: the reported epsilon is never below the exact value (or a proven lower
bound of it) and at most the stated tolerance above it.
"""

from __future__ import annotations

import logging
import math
import random

import mpmath
import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.dp import rdp
from safesynth.gateway.dp.accountant import compose, smallest_delta
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.events import (
    ApproxDpEvent,
    ComposedEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    DpEvent,
    ExponentialEvent,
    GaussianEvent,
    LaplaceEvent,
    PureDpEvent,
    ZCdpEvent,
)

logging.getLogger().setLevel(logging.ERROR)  # dp-accounting logs a warning for optimistic PLDs


def mp_gdp_delta(mu: mpmath.mpf, eps: mpmath.mpf) -> mpmath.mpf:
    return mpmath.ncdf(-eps / mu + mu / 2) - mpmath.e**eps * mpmath.ncdf(-eps / mu - mu / 2)


def exact_gaussian_epsilon(sigma: float, k: int, delta: float) -> float:
    """Exact epsilon of k Gaussian releases (sensitivity 1) by 40-digit bisection on the profile."""
    mpmath.mp.dps = 40
    mu = mpmath.sqrt(k) / mpmath.mpf(sigma)
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    while mp_gdp_delta(mu, hi) > delta:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        if mp_gdp_delta(mu, mid) > delta:
            lo = mid
        else:
            hi = mid
    return float(lo)


GRID = [(s, k, d) for s in (0.5, 1.0, 2.0, 5.0) for k in (1, 10, 100, 1000) for d in (1e-5, 1e-7, 1e-9)]


@pytest.mark.parametrize(("sigma", "k", "delta"), GRID)
def test_k_fold_gaussian_exact_within_one_percent(sigma: float, k: int, delta: float) -> None:
    cost = compose([GaussianEvent(sigma, count=k)], delta=delta)
    exact = exact_gaussian_epsilon(sigma, k, delta)
    assert cost.method == "gdp"
    assert exact <= cost.epsilon <= exact * 1.01 + 1e-12


def test_gaussian_agrees_with_dp_accounting_pld() -> None:
    events = [GaussianEvent(2.0, count=7), GaussianEvent(3.0, 2.0, count=3)]
    ours = compose(events, delta=1e-6).epsilon
    pld = (
        pl.from_gaussian_mechanism(2.0)
        .self_compose(7)
        .compose(pl.from_gaussian_mechanism(3.0, sensitivity=2.0).self_compose(3))
    )
    ref = pld.get_epsilon_for_delta(1e-6)
    assert ours <= ref  # PLD (pessimistic) is an upper bound of the exact value we compute
    assert ours >= ref * 0.99


@pytest.mark.parametrize(
    ("scale", "k", "delta"), [(1.0, 1, 1e-5), (1.0, 30, 1e-7), (10.0, 100, 1e-9), (3.0, 10, 1e-6)]
)
def test_k_fold_laplace_between_pld_bounds(scale: float, k: int, delta: float) -> None:
    cost = compose([LaplaceEvent(scale, count=k)], delta=delta)
    lower = pl.from_laplace_mechanism(scale, pessimistic_estimate=False, use_connect_dots=False).self_compose(
        k
    )
    lo = lower.get_epsilon_for_delta(delta)
    assert cost.epsilon >= lo  # never below a proven lower bound of the exact value
    assert cost.epsilon <= lo * 1.01 + 1e-4


def test_single_laplace_closed_form() -> None:
    # one Laplace run with eps0 = 1: delta(eps) = 1 - exp((eps - eps0)/2)  =>  eps = 1 + 2 ln(1 - delta)
    delta = 1e-5
    exact = 1.0 + 2.0 * math.log1p(-delta)
    got = compose([LaplaceEvent(1.0)], delta=delta).epsilon
    assert exact <= got <= exact + 1e-4


def test_mix_between_pld_bounds_and_close_to_pld() -> None:
    events: list[DpEvent] = [GaussianEvent(8.0, count=40), LaplaceEvent(20.0, count=30)]
    cost = compose(events, delta=1e-7)
    opt = (
        pl.from_gaussian_mechanism(8.0, pessimistic_estimate=False, use_connect_dots=False)
        .self_compose(40)
        .compose(
            pl.from_laplace_mechanism(20.0, pessimistic_estimate=False, use_connect_dots=False).self_compose(
                30
            )
        )
    )
    lo = opt.get_epsilon_for_delta(1e-7)
    assert lo <= cost.epsilon <= lo * 1.01
    assert cost.candidates["rdp"] >= cost.epsilon


def test_exponential_mechanism_beats_pure_dp_pld() -> None:
    events = [ExponentialEvent(0.1, count=200)]
    cost = compose(events, delta=1e-6)
    assert cost.method == "rdp"
    assert cost.epsilon < cost.candidates["pld"]


@pytest.mark.parametrize("eps", [0.05, 0.5, 2.0])
def test_bounded_range_curve_is_a_valid_bound_on_real_exponential_mechanisms(eps: float) -> None:
    """Brute force: D_alpha between exponential mechanisms on random neighbouring score vectors."""
    rnd = random.Random(7)
    orders = np.array([1.5, 2.0, 4.0, 16.0, 64.0])
    curve = rdp.br_rdp(eps, orders)
    for _ in range(200):
        n = rnd.randint(2, 6)
        u = np.array([rnd.uniform(-3, 3) for _ in range(n)])
        shift = np.array([rnd.uniform(-1, 1) for _ in range(n)])  # |u - u'| <= 1 = sensitivity
        p = np.exp(eps * u / 2)
        q = np.exp(eps * (u + shift) / 2)
        p /= p.sum()
        q /= q.sum()
        for a, bound in zip(orders, curve, strict=True):
            d = math.log(float(np.sum(p**a * q ** (1 - a)))) / (a - 1)
            assert d <= bound + 1e-12


def test_bounded_range_curve_is_the_supremum_over_two_point_laws() -> None:
    """30-digit reference: the maximum over q of the two-point Rényi divergence (Cesar & Rogers)."""
    mpmath.mp.dps = 30
    for eps in (0.1, 1.0, 3.0):
        for a in (1.5, 3.0, 10.0):
            e, al = mpmath.mpf(eps), mpmath.mpf(a)

            def f(q: mpmath.mpf, e: mpmath.mpf = e, al: mpmath.mpf = al) -> mpmath.mpf:
                return (
                    mpmath.log(q * mpmath.e ** (al * e) + 1 - q) - al * mpmath.log(q * mpmath.e**e + 1 - q)
                ) / (al - 1)

            big_a, big_b = mpmath.e ** (al * e) - 1, mpmath.e**e - 1
            q_star = min(max((big_a - al * big_b) / (big_a * big_b * (al - 1)), 0), 1)
            best = f(q_star)
            grid_max = max(f(mpmath.mpf(i) / 200) for i in range(201))
            assert grid_max <= best  # q* really is the maximiser
            ours = rdp.br_rdp(eps, np.array([a]))[0]
            assert float(best) <= ours <= float(best) * (1 + 1e-9) + 1e-14


def test_laplace_rdp_curve_matches_numerical_renyi_divergence() -> None:
    mpmath.mp.dps = 30
    b = mpmath.mpf(2)

    def lap(x: mpmath.mpf, mu: float) -> mpmath.mpf:
        return mpmath.e ** (-abs(x - mu) / b) / (2 * b)

    for a in (1.5, 2.0, 7.0):
        val = mpmath.quad(
            lambda x, a=a: lap(x, 0) ** a * lap(x, 1) ** (1 - a), [-mpmath.inf, 0, 1, mpmath.inf]
        )
        exact = float(mpmath.log(val) / (a - 1))
        ours = rdp.laplace_rdp(2.0, 1.0, np.array([a]))[0]
        assert exact <= ours <= exact * (1 + 1e-9) + 1e-14


def test_pure_dp_curve_is_exact_for_discrete_laplace_sensitivity_one() -> None:
    eps = 0.7
    z = np.arange(-400, 401)
    log_p = -eps * np.abs(z)
    log_q = -eps * np.abs(z - 1)
    log_p -= np.logaddexp.reduce(log_p)
    log_q -= np.logaddexp.reduce(log_q)
    for a in (1.5, 3.0, 12.0):
        d = float(np.logaddexp.reduce(a * log_p + (1 - a) * log_q)) / (a - 1)
        ours = rdp.pure_dp_rdp(eps, np.array([a]))[0]
        assert d <= ours <= d * (1 + 1e-9) + 1e-14


def test_every_kind_composes_and_terms_are_reported() -> None:
    events: list[DpEvent] = [
        ComposedEvent((GaussianEvent(3.0), DiscreteGaussianEvent(3.0, 2))),
        DiscreteLaplaceEvent(5.0),
        ZCdpEvent(0.01),
        PureDpEvent(0.1),
        ApproxDpEvent(0.1, 1e-9),
        ExponentialEvent(0.1),
    ]
    cost = compose(events, delta=1e-6)
    assert cost.method == "rdp"  # zCDP and the multi-dimensional discrete Gaussian rule out PLD
    assert len(cost.terms) == 7
    assert all("rdp_at_order" in t for t in cost.terms)
    assert cost.to_json()["epsilon"] == repr(cost.epsilon)


def test_smallest_delta_inverts_compose() -> None:
    events: list[DpEvent] = [GaussianEvent(4.0, count=5), ExponentialEvent(0.2, count=3)]
    cost = compose(events, delta=1e-6)
    back = smallest_delta(events, epsilon=cost.epsilon)
    assert back.delta <= 1e-6 * (1 + 1e-6)
    assert smallest_delta([PureDpEvent(1.0)], epsilon=1.0).delta == 0.0


def test_bad_delta_and_methods() -> None:
    for bad in (0.0, 1.0, math.nan, -1e-6):
        with pytest.raises(InvalidParameter, match="delta"):
            compose([GaussianEvent(1.0)], delta=bad)
    with pytest.raises(InvalidParameter, match="methods"):
        compose([GaussianEvent(1.0)], delta=1e-6, methods=("magic",))
    with pytest.raises(InvalidParameter, match="delta"):
        compose([ApproxDpEvent(1.0, 1e-3)], delta=1e-6, methods=("rdp",))


event_st = st.one_of(
    st.builds(GaussianEvent, st.floats(0.3, 50.0), st.floats(0.1, 3.0), st.integers(1, 50)),
    st.builds(LaplaceEvent, st.floats(0.3, 50.0), st.floats(0.1, 3.0), st.integers(1, 50)),
    st.builds(ExponentialEvent, st.floats(0.01, 2.0), st.integers(1, 50)),
    st.builds(ZCdpEvent, st.floats(1e-4, 0.5), st.integers(1, 5)),
)


@settings(max_examples=60, deadline=None)
@given(base=st.lists(event_st, min_size=1, max_size=5), extra=event_st, log_delta=st.floats(-10, -4))
def test_composition_is_monotone(base: list[DpEvent], extra: DpEvent, log_delta: float) -> None:
    delta = 10.0**log_delta
    methods = ("gdp", "rdp")
    before = compose(base, delta=delta, methods=methods).epsilon
    after = compose([*base, extra], delta=delta, methods=methods).epsilon
    assert after >= before
