"""Privacy filter for adaptively chosen requests (being implemented)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from safesynth.gateway.dp.events import DpEvent

__all__ = ["AdmissionDecision", "FilterState", "PrivacyFilter"]


@dataclass(frozen=True)
class FilterState:
    """Immutable running state of a filter (summed RDP curve and summed delta of admitted events)."""

    rdp: tuple[float, ...]
    delta_spent: float
    n_admitted: int


@dataclass(frozen=True)
class AdmissionDecision:
    """Outcome of :meth:`PrivacyFilter.decide`."""

    admitted: bool
    rule: str
    epsilon_spent: float
    epsilon_remaining: float
    new_state: FilterState
    reason: str = ""


class PrivacyFilter:
    """Admission rule with a theorem behind it (see docs/privacy-accounting.md)."""

    def __init__(self, epsilon_budget: float, delta_budget: float) -> None:
        self.epsilon_budget = epsilon_budget
        self.delta_budget = delta_budget

    def empty_state(self) -> FilterState:
        raise NotImplementedError

    def decide(self, state: FilterState, events: Sequence[DpEvent]) -> AdmissionDecision:
        raise NotImplementedError

    def replay(self, events_history: Iterable[Sequence[DpEvent]]) -> FilterState:
        raise NotImplementedError
