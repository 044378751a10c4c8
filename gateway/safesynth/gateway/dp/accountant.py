"""Composition of a fixed sequence of heterogeneous privacy events into (epsilon, delta).

:func:`compose` evaluates every method that is *valid* for the event mix and reports the smallest
epsilon, with the method's name (all values rounded up; never under-reported):

* ``gdp``: Gaussian events -> mu-GDP with mu^2 = sum count (D/sigma)^2, whose privacy profile is
  exact for Gaussian-only sequences (Dong, Roth & Su 2019, Cor. 3.3; = Balle & Wang 2018); pure
  epsilon-DP events may join through eps-DP => mu(eps)-GDP (valid, loose).
* ``rdp``: every kind; Rényi curves summed on the dense order grid :data:`rdp.ORDERS` (exact Laplace
  curve, bounded-range curve for the exponential mechanism, tight pure-DP curve, Gaussian), converted
  with the optimal conversion of Canonne-Kamath-Steinke 2020 / Asoodeh et al. 2021; approximate-DP
  events add their delta (approximate RDP).
* ``pld``: Google's dp-accounting privacy loss distributions (pessimistic discretisation) where
  every kind has one; exponential mechanism entered as generic epsilon-DP.
* ``pure``: all events pure DP -> sum of epsilons (delta = 0 spent).
* ``basic``: all events have a finite epsilon and some have delta -> (sum eps, sum delta).

The ``gdp`` and ``pld`` values are computed for the continuous Gaussian; the released Gaussian is an
exact lattice sample whose density is within a factor e^eta of a post-processing of it on its bulk,
eta = :data:`~safesynth.gateway.dp.mechanisms.LATTICE_LOG_RATIO_PER_CALL` = 2^-32 per call
(mechanisms module doc). With n Gaussian calls those two methods report
eps_cont(delta e^(-n eta)) + 2 n eta (P(S) <= e^eta P'(S) <= e^eta (e^eps Q'(S) + delta_cont) <=
e^(eps + 2 eta) Q(S) + e^eta delta_cont). ``rdp`` needs no such term (its curve is proven for the
lattice sampler itself).

These are guarantees for a *fixed* (non-adaptive) sequence. Adaptive admission is the job of
:mod:`safesynth.gateway.dp.filter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safesynth.gateway.dp import rdp as _rdp
from safesynth.gateway.dp._validate import check_delta, check_positive
from safesynth.gateway.dp.calibration import gdp_delta, gdp_epsilon, gdp_mu_of_pure
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.events import (
    DiscreteGaussianEvent,
    DpEvent,
    GaussianEvent,
    ZCdpEvent,
    flatten,
)
from safesynth.gateway.dp.mechanisms import LATTICE_LOG_RATIO_PER_CALL
from safesynth.gateway.dp.pld import PLD_DISCRETIZATION, pld_feasible, pld_for

__all__ = ["METHODS", "PrivacyCost", "compose", "lattice_delta", "smallest_delta", "with_lattice_slack"]

#: every method name :func:`compose` may report.
METHODS = ("gdp", "rdp", "pld", "pure", "basic")


@dataclass(frozen=True)
class PrivacyCost:
    """(epsilon, delta) of a composed fixed sequence, the method that gave it, per-event terms and the
    value of every method tried (``candidates``: method -> epsilon, or delta for smallest_delta)."""

    epsilon: float
    delta: float
    method: str
    terms: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    candidates: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form; privacy numbers as decimal strings."""
        return {
            "epsilon": repr(self.epsilon),
            "delta": repr(self.delta),
            "method": self.method,
            "candidates": {k: repr(v) for k, v in sorted(self.candidates.items())},
            "terms": list(self.terms),
        }


def _leaves(events: Sequence[DpEvent] | DpEvent) -> list[DpEvent]:
    if not isinstance(events, DpEvent | Sequence):
        raise InvalidParameter("events", "must be a sequence of DpEvent")
    return flatten(events)


def _rdp_total(leaves: Iterable[DpEvent]) -> tuple[np.ndarray[Any, np.dtype[np.float64]], float]:
    total = np.zeros_like(_rdp.ORDERS)
    approx = 0.0
    for e in leaves:
        curve, d = _rdp.event_rdp(e)
        total += curve
        approx += d
    return total, approx


def _gdp_mu(leaves: Sequence[DpEvent]) -> tuple[float, float] | None:
    """(mu, delta of approximate events) if every event is (delta-approximately) mu-GDP: Gaussians
    exactly (mu = D / sigma), epsilon-DP events through eps-DP => mu(eps)-GDP (Dong, Roth & Su 2019),
    (eps, delta) events as delta-failures of eps-DP ones; None otherwise."""
    if not leaves:
        return None
    terms = []
    approx = 0.0
    for e in leaves:
        if isinstance(e, GaussianEvent):
            terms.append(e.count * (e.sensitivity / e.sigma) ** 2)
        elif isinstance(e, ZCdpEvent | DiscreteGaussianEvent):
            return None
        else:
            eps = _rdp.pure_epsilon(e)
            if not math.isfinite(eps):
                return None
            count = getattr(e, "count", 1)
            terms.append(count * gdp_mu_of_pure(eps) ** 2)
            approx += count * float(getattr(e, "delta", 0.0))
    return math.nextafter(math.sqrt(math.fsum(terms)) * (1.0 + 1e-14), math.inf), approx


def _gaussian_only(leaves: Sequence[DpEvent]) -> bool:
    return all(isinstance(e, GaussianEvent) for e in leaves)


def _pure_and_delta(leaves: Sequence[DpEvent]) -> tuple[float, float]:
    eps = 0.0
    dl = 0.0
    for e in leaves:
        pe = _rdp.pure_epsilon(e)
        c = getattr(e, "count", 1)
        eps += c * pe
        dl += c * float(getattr(e, "delta", 0.0))
    return eps * (1.0 + 1e-12), dl


def _terms(leaves: Sequence[DpEvent], order: float | None) -> tuple[dict[str, Any], ...]:
    out = []
    idx = int(np.argmin(np.abs(_rdp.ORDERS - order))) if order is not None else None
    for e in leaves:
        term: dict[str, Any] = {"event": e.to_json()}
        pe = _rdp.pure_epsilon(e)
        if math.isfinite(pe):
            term["pure_epsilon"] = repr(pe * getattr(e, "count", 1))
        if isinstance(e, GaussianEvent):
            term["gdp_mu_squared"] = repr(e.count * (e.sensitivity / e.sigma) ** 2)
        if idx is not None:
            curve, d = _rdp.event_rdp(e)
            term["rdp_at_order"] = repr(float(curve[idx]))
            if d:
                term["delta"] = repr(d)
        out.append(term)
    return tuple(out)


def _lattice_eta(leaves: Sequence[DpEvent]) -> float:
    """Summed bulk log-ratio of the Gaussian calls in ``leaves`` (one call per unit of count)."""
    n = sum(e.count for e in leaves if isinstance(e, GaussianEvent))
    return n * LATTICE_LOG_RATIO_PER_CALL


def with_lattice_slack(eps_at: Callable[[float], float], delta: float, eta: float) -> float:
    """eps_at(delta e^-eta) + 2 eta, rounded up: a valid epsilon for lattice Gaussians whose summed
    bulk log-ratio is ``eta``, given ``eps_at(d)``, a valid epsilon at delta d for the continuous ones.
    (The additive e^-1900 of the bulk complement is absorbed by the 1e-12 relative cut of delta.)"""
    if eta <= 0.0:
        return eps_at(delta)
    eps = eps_at(delta * math.exp(-eta) * (1.0 - 1e-12))
    return math.nextafter(eps + 2.0 * eta * (1.0 + 1e-12), math.inf)


def lattice_delta(delta_at: Callable[[float], float], epsilon: float, eta: float) -> float:
    """e^eta delta_at(epsilon - 2 eta), rounded up (the delta counterpart of :func:`with_lattice_slack`)."""
    if eta <= 0.0:
        return delta_at(epsilon)
    if epsilon <= 2.0 * eta:
        return 1.0
    return min(1.0, delta_at(epsilon - 2.0 * eta * (1.0 + 1e-12)) * math.exp(eta) * (1.0 + 1e-12) + 1e-300)


def _vdi(epsilon_hint: float) -> float:
    """PLD discretisation: 1e-4 up to epsilon ~10, then relative 1e-5 (keeps PLD fast for large eps)."""
    return max(PLD_DISCRETIZATION, 1e-5 * epsilon_hint)


def compose(
    events: Sequence[DpEvent] | DpEvent,
    *,
    delta: float,
    methods: Sequence[str] | None = None,
) -> PrivacyCost:
    """Smallest valid epsilon at ``delta`` for the fixed sequence ``events`` (min over methods).

    ``methods`` restricts the methods tried (e.g. ``("gdp", "rdp")`` to skip the slower PLD when
    calibrating in a loop). Raises :class:`InvalidParameter` for bad inputs or an empty result.
    """
    d = check_delta("delta", delta)
    leaves = _leaves(events)
    use = set(METHODS if methods is None else methods)
    if unknown := use - set(METHODS):
        raise InvalidParameter("methods", f"unknown {sorted(unknown)}; known {list(METHODS)}")
    if not leaves:
        return PrivacyCost(0.0, 0.0, "empty", (), {})
    cand: dict[str, float] = {}
    best_order: float | None = None
    eta = _lattice_eta(leaves)
    if "gdp" in use and (g := _gdp_mu(leaves)) is not None and g[1] < d:
        mu, approx_gdp = g
        eps_gdp = with_lattice_slack(
            lambda dd: gdp_epsilon(mu, dd - approx_gdp) if dd > approx_gdp else math.inf, d, eta
        )
        if math.isfinite(eps_gdp):
            cand["gdp"] = eps_gdp
    if "rdp" in use:
        total, approx = _rdp_total(leaves)
        if approx < d:
            eps, best_order = _rdp.epsilon_from_rdp(total, d - approx)
            cand["rdp"] = eps
    pure, dsum = _pure_and_delta(leaves)
    if math.isfinite(pure):
        if dsum == 0.0 and "pure" in use:
            cand["pure"] = pure
        elif dsum > 0.0 and dsum <= d and "basic" in use:
            cand["basic"] = pure
    # PLD cannot beat the exact GDP value for Gaussian-only sequences: skip it there.
    if "pld" in use and not _gaussian_only(leaves) and pld_feasible(leaves):
        scale_hint = cand.get("rdp", 1.0)
        pld = pld_for(leaves, value_discretization_interval=_vdi(scale_hint))
        eps_pld = with_lattice_slack(
            lambda dd: math.nextafter(max(float(pld.get_epsilon_for_delta(dd)), 0.0), math.inf), d, eta
        )
        if math.isfinite(eps_pld):
            cand["pld"] = eps_pld
    if not cand:
        raise InvalidParameter("delta", "too small for the approximate-DP events in this sequence")
    method = min(cand, key=lambda k: cand[k])
    return PrivacyCost(cand[method], d, method, _terms(leaves, best_order), cand)


def smallest_delta(
    events: Sequence[DpEvent] | DpEvent,
    *,
    epsilon: float,
    methods: Sequence[str] | None = None,
) -> PrivacyCost:
    """Smallest valid delta at ``epsilon`` for the fixed sequence ``events`` (min over methods)."""
    eps = check_positive("epsilon", epsilon)
    leaves = _leaves(events)
    use = set(METHODS if methods is None else methods)
    if not leaves:
        return PrivacyCost(eps, 0.0, "empty", (), {})
    cand: dict[str, float] = {}
    best_order: float | None = None
    eta = _lattice_eta(leaves)
    if "gdp" in use and (g := _gdp_mu(leaves)) is not None:
        mu, approx_gdp = g
        cand["gdp"] = min(
            1.0, lattice_delta(lambda e: gdp_delta(mu, e) * (1.0 + 1e-9), eps, eta) + approx_gdp
        )
    if "rdp" in use:
        total, approx = _rdp_total(leaves)
        dd, best_order = _rdp.delta_from_rdp(total, eps)
        cand["rdp"] = min(1.0, dd + approx)
    pure, dsum = _pure_and_delta(leaves)
    if math.isfinite(pure) and pure <= eps and ("pure" in use or "basic" in use):
        cand["pure" if dsum == 0.0 else "basic"] = dsum
    if "pld" in use and not _gaussian_only(leaves) and pld_feasible(leaves):
        pld = pld_for(leaves, value_discretization_interval=_vdi(eps))
        cand["pld"] = lattice_delta(
            lambda e: min(1.0, float(pld.get_delta_for_epsilon(e)) * (1.0 + 1e-9)), eps, eta
        )
    method = min(cand, key=lambda k: cand[k])
    return PrivacyCost(eps, cand[method], method, _terms(leaves, best_order), cand)
