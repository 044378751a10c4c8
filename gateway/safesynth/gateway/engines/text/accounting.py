"""Privacy accounting of the text engine: the events of a plan, their calibration, the size gate.

A run makes at most ``1 + T`` Gaussian measurements, all with L2 sensitivity ``s`` (1 for a row-level
privacy unit, ``max_rows_per_person`` for a person-level one):

* the noisy label histogram (``sigma_count``), skipped when neither labels nor a DP size is needed;
* at each of the T iterations, the vote histograms of all labels, concatenated into ONE vector
  (``sigma_vote``). A private row votes in its own label only, with a contribution of L2 norm 1, so
  the concatenated vector has sensitivity ``s``. This is parallel composition over labels
  (McSherry 2009, Thm 4 for pure DP; for Gaussian mechanisms it holds because each row's change is
  confined to one label's block, so the per-label mechanisms together are one Gaussian mechanism
  whose sensitivity is the max - not the sum - over labels).

Gaussian mechanisms compose exactly in Gaussian DP (Dong, Roth & Su 2022, Cor. 3.3): T votes with
sigma and one count with sigma_c give ``mu = s * sqrt(T / sigma^2 + 1 / sigma_c^2)``, adaptively. The
charged cost is the DP core's accountant on the events (``compose``); :func:`gdp_epsilon` is the
closed form kept beside it as a cross-check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from safesynth.gateway.engines.base import calibrate_noise_multiplier

if TYPE_CHECKING:
    from safesynth.gateway.dp.events import DpEvent

__all__ = [
    "NoisePlan",
    "calibrate",
    "gdp_delta",
    "gdp_epsilon",
    "max_candidates",
    "noise_events",
]


@dataclass(frozen=True)
class NoisePlan:
    """The noise of a run: sigma of each vote histogram and of the label count (None: no count)."""

    sigma_vote: float
    sigma_count: float | None
    iterations: int
    sensitivity: int

    @property
    def mu(self) -> float:
        """Gaussian-DP parameter of the whole run (exact composition)."""
        total = self.iterations / self.sigma_vote**2
        if self.sigma_count is not None:
            total += 1.0 / self.sigma_count**2
        return self.sensitivity * math.sqrt(total)


def noise_events(noise: NoisePlan) -> tuple[DpEvent, ...]:
    """The privacy events charged for ``noise`` (count first, then the T votes)."""
    from safesynth.gateway.dp.events import GaussianEvent

    events: list[DpEvent] = []
    if noise.sigma_count is not None:
        events.append(GaussianEvent(sigma=noise.sigma_count, sensitivity=noise.sensitivity))
    events.append(
        GaussianEvent(sigma=noise.sigma_vote, sensitivity=noise.sensitivity, count=noise.iterations)
    )
    return tuple(events)


def _scaled(multiplier: float, *, iterations: int, sensitivity: int, count_share: float | None) -> NoisePlan:
    """Noise for a total GDP mu of ``1 / multiplier``, split ``count_share`` : ``1 - count_share`` in mu^2."""
    if count_share is None:
        return NoisePlan(multiplier * sensitivity * math.sqrt(iterations), None, iterations, sensitivity)
    return NoisePlan(
        sigma_vote=multiplier * sensitivity * math.sqrt(iterations / (1.0 - count_share)),
        sigma_count=multiplier * sensitivity / math.sqrt(count_share),
        iterations=iterations,
        sensitivity=sensitivity,
    )


def calibrate(
    *, epsilon: float, delta: float, iterations: int, sensitivity: int, count_share: float | None
) -> NoisePlan:
    """The least noise whose events the DP core's accountant composes to at most ``(epsilon, delta)``."""

    def build(m: float) -> tuple[DpEvent, ...]:
        return noise_events(
            _scaled(m, iterations=iterations, sensitivity=sensitivity, count_share=count_share)
        )

    m = calibrate_noise_multiplier(build, epsilon=epsilon, delta=delta)
    return _scaled(m, iterations=iterations, sensitivity=sensitivity, count_share=count_share)


def max_candidates(n_rows: float, sigma_vote: float, gate_factor: float) -> int:
    """The most candidates for which the expected votes per candidate reach ``gate_factor * sigma``."""
    if gate_factor <= 0:
        return 10**9
    return max(0, math.floor(n_rows / (gate_factor * sigma_vote)))


def gdp_delta(epsilon: float, mu: float) -> float:
    """delta(epsilon) of mu-GDP (Dong, Roth & Su 2022, Cor. 2.13)."""
    from scipy.stats import norm

    if mu <= 0:
        return 0.0
    # e^eps * Phi(x) computed as exp(eps + log Phi(x)): no overflow for large epsilon
    second = math.exp(epsilon + float(norm.logcdf(-epsilon / mu - mu / 2)))
    return max(0.0, float(norm.cdf(-epsilon / mu + mu / 2)) - second)


def gdp_epsilon(mu: float, delta: float) -> float:
    """The epsilon of mu-GDP at ``delta`` (closed form + bisection): the exact cost of the Gaussians."""
    if mu <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gdp_delta(mid, mu) > delta:
            lo = mid
        else:
            hi = mid
    return hi
