"""Privacy-loss-distribution accounting of a *fixed* sequence through Google's dp-accounting.

Valid for non-adaptive composition only (the filter never uses it: composing PLDs and checking
epsilon <= budget is not a valid filter, Regehr et al. 2026). ``pessimistic_estimate=True``
discretisation gives upper bounds. Kinds without a PLD here (zCDP, multi-dimensional discrete
Gaussian with sensitivity > 1) make the method unavailable (``None``). The exponential mechanism
can only be entered as a generic epsilon-DP mechanism, which is why the RDP bounded-range curve
beats PLD on workloads with many selections.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from safesynth.gateway.dp.events import (
    ApproxDpEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    DpEvent,
    ExponentialEvent,
    GaussianEvent,
    LaplaceEvent,
    PartitionSelectionEvent,
    PureDpEvent,
)

__all__ = ["MAX_PLD_GROUPS", "PLD_DISCRETIZATION", "pld_feasible", "pld_for", "pld_supported"]

#: value discretisation interval of the PLDs (smaller is tighter and slower).
PLD_DISCRETIZATION = 1e-4


def pld_supported(events: Sequence[DpEvent]) -> bool:
    """Whether every leaf event has a valid PLD here."""
    for e in events:
        if isinstance(e, DiscreteGaussianEvent):
            if e.sensitivity != 1:
                return False
        elif not isinstance(
            e,
            GaussianEvent
            | LaplaceEvent
            | DiscreteLaplaceEvent
            | ExponentialEvent
            | PureDpEvent
            | ApproxDpEvent
            | PartitionSelectionEvent,
        ):
            return False
    return True


def _one(e: DpEvent, vdi: float) -> tuple[Any, int]:
    from dp_accounting.pld import common
    from dp_accounting.pld import privacy_loss_distribution as pl

    if isinstance(e, GaussianEvent):
        return (
            pl.from_gaussian_mechanism(e.sigma, sensitivity=e.sensitivity, value_discretization_interval=vdi),
            e.count,
        )
    if isinstance(e, LaplaceEvent):
        return pl.from_laplace_mechanism(
            e.scale, sensitivity=e.sensitivity, value_discretization_interval=vdi
        ), (e.count)
    if isinstance(e, DiscreteLaplaceEvent):
        return (
            pl.from_discrete_laplace_mechanism(
                1.0 / e.scale, sensitivity=e.sensitivity, value_discretization_interval=vdi
            ),
            e.count,
        )
    if isinstance(e, DiscreteGaussianEvent):
        return (
            pl.from_discrete_gaussian_mechanism(e.sigma, sensitivity=1, value_discretization_interval=vdi),
            e.count,
        )
    if isinstance(e, ExponentialEvent | PureDpEvent):
        params = common.DifferentialPrivacyParameters(e.epsilon, 0.0)
        return pl.from_privacy_parameters(params, value_discretization_interval=vdi), e.count
    if isinstance(e, ApproxDpEvent):
        params = common.DifferentialPrivacyParameters(e.epsilon, e.delta)
        return pl.from_privacy_parameters(params, value_discretization_interval=vdi), e.count
    if isinstance(e, PartitionSelectionEvent):
        params = common.DifferentialPrivacyParameters(e.epsilon, e.delta)
        return pl.from_privacy_parameters(params, value_discretization_interval=vdi), 1
    raise TypeError(type(e).__name__)


#: above this many distinct non-Gaussian events the PLD method is skipped (too slow to be useful).
MAX_PLD_GROUPS = 24


def _groups(events: Sequence[DpEvent]) -> tuple[float, dict[DpEvent, int]]:
    """(sum of (D/sigma)^2 over Gaussian events, distinct other events -> total count)."""
    mu2 = 0.0
    groups: dict[DpEvent, int] = {}
    for e in events:
        if isinstance(e, GaussianEvent):
            mu2 += e.count * (e.sensitivity / e.sigma) ** 2
            continue
        count = getattr(e, "count", 1)
        key = dataclasses.replace(e, count=1) if hasattr(e, "count") else e  # type: ignore[call-arg]
        groups[key] = groups.get(key, 0) + count
    return mu2, groups


def pld_feasible(events: Sequence[DpEvent]) -> bool:
    """Supported kinds and few enough distinct non-Gaussian events."""
    return pld_supported(events) and len(_groups(events)[1]) <= MAX_PLD_GROUPS


def pld_for(events: Sequence[DpEvent], *, value_discretization_interval: float = PLD_DISCRETIZATION) -> Any:
    """The composed PLD of leaf ``events``: all Gaussian events merged into one Gaussian of
    mu = sqrt(sum (D/sigma)^2) (their composition is exactly that Gaussian), identical other events
    grouped and self-composed."""
    from dp_accounting.pld import privacy_loss_distribution as pl

    mu2, groups = _groups(events)
    total: Any = None
    if mu2 > 0.0:
        mu = math.nextafter(math.sqrt(mu2) * (1.0 + 1e-14), math.inf)
        total = pl.from_gaussian_mechanism(
            1.0 / mu, value_discretization_interval=value_discretization_interval
        )
    for e, times in groups.items():
        pld, count = _one(e, value_discretization_interval)
        n = count * times
        if n > 1:
            pld = pld.self_compose(n)
        total = pld if total is None else total.compose(pld)
    return total
