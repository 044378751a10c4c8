"""Rényi-DP curves of the event kinds, evaluated on a fixed grid of orders, and RDP -> (epsilon, delta).

Curves (each an upper bound on D_alpha(M(x) || M(x')) for neighbours x, x', valid for every alpha > 1):

* Gaussian, L2 sensitivity D, noise sigma: alpha D^2 / (2 sigma^2) (Mironov 2017, Prop. 7).
* discrete Gaussian, integer L2 sensitivity: the same (Canonne, Kamath & Steinke 2020, Prop. 5/Thm. 15).
* rho-zCDP: rho alpha (Bun & Steinke 2016).
* Laplace, scale b, L1 sensitivity D (lambda = b / D), exact (Mironov 2017, Prop. 6):
  1/(alpha-1) log( alpha/(2alpha-1) e^{(alpha-1)/lambda} + (alpha-1)/(2alpha-1) e^{-alpha/lambda} ).
* any epsilon-DP mechanism (discrete Laplace, pure DP), tight over all eps-DP pairs (randomized
  response is the worst case; Bun & Steinke 2016, Prop. 3.3 and its proof):
  1/(alpha-1) log( (e^{alpha eps} + e^{(1-alpha) eps}) / (1 + e^{eps}) ).
  Proof sketch: the likelihood ratio L = P/Q lies in [e^-eps, e^eps] with E_Q[L] = 1, and
  E_Q[L^alpha] is maximised (x -> x^alpha convex) by the two-point law at the end points.
* epsilon-bounded-range (exponential mechanism), Cesar & Rogers 2021 ("Bounding, concentrating and
  truncating", Sec. 3), by the same convexity argument with L in [e^a, e^{a+eps}]:
  sup_{q in [0,1]} 1/(alpha-1) [ log(1 + q(e^{alpha eps} - 1)) - alpha log(1 + q(e^{eps} - 1)) ],
  whose maximiser is q* = (A - alpha B) / (A B (alpha - 1)), A = e^{alpha eps} - 1, B = e^eps - 1.
  (Never above the eps-DP curve nor the (eps^2/8)-zCDP bound; we take the minimum of all three.)

Conversion RDP -> (epsilon, delta): Canonne, Kamath & Steinke 2020 Prop. 12 (= Asoodeh et al. 2021):
``epsilon = rdp(alpha) + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha - 1)``, minimised
over the grid. All curves get a relative slack of 1e-12 (+1e-15) so float error never under-reports.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp.errors import InvalidParameter
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
    ZCdpEvent,
)

__all__ = [
    "ORDERS",
    "br_rdp",
    "delta_from_rdp",
    "epsilon_from_rdp",
    "event_rdp",
    "gaussian_rdp",
    "laplace_rdp",
    "pure_dp_rdp",
    "pure_epsilon",
]

FloatArray = npt.NDArray[np.float64]

#: The dense grid of Rényi orders used by the accountant (fixed; 1 < alpha <= 1 + 1e5).
ORDERS: FloatArray = np.unique(np.concatenate([1.0 + np.geomspace(1e-3, 1e5, 600), np.arange(2.0, 257.0)]))
ORDERS.setflags(write=False)

_SLACK_REL = 1e-12
_SLACK_ABS = 1e-15


def _slack(x: FloatArray) -> FloatArray:
    return x * (1.0 + _SLACK_REL) + _SLACK_ABS


def gaussian_rdp(sigma: float, sensitivity: float, orders: FloatArray = ORDERS) -> FloatArray:
    """alpha * D^2 / (2 sigma^2)."""
    return _slack(orders * (sensitivity * sensitivity) / (2.0 * sigma * sigma))


def laplace_rdp(scale: float, sensitivity: float, orders: FloatArray = ORDERS) -> FloatArray:
    """Exact RDP of the Laplace mechanism (Mironov 2017, Prop. 6), capped by eps0 = D / b."""
    inv_lam = sensitivity / scale
    a = orders
    t1 = np.log(a / (2.0 * a - 1.0)) + (a - 1.0) * inv_lam
    t2 = np.log((a - 1.0) / (2.0 * a - 1.0)) - a * inv_lam
    val = np.logaddexp(t1, t2) / (a - 1.0)
    return _slack(np.minimum(np.maximum(val, 0.0), inv_lam))


def pure_dp_rdp(epsilon: float, orders: FloatArray = ORDERS) -> FloatArray:
    """Tight RDP of an arbitrary epsilon-DP mechanism (randomized response is the worst case)."""
    e = epsilon
    a = orders
    if e >= 700.0:
        return np.full(a.shape, _slack(np.array(e)).item())
    val = (np.logaddexp(a * e, (1.0 - a) * e) - math.log1p(math.exp(e))) / (a - 1.0)
    val = np.where(np.isfinite(val), val, e)
    return _slack(np.minimum(np.maximum(val, 0.0), e))


def br_rdp(epsilon: float, orders: FloatArray = ORDERS) -> FloatArray:
    """RDP of an epsilon-bounded-range mechanism (Cesar & Rogers 2021), never above pure/zCDP bounds."""
    e = epsilon
    a = orders
    out = np.minimum(pure_dp_rdp(e, a), _slack(a * e * e / 8.0))
    ok = a * e < 600.0
    if np.any(ok):
        ao = a[ok]
        big_a = np.expm1(ao * e)
        big_b = math.expm1(e)
        # q = (A - aB) / (AB(a - 1)), written without the product AB, which overflows for large
        # epsilon (q would collapse to 0 and the bound to 0: an under-report).
        q = 1.0 / ((ao - 1.0) * big_b) - ao / ((ao - 1.0) * big_a)
        q = np.clip(q, 0.0, 1.0)
        f = (np.log1p(q * big_a) - ao * np.log1p(q * big_b)) / (ao - 1.0)
        out[ok] = np.minimum(out[ok], _slack(np.maximum(f, 0.0)))
    return out


def pure_epsilon(event: DpEvent) -> float:
    """The pure-DP epsilon of one run of an event (inf for Gaussian-type events)."""
    if isinstance(event, LaplaceEvent | DiscreteLaplaceEvent):
        return event.sensitivity / event.scale
    if isinstance(event, ExponentialEvent | PureDpEvent | ApproxDpEvent | PartitionSelectionEvent):
        return event.epsilon
    return math.inf


def event_rdp(event: DpEvent, orders: FloatArray = ORDERS) -> tuple[FloatArray, float]:
    """(RDP curve of the event including its count, delta of its approximate part) for a leaf event."""
    if isinstance(event, GaussianEvent | DiscreteGaussianEvent):
        return event.count * gaussian_rdp(event.sigma, float(event.sensitivity), orders), 0.0
    if isinstance(event, ZCdpEvent):
        return event.count * _slack(event.rho * orders), 0.0
    if isinstance(event, LaplaceEvent):
        return event.count * laplace_rdp(event.scale, event.sensitivity, orders), 0.0
    if isinstance(event, DiscreteLaplaceEvent):
        return event.count * pure_dp_rdp(event.sensitivity / event.scale, orders), 0.0
    if isinstance(event, ExponentialEvent):
        return event.count * br_rdp(event.epsilon, orders), 0.0
    if isinstance(event, PureDpEvent):
        return event.count * pure_dp_rdp(event.epsilon, orders), 0.0
    if isinstance(event, ApproxDpEvent):
        # (eps, delta)-DP is delta-approximately eps-DP (Dwork & Roth 2014 Lemma 3.17; Bun & Steinke
        # 2016 Sec. 8: approximate RDP composes additively in delta).
        return event.count * pure_dp_rdp(event.epsilon, orders), event.count * event.delta
    if isinstance(event, PartitionSelectionEvent):
        return pure_dp_rdp(event.epsilon, orders), event.delta
    raise InvalidParameter("event", f"no RDP curve for {type(event).__name__}")


def epsilon_from_rdp(rdp: FloatArray, delta: float, orders: FloatArray = ORDERS) -> tuple[float, float]:
    """(epsilon, best order) from an RDP curve at ``delta`` (CKS20 Prop. 12), rounded up."""
    if not 0.0 < delta < 1.0:
        raise InvalidParameter("delta", f"must be in (0, 1), got {delta!r}")
    a = orders
    eps = rdp + np.log1p(-1.0 / a) - (math.log(delta) + np.log(a)) / (a - 1.0)
    eps = np.where(np.isfinite(eps), eps, np.inf)
    i = int(np.argmin(eps))
    return max(0.0, math.nextafter(float(eps[i]) * (1.0 + 1e-12), math.inf)), float(a[i])


def delta_from_rdp(rdp: FloatArray, epsilon: float, orders: FloatArray = ORDERS) -> tuple[float, float]:
    """(delta, best order) from an RDP curve at ``epsilon`` (inverse of CKS20 Prop. 12), rounded up."""
    a = orders
    log_delta = (a - 1.0) * (rdp - epsilon + np.log1p(-1.0 / a)) - np.log(a)
    log_delta = np.where(np.isfinite(log_delta), log_delta, np.inf)
    i = int(np.argmin(log_delta))
    d = min(1.0, math.exp(min(float(log_delta[i]), 0.0)) * (1.0 + 1e-9))
    return d, float(a[i])
