"""Privacy filter: the admission rule for adaptively chosen requests (``rdp-filter/v2``).

The budget (epsilon_B, delta_B) is fixed when the dataset is registered. ``delta_approx = s delta_B``
(s = ``approx_delta_share``, default 0.25) is reserved for approximate-DP events (partition
selection, generic (eps, delta) events); of the rest, ``delta_gdp`` (half) goes to a Gaussian-DP
test and ``delta_o`` = the other half / |Lambda| to each order of the fixed grid
:data:`FILTER_ORDERS` (|Lambda| = 40). The running state holds the sums over admitted events of
their RDP curves on Lambda, their deltas, their pure epsilons (exact rationals; undefined once a
Gaussian-type event is admitted) and their GDP mu^2 (undefined once a zCDP or discrete-Gaussian
event is admitted). A request is admitted iff, with its events added,

1. ``sum delta_i <= delta_approx``, and
2. one of the tests holds (the decision records which):
   ``basic``: sum eps_i <= epsilon_B;
   ``gdp``: sum mu_i^2 <= mu_B^2 and at most :data:`GDP_MAX_GAUSSIAN_CALLS` Gaussian calls, mu_B the
   largest mu with mu-GDP => (epsilon_B - 2 eta_max, delta_gdp e^-eta_max)-DP, eta_max = 2^16 x 2^-32
   the lattice sampler's bulk log-ratio for that many calls (mechanisms module doc), so that the
   lattice interaction is (epsilon_B, delta_gdp)-DP (Gaussians mu = D/sigma; eps-DP events
   mu(eps) = 2 Phi^-1(e^eps / (1 + e^eps)));
   ``rdp``: some alpha in Lambda has sum rdp_i(alpha) <= B(alpha) =
   epsilon_B - log((alpha-1)/alpha) + (log(delta_o) + log alpha)/(alpha-1).

Theorem (proof in docs/privacy-accounting.md): if every admitted mechanism satisfies its curves
conditionally on all earlier outputs (parameters chosen adaptively), the interaction is
(epsilon_B, delta_B)-DP. Ingredients: the Rényi filter for a fixed order (Feldman & Zrnic 2021;
Lecuyer 2021) through the stopped Rényi supermartingale and the optimal conversion inequality of
Canonne, Kamath & Steinke 2020 (Prop. 12); the fully adaptive GDP filter (Smith & Thakurta 2022;
Koskela et al. 2022); the basic filter (Rogers, Roth, Ullman & Vadhan 2016); approximate events as
delta-failures (Whitehouse et al. 2023); and a union bound over the |Lambda| + 2 tests, each
charged its own share of delta. It never uses PLD composition (not a valid filter, Regehr et al.
2026).

Checking one request is O(|Lambda| x #events of the request): the history is never recomposed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp import rdp as _rdp
from safesynth.gateway.dp._validate import check_delta, check_positive
from safesynth.gateway.dp.calibration import gdp_epsilon, gdp_mu_for, gdp_mu_of_pure
from safesynth.gateway.dp.errors import BudgetExceeded, InvalidParameter
from safesynth.gateway.dp.events import DiscreteGaussianEvent, DpEvent, GaussianEvent, ZCdpEvent, flatten
from safesynth.gateway.dp.mechanisms import LATTICE_LOG_RATIO_PER_CALL

__all__ = [
    "FILTER_ORDERS",
    "GDP_MAX_GAUSSIAN_CALLS",
    "RULE",
    "AdmissionDecision",
    "FilterState",
    "PrivacyFilter",
]

#: name of the admission rule; a changed rule gets a new name. (v1 had no lattice term in its GDP test.)
RULE = "rdp-filter/v2"

#: the GDP test admits at most this many Gaussian calls (units of GaussianEvent.count); beyond, only
#: the Rényi tests can admit (their curves hold for the lattice sampler without any extra term).
GDP_MAX_GAUSSIAN_CALLS = 1 << 16
_ETA_MAX = GDP_MAX_GAUSSIAN_CALLS * LATTICE_LOG_RATIO_PER_CALL  # 2^-16

#: the fixed order grid of the filter (part of the rule: changing it is a new rule name).
FILTER_ORDERS: npt.NDArray[np.float64] = np.round(np.geomspace(1.25, 4096.0, 40), 6)
FILTER_ORDERS.setflags(write=False)

FloatArray = npt.NDArray[np.float64]


def _up(x: Fraction) -> float:
    """A float >= the exact rational x (inf stays inf)."""
    f = float(x)
    return f if Fraction(f) >= x else math.nextafter(f, math.inf)


def _gdp_of(event: DpEvent) -> float | None:
    """Summed mu^2 of a leaf event (count included) for the GDP test; None if not GDP-accountable."""
    if isinstance(event, GaussianEvent):
        return event.count * (event.sensitivity / event.sigma) ** 2 * (1.0 + 1e-12)
    if isinstance(event, ZCdpEvent | DiscreteGaussianEvent):
        return None
    eps = _rdp.pure_epsilon(event)
    if not math.isfinite(eps):
        return None
    mu = gdp_mu_of_pure(eps)
    if not math.isfinite(mu):
        return None
    return int(getattr(event, "count", 1)) * mu**2 * (1.0 + 1e-12)


def _pure_of(event: DpEvent) -> Fraction | None:
    """Exact pure-DP epsilon of a leaf event (count included), None if it has none."""
    eps = _rdp.pure_epsilon(event)
    if not math.isfinite(eps):
        return None
    sens = getattr(event, "sensitivity", None)
    scale = getattr(event, "scale", None)
    count = int(getattr(event, "count", 1))
    if sens is not None and scale is not None:
        return count * Fraction(float(sens)) / Fraction(float(scale))
    return count * Fraction(float(getattr(event, "epsilon")))  # noqa: B009


@dataclass(frozen=True)
class FilterState:
    """Immutable running state: summed RDP on :data:`FILTER_ORDERS`, summed delta, summed pure eps."""

    rdp: tuple[float, ...]
    delta_spent: float
    pure_epsilon: Fraction | None  # None once a non-pure (Gaussian-type) event was admitted
    n_admitted: int
    gdp_mu2: float | None = None  # summed mu^2 of GDP-able events; None once another kind was admitted
    gaussian_calls: int = 0  # summed count of admitted GaussianEvents (lattice calls)

    def to_json(self) -> dict[str, object]:
        """JSON form (decimal strings)."""
        return {
            "rule": RULE,
            "rdp": [repr(x) for x in self.rdp],
            "delta_spent": repr(self.delta_spent),
            "pure_epsilon": None if self.pure_epsilon is None else repr(_up(self.pure_epsilon)),
            "n_admitted": self.n_admitted,
            "gdp_mu2": None if self.gdp_mu2 is None else repr(self.gdp_mu2),
            "gaussian_calls": self.gaussian_calls,
        }


@dataclass(frozen=True)
class AdmissionDecision:
    """Outcome of :meth:`PrivacyFilter.decide`.

    ``rule`` is the filter rule (``rdp-filter/v2``), ``test`` which of its tests admitted the request
    (``rdp`` with ``order``, or ``basic``), or why it was refused. ``epsilon_spent`` is the smallest
    epsilon_B this filter would need to have admitted everything up to and including this request
    (after admission; for a refusal, the value before it), ``epsilon_remaining`` the budget minus it.
    """

    admitted: bool
    rule: str
    test: str
    order: float | None
    epsilon_spent: float
    epsilon_remaining: float
    delta_spent: float
    new_state: FilterState
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form for the ledger (decimal strings)."""
        return {
            "admitted": self.admitted,
            "rule": self.rule,
            "test": self.test,
            "order": None if self.order is None else repr(self.order),
            "epsilon_spent": repr(self.epsilon_spent),
            "epsilon_remaining": repr(self.epsilon_remaining),
            "delta_spent": repr(self.delta_spent),
            "reason": self.reason,
        }


class PrivacyFilter:
    """The admission rule ``rdp-filter/v2`` for a budget (epsilon_budget, delta_budget)."""

    rule = RULE

    def __init__(
        self, epsilon_budget: float, delta_budget: float, *, approx_delta_share: float = 0.25
    ) -> None:
        self.epsilon_budget = check_positive("epsilon_budget", epsilon_budget)
        self.delta_budget = check_delta("delta_budget", delta_budget)
        share = float(approx_delta_share)
        if not (math.isfinite(share) and 0.0 <= share < 1.0):
            raise InvalidParameter("approx_delta_share", "must be in [0, 1)")
        self.approx_delta_share = share
        self.delta_approx = self.delta_budget * share
        delta_tests = self.delta_budget - self.delta_approx
        # the GDP test gets half of the non-approximate delta, the |Lambda| Rényi tests share the rest
        self.delta_gdp = delta_tests / 2.0
        a = FILTER_ORDERS
        self._orders = a
        per_order = (delta_tests - self.delta_gdp) / float(a.shape[0])
        # B(alpha): the budget curve; rounded down a hair so float error never admits too much.
        # conv(alpha): epsilon = rdp(alpha) + conv(alpha) at delta_o (CKS20 Prop. 12); B = eps_B - conv
        self._conv: FloatArray = np.log1p(-1.0 / a) - (math.log(per_order) + np.log(a)) / (a - 1.0)
        bound = self.epsilon_budget - self._conv
        self._bound: FloatArray = bound - 1e-12 * np.abs(bound) - 1e-15
        try:
            eps_g = self.epsilon_budget - 2.0 * _ETA_MAX * (1.0 + 1e-12)
            mu_b = (
                gdp_mu_for(eps_g, self.delta_gdp * math.exp(-_ETA_MAX) * (1.0 - 1e-12)) if eps_g > 0 else 0.0
            )
        except InvalidParameter:
            mu_b = 0.0
        self._mu2_budget = mu_b * mu_b * (1.0 - 1e-12)
        self._cache: dict[DpEvent, tuple[FloatArray, float, Fraction | None, float | None]] = {}
        # (summed mu^2, Gaussian calls) -> the GDP test's epsilon: a state's spend is reported when it
        # is admitted and again by every status query of that state (same floats: same answer).
        self._gdp_eps: dict[tuple[float, int], float] = {}

    def __repr__(self) -> str:
        return f"PrivacyFilter({self.epsilon_budget!r}, {self.delta_budget!r})"

    def empty_state(self) -> FilterState:
        """The state of a dataset with no spend."""
        return FilterState(tuple(0.0 for _ in range(self._orders.shape[0])), 0.0, Fraction(0), 0, 0.0, 0)

    def _leaf_cost(self, e: DpEvent) -> tuple[FloatArray, float, Fraction | None, float | None]:
        hit = self._cache.get(e)
        if hit is None:
            curve, d = _rdp.event_rdp(e, self._orders)
            curve.setflags(write=False)
            hit = (curve, d, _pure_of(e), _gdp_of(e))
            if len(self._cache) < 4096:
                self._cache[e] = hit
        return hit

    def cost_of(
        self, events: Sequence[DpEvent] | DpEvent
    ) -> tuple[FloatArray, float, Fraction | None, float | None]:
        """(RDP vector on the filter grid, delta, exact pure epsilon or None, GDP mu^2 or None) of a
        request's events."""
        leaves = flatten(events)
        if len(leaves) == 1:  # most requests: the leaf's cached cost itself (its curve is read-only)
            return self._leaf_cost(leaves[0])
        total = np.zeros_like(self._orders)
        dl = 0.0
        pure: Fraction | None = Fraction(0)
        mu2: float | None = 0.0
        for e in leaves:
            curve, d, p, m = self._leaf_cost(e)
            total += curve
            dl += d
            pure = None if (pure is None or p is None) else pure + p
            mu2 = None if (mu2 is None or m is None) else mu2 + m
        return total, dl, pure, mu2

    @staticmethod
    def gaussian_calls_of(events: Sequence[DpEvent] | DpEvent) -> int:
        """Number of lattice Gaussian calls in a request (summed count of its GaussianEvents)."""
        return sum(e.count for e in flatten(events) if isinstance(e, GaussianEvent))

    def _spent(self, rdp_vec: FloatArray, pure: Fraction | None, mu2: float | None, calls: int) -> float:
        eps = math.nextafter(max(float(np.min(rdp_vec + self._conv)), 0.0) * (1.0 + 1e-12), math.inf)
        if pure is not None:
            eps = min(eps, _up(pure))
        if mu2 is not None and mu2 > 0.0 and calls <= GDP_MAX_GAUSSIAN_CALLS:
            eps = min(eps, self._gdp_epsilon(mu2, calls))
        return eps

    def _gdp_epsilon(self, mu2: float, calls: int) -> float:
        """The epsilon the GDP test certifies for summed mu^2 and ``calls`` lattice calls (memoized)."""
        key = (mu2, calls)
        hit = self._gdp_eps.get(key)
        if hit is None:
            mu = math.nextafter(math.sqrt(mu2), math.inf)
            eta = calls * LATTICE_LOG_RATIO_PER_CALL
            eps_g = gdp_epsilon(mu, self.delta_gdp * math.exp(-eta) * (1.0 - 1e-12))
            hit = math.nextafter(eps_g + 2.0 * eta * (1.0 + 1e-12), math.inf)
            if len(self._gdp_eps) >= 4096:
                self._gdp_eps.clear()
            self._gdp_eps[key] = hit
        return hit

    def _check(self, state: FilterState) -> None:
        if len(state.rdp) != self._orders.shape[0]:
            raise InvalidParameter("state", "state was built for a different order grid")

    def decide(self, state: FilterState, events: Sequence[DpEvent] | DpEvent) -> AdmissionDecision:
        """Admit or refuse a request given the running state (does not mutate anything)."""
        self._check(state)
        add_rdp, add_delta, add_pure, add_mu2 = self.cost_of(events)
        old = np.asarray(state.rdp, dtype=np.float64)
        new = old + add_rdp
        new_delta = state.delta_spent + add_delta
        new_pure = None if (state.pure_epsilon is None or add_pure is None) else state.pure_epsilon + add_pure
        new_mu2 = None if (state.gdp_mu2 is None or add_mu2 is None) else state.gdp_mu2 + add_mu2
        new_calls = state.gaussian_calls + self.gaussian_calls_of(events)
        ok_rdp = new <= self._bound
        basic_ok = new_pure is not None and new_pure <= Fraction(self.epsilon_budget)
        gdp_ok = new_mu2 is not None and new_mu2 <= self._mu2_budget and new_calls <= GDP_MAX_GAUSSIAN_CALLS
        delta_ok = new_delta <= self.delta_approx * (1.0 + 1e-12)
        admitted = delta_ok and (basic_ok or gdp_ok or bool(ok_rdp.any()))
        if admitted:
            new_state = FilterState(
                tuple(new.tolist()), new_delta, new_pure, state.n_admitted + 1, new_mu2, new_calls
            )
            spent = self._spent(new, new_pure, new_mu2, new_calls)
            order: float | None = None
            if basic_ok:
                test = "basic"
            elif gdp_ok:
                test = "gdp"
            else:
                margin = self._bound - new
                i = int(np.argmax(np.where(ok_rdp, margin, -np.inf)))
                test, order = "rdp", float(self._orders[i])
            return AdmissionDecision(
                True,
                RULE,
                test,
                order,
                spent,
                max(0.0, self.epsilon_budget - spent),
                new_delta,
                new_state,
            )
        spent = (
            self._spent(old, state.pure_epsilon, state.gdp_mu2, state.gaussian_calls)
            if state.n_admitted
            else 0.0
        )
        if not delta_ok:
            reason = (
                f"approximate-DP delta {new_delta!r} would exceed its share {self.delta_approx!r} of delta"
            )
        else:
            need = self._spent(new, new_pure, new_mu2, new_calls)
            reason = (
                f"would need epsilon {need:.6g} > budget {self.epsilon_budget!r} "
                f"at delta {self.delta_budget!r}"
            )
        return AdmissionDecision(
            False,
            RULE,
            "refused",
            None,
            spent,
            max(0.0, self.epsilon_budget - spent),
            state.delta_spent,
            state,
            reason,
        )

    def check(self, state: FilterState, events: Sequence[DpEvent] | DpEvent) -> AdmissionDecision:
        """Like :meth:`decide` but raise :class:`BudgetExceeded` on refusal."""
        dec = self.decide(state, events)
        if not dec.admitted:
            raise BudgetExceeded(dec.reason, rule=RULE, epsilon_requested=None)
        return dec

    def replay(
        self, events_history: Iterable[Sequence[DpEvent] | DpEvent], *, strict: bool = False
    ) -> FilterState:
        """The state after the admitted requests in ``events_history`` (one item per request).

        With ``strict=True`` each request is re-decided and :class:`BudgetExceeded` is raised if one
        would not have been admitted (e.g. the history was written under another budget).
        """
        state = self.empty_state()
        if strict:
            for req in events_history:
                state = self.check(state, req).new_state
            return state
        rdp_sum = np.zeros_like(self._orders)
        dl = 0.0
        pure: Fraction | None = Fraction(0)
        mu2: float | None = 0.0
        n = 0
        calls = 0
        for req in events_history:
            r, d, p, m = self.cost_of(req)
            calls += self.gaussian_calls_of(req)
            rdp_sum += r
            dl += d
            pure = None if (pure is None or p is None) else pure + p
            mu2 = None if (mu2 is None or m is None) else mu2 + m
            n += 1
        return FilterState(tuple(rdp_sum.tolist()), dl, pure, n, mu2, calls)
