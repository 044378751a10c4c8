"""Composition of heterogeneous privacy events into (epsilon, delta). (Being implemented.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from safesynth.gateway.dp.events import DpEvent

__all__ = ["PrivacyCost", "compose", "smallest_delta"]


@dataclass(frozen=True)
class PrivacyCost:
    """The (epsilon, delta) of a composed sequence, the method that gave it, and per-event terms."""

    epsilon: float
    delta: float
    method: str
    terms: tuple[dict[str, object], ...] = field(default_factory=tuple)
    candidates: dict[str, float] = field(default_factory=dict)


def compose(events: Sequence[DpEvent], *, delta: float) -> PrivacyCost:
    """Tightest valid epsilon at ``delta`` for the fixed sequence ``events``."""
    raise NotImplementedError


def smallest_delta(events: Sequence[DpEvent], *, epsilon: float) -> PrivacyCost:
    """Smallest valid delta at ``epsilon`` for the fixed sequence ``events``."""
    raise NotImplementedError
