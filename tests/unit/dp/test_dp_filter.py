"""The privacy filter: valid rule, recorded decisions, running state, replay."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.dp import rdp
from safesynth.gateway.dp.accountant import compose
from safesynth.gateway.dp.errors import BudgetExceeded, InvalidParameter
from safesynth.gateway.dp.events import (
    DiscreteGaussianEvent,
    DpEvent,
    ExponentialEvent,
    GaussianEvent,
    LaplaceEvent,
    PartitionSelectionEvent,
)
from safesynth.gateway.dp.filter import FILTER_ORDERS, RULE, PrivacyFilter


def test_basic_test_admits_pure_requests_up_to_the_budget_exactly() -> None:
    f = PrivacyFilter(1.0, 1e-6)
    s = f.empty_state()
    d1 = f.decide(s, [ExponentialEvent(0.5)])
    assert d1.admitted and d1.rule == RULE and d1.test == "basic"
    d2 = f.decide(d1.new_state, [LaplaceEvent(2.0)])  # eps 0.5: total exactly 1
    assert d2.admitted and d2.epsilon_remaining == 0.0
    d3 = f.decide(d2.new_state, [ExponentialEvent(1e-9)])
    assert not d3.admitted and d3.new_state == d2.new_state
    assert "budget" in d3.reason


def test_gdp_test_admits_gaussians_close_to_the_exact_value() -> None:
    f = PrivacyFilter(1.0, 1e-6)
    d = f.decide(f.empty_state(), [GaussianEvent(10.0, count=2)])
    assert d.admitted and d.test == "gdp" and d.order is None
    exact = compose([GaussianEvent(10.0, count=2)], delta=1e-6).epsilon
    assert exact <= d.epsilon_spent <= exact * 1.1  # the GDP test pays only delta/2 for adaptivity


def test_rdp_test_admits_non_gdp_events_and_records_the_order() -> None:
    f = PrivacyFilter(1.0, 1e-6)
    d = f.decide(f.empty_state(), [DiscreteGaussianEvent(10.0, count=2)])
    assert d.admitted and d.test == "rdp" and d.order in set(FILTER_ORDERS.tolist())
    assert 0 < d.epsilon_spent <= 1.0
    assert math.isclose(d.epsilon_remaining, 1.0 - d.epsilon_spent)
    assert d.to_json()["rule"] == RULE


def test_refusal_and_check() -> None:
    f = PrivacyFilter(0.5, 1e-6)
    s = f.empty_state()
    with pytest.raises(BudgetExceeded) as info:
        f.check(s, [GaussianEvent(0.5)])
    assert info.value.code == "budget_exhausted"
    assert not f.decide(s, [GaussianEvent(0.5)]).admitted


def test_approximate_delta_share() -> None:
    f = PrivacyFilter(5.0, 1e-6, approx_delta_share=0.5)
    ok = f.decide(f.empty_state(), [PartitionSelectionEvent(0.5, 4e-7)])
    assert ok.admitted
    no = f.decide(ok.new_state, [PartitionSelectionEvent(0.5, 2e-7)])
    assert not no.admitted and "delta" in no.reason


def test_replay_equals_sequential_admission() -> None:
    f = PrivacyFilter(50.0, 1e-6)
    history: list[list[DpEvent]] = [[GaussianEvent(30.0), ExponentialEvent(0.01)] for _ in range(200)]
    s = f.empty_state()
    for req in history:
        s = f.check(s, req).new_state
    replayed = f.replay(history)
    assert replayed.n_admitted == s.n_admitted == 200
    assert np.allclose(replayed.rdp, s.rdp, rtol=1e-12)
    assert f.replay(history, strict=True).n_admitted == 200
    with pytest.raises(BudgetExceeded):
        PrivacyFilter(0.1, 1e-6).replay(history, strict=True)


def test_ten_thousand_earlier_spends_are_one_vector() -> None:
    f = PrivacyFilter(10.0, 1e-6)
    state = f.replay([[GaussianEvent(400.0)]] * 10_000)
    assert len(state.rdp) == FILTER_ORDERS.size
    assert f.decide(state, [GaussianEvent(50.0)]).admitted


def test_bad_budgets() -> None:
    with pytest.raises(InvalidParameter, match="epsilon_budget"):
        PrivacyFilter(math.nan, 1e-6)
    with pytest.raises(InvalidParameter, match="delta_budget"):
        PrivacyFilter(1.0, 0.0)
    with pytest.raises(InvalidParameter, match="approx_delta_share"):
        PrivacyFilter(1.0, 1e-6, approx_delta_share=1.0)


request_st = st.lists(
    st.one_of(
        st.builds(GaussianEvent, st.floats(0.5, 40.0), st.just(1.0), st.integers(1, 20)),
        st.builds(LaplaceEvent, st.floats(0.5, 40.0), st.just(1.0), st.integers(1, 5)),
        st.builds(ExponentialEvent, st.floats(0.01, 1.5), st.integers(1, 5)),
        st.builds(PartitionSelectionEvent, st.floats(0.05, 1.0), st.floats(1e-9, 1e-7), st.just(1)),
        st.builds(DiscreteGaussianEvent, st.floats(0.5, 40.0), st.just(1), st.integers(1, 5)),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    eps_budget=st.floats(0.2, 8.0),
    log_delta=st.floats(-9.0, -5.0),
    requests=st.lists(request_st, min_size=1, max_size=12),
)
def test_filter_never_admits_a_sequence_beyond_its_budget(
    eps_budget: float, log_delta: float, requests: list[list[DpEvent]]
) -> None:
    delta = 10.0**log_delta
    f = PrivacyFilter(eps_budget, delta)
    s = f.empty_state()
    admitted: list[DpEvent] = []
    for req in requests:
        d = f.decide(s, req)
        if d.admitted:
            assert d.epsilon_spent <= eps_budget
            admitted.extend(req)
            s = d.new_state
    if not admitted:
        return
    # independent re-derivation: the admitted sequence's guarantee at the budget's delta
    cost = compose(admitted, delta=delta, methods=("gdp", "rdp", "pure", "basic"))
    assert cost.epsilon <= eps_budget * (1 + 1e-9)
    # and the rule itself holds on a from-scratch sum
    total = sum((rdp.event_rdp(e, FILTER_ORDERS)[0] for e in admitted), np.zeros_like(FILTER_ORDERS))
    assert s.rdp == pytest.approx(tuple(total), rel=1e-9)


def test_reported_spend_is_the_same_from_a_warm_and_a_fresh_filter() -> None:
    """The GDP epsilon is memoized per (mu^2, calls): a state's spend reported at admission, by a
    status query (empty request) and by a fresh filter (cold memo) are the same float."""
    warm = PrivacyFilter(3.0, 1e-6)
    state = warm.empty_state()
    for sigma in (8.0, 5.0, 12.0):
        decision = warm.decide(state, [GaussianEvent(sigma, count=3)])
        assert decision.admitted and decision.test == "gdp"
        state = decision.new_state
        status = warm.decide(state, ())
        fresh = PrivacyFilter(3.0, 1e-6).decide(state, ())
        assert decision.epsilon_spent == status.epsilon_spent == fresh.epsilon_spent
        assert 0.0 < decision.epsilon_spent < 3.0
    refused = warm.decide(state, [GaussianEvent(0.5, count=50)])
    assert not refused.admitted and refused.epsilon_spent == warm.decide(state, ()).epsilon_spent
