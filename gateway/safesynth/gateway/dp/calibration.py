"""Noise calibration and its inverse, rounded conservatively (never less noise, never less epsilon).

* Laplace: scale = sensitivity / epsilon (L1 sensitivity), rounded up.
* Gaussian: the analytic Gaussian mechanism (Balle & Wang 2018, Theorem 8): the mechanism with
  noise N(0, sigma^2) and L2 sensitivity D is (epsilon, delta)-DP iff
  ``delta >= Phi(D/(2 sigma) - epsilon sigma/D) - e^epsilon Phi(-D/(2 sigma) - epsilon sigma/D)``.
  With mu = D / sigma this is exactly the privacy profile of mu-Gaussian DP (Dong, Roth & Su 2019,
  Corollary 2.13), which also covers ``count``-fold composition: mu_total = sqrt(count) * D / sigma.
  We solve the profile (bracketed Newton in pure ``math``; bisection for mu) and return a
  conservative end, verified against the target with a relative safety margin of 1e-9 on delta.
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

from scipy.special import log_ndtr

from safesynth.gateway.dp._validate import check_count, check_delta, check_positive
from safesynth.gateway.dp.errors import InvalidParameter

__all__ = [
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_sigma",
    "gaussian_sigma_for_rho",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu_for",
    "gdp_mu_of_pure",
    "laplace_epsilon",
    "laplace_scale",
]

#: relative slack on delta when verifying a bracket end (covers float error of the profile).
_DELTA_SLACK = 1e-9


def _up(x: float) -> float:
    return math.nextafter(x, math.inf)


def _ratio_up(num: float, den: float) -> float:
    """num / den rounded up (exact quotients stay exact)."""
    q = num / den
    return q if Fraction(q) >= Fraction(num) / Fraction(den) else _up(q)


def _down(x: float) -> float:
    return math.nextafter(x, 0.0)


def laplace_scale(epsilon: float, sensitivity: float = 1.0) -> float:
    """Laplace scale b = sensitivity / epsilon (rounded up) for an epsilon-DP release."""
    eps = check_positive("epsilon", epsilon)
    sens = check_positive("sensitivity", sensitivity)
    return _ratio_up(sens, eps)


def laplace_epsilon(scale: float, sensitivity: float = 1.0) -> float:
    """The epsilon of the Laplace mechanism with this scale (rounded up)."""
    b = check_positive("scale", scale)
    sens = check_positive("sensitivity", sensitivity)
    return _ratio_up(sens, b)


#: erfc(z) stays a normal float (relative error of a few ulps) for z below this; beyond, scipy's
#: ``log_ndtr`` evaluates the terms.
_ERFC_SAFE_Z = 26.0
_SQRT1_2 = math.sqrt(0.5)


def _log_terms(m: float, eps: float) -> tuple[float, float]:
    """``(log Phi(-eps/m + m/2), eps + log Phi(-eps/m - m/2))``: the log of the profile's two terms.

    Pure ``math`` (Phi(-x) = erfc(x / sqrt 2) / 2) where both erfc values are normal floats; scipy's
    ``log_ndtr`` in the far tails.
    """
    zb = (eps / m + m / 2.0) * _SQRT1_2  # the larger erfc argument
    if zb < _ERFC_SAFE_Z and eps <= 700.0:
        za = (eps / m - m / 2.0) * _SQRT1_2
        return math.log(0.5 * math.erfc(za)), eps + math.log(0.5 * math.erfc(zb))
    return float(log_ndtr(-eps / m + m / 2.0)), float(log_ndtr(-eps / m - m / 2.0)) + eps


def _profile(m: float, eps: float) -> float:
    """gdp_delta without argument checks (inner loops of the solvers)."""
    la, lb = _log_terms(m, eps)
    if lb >= la:
        return 0.0
    return max(0.0, math.exp(la) * -math.expm1(lb - la))


def gdp_delta(mu: float, epsilon: float) -> float:
    """delta(epsilon) of mu-GDP: Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (exact profile)."""
    m = check_positive("mu", mu)
    if math.isnan(epsilon) or math.isinf(epsilon):
        raise InvalidParameter("epsilon", "must be finite")
    return _profile(m, float(epsilon))


def gdp_epsilon(mu: float, delta: float) -> float:
    """Smallest epsilon >= 0 with gdp_delta(mu, epsilon) <= delta, rounded up.

    A bracketed Newton iteration on ``log delta(epsilon)`` (d delta / d epsilon =
    -e^epsilon Phi(-epsilon/mu - mu/2)) from the first term's root, bisecting whenever Newton would
    leave the bracket; then nudged up until the profile at the returned value is verified to be
    <= delta (so the answer is valid whatever the iteration did).
    """
    m = check_positive("mu", mu)
    d = check_delta("delta", delta)
    target = d * (1.0 - _DELTA_SLACK)
    if _profile(m, 0.0) <= target:
        return 0.0
    lo, hi = 0.0, max(1.0, m * m / 2.0 + m * math.sqrt(2.0 * math.log(1.0 / d)) + 1.0)
    while _profile(m, hi) > target:
        lo, hi = hi, hi * 2.0
    # Phi(-eps/m + m/2) = target: above the root (the second term only lowers delta)
    guess = m * m / 2.0 - m * NormalDist().inv_cdf(target)
    root = _newton_root(m, math.log(target), lo, hi, guess)
    eps = _up(min(max(root * (1.0 + 1e-13), lo), hi))
    while _profile(m, eps) > target:  # verification; rarely more than one step
        eps = _up(eps * (1.0 + 1e-13) + 1e-300)
    return eps


def _newton_root(m: float, log_t: float, lo: float, hi: float, x: float) -> float:
    """A point within about 1e-14 (relative) of the root of log delta(eps) = log_t, given
    delta(lo) > e^log_t >= delta(hi), starting at ``x``."""
    if not lo < x < hi:
        x = 0.5 * (lo + hi)
    for _ in range(400):
        la, lb = _log_terms(m, x)
        if lb >= la:  # delta(x) rounds to 0: below the target
            hi, nxt = x, 0.5 * (lo + x)
        else:
            r = -math.expm1(lb - la)  # delta = e^la r
            g = la + math.log(r) - log_t
            if g > 0.0:
                lo = x
            else:
                hi = x
            # (log delta)' = delta' / delta = -e^lb / (e^la r); a slope that underflows: bisect
            ratio = math.exp(lb - la)
            nxt = x + g * r / ratio if ratio > 0.0 else 0.5 * (lo + hi)
            if not lo < nxt < hi:
                nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-14 * x or hi - lo <= 1e-14 * hi:
            return min(hi, max(x, nxt))
        x = nxt
    return hi


def gdp_mu_for(epsilon: float, delta: float) -> float:
    """Largest mu (rounded down) with gdp_delta(mu, epsilon) <= delta."""
    eps = check_positive("epsilon", epsilon)
    d = check_delta("delta", delta)
    target = d * (1.0 - _DELTA_SLACK)
    lo, hi = 0.0, 1.0
    while gdp_delta(hi, eps) <= target:
        lo, hi = hi, hi * 2.0
        if hi > 1e6:
            raise InvalidParameter("epsilon", "too large to calibrate")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if gdp_delta(mid, eps) <= target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    if lo <= 0.0:
        raise InvalidParameter("delta", "too small for this epsilon")
    return _down(lo)


def _eta(k: int) -> float:
    """Bulk log-ratio of k lattice Gaussian calls (see :mod:`safesynth.gateway.dp.mechanisms`)."""
    from safesynth.gateway.dp.mechanisms import LATTICE_LOG_RATIO_PER_CALL

    return k * LATTICE_LOG_RATIO_PER_CALL


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0, count: int = 1) -> float:
    """delta of ``count`` releases of this package's Gaussian mechanism (sigma, L2 sensitivity) at
    epsilon: the exact continuous value e^eta delta_cont(epsilon - 2 eta) with the lattice term eta =
    count 2^-32 (mechanisms module doc; the difference is below 1e-9 relative)."""
    s = check_positive("sigma", sigma)
    sens = check_positive("sensitivity", sensitivity)
    k = check_count("count", count)
    eps = check_positive("epsilon", epsilon)
    eta = _eta(k)
    if eps <= 2.0 * eta:
        return 1.0
    d = gdp_delta(math.sqrt(k) * sens / s, eps - 2.0 * eta * (1.0 + 1e-12))
    return min(1.0, d * math.exp(eta) * (1.0 + 1e-12))


def gaussian_epsilon(sigma: float, delta: float, sensitivity: float = 1.0, count: int = 1) -> float:
    """The epsilon (rounded up) of ``count`` releases of this package's Gaussian mechanism at
    ``delta``: eps_cont(delta e^-eta) + 2 eta, eta = count 2^-32 (see :func:`gaussian_delta`)."""
    s = check_positive("sigma", sigma)
    sens = check_positive("sensitivity", sensitivity)
    k = check_count("count", count)
    d = check_delta("delta", delta)
    eta = _eta(k)
    e = gdp_epsilon(_up(math.sqrt(k) * sens / s), d * math.exp(-eta) * (1.0 - 1e-12))
    return math.nextafter(e + 2.0 * eta * (1.0 + 1e-12), math.inf)


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0, count: int = 1) -> float:
    """The analytic-Gaussian sigma (rounded up) so that ``count`` releases of this package's Gaussian
    mechanism are (epsilon, delta)-DP (the lattice term of :func:`gaussian_delta` included)."""
    sens = check_positive("sensitivity", sensitivity)
    k = check_count("count", count)
    eps = check_positive("epsilon", epsilon)
    d = check_delta("delta", delta)
    eta = _eta(k)
    if eps <= 4.0 * eta:
        raise InvalidParameter("epsilon", f"too small for {k} lattice Gaussian releases (<= {4 * eta!r})")
    # calibrate a hair inside the target so that gaussian_epsilon(gaussian_sigma(e)) <= e (round trip)
    mu = gdp_mu_for((eps - 2.0 * eta) * (1.0 - 1e-10), d * math.exp(-eta) * (1.0 - 1e-9))
    sigma = _up(_up(math.sqrt(k) * sens) / mu)
    # verify (defensive: the profile is monotone in sigma)
    while gaussian_epsilon(sigma, d, sens, k) > eps:
        sigma = _up(sigma * (1.0 + 1e-12))
    return sigma


def gaussian_sigma_for_rho(rho: float, sensitivity: float = 1.0) -> float:
    """sigma so that the Gaussian mechanism is rho-zCDP: sigma = sensitivity / sqrt(2 rho), rounded up."""
    r = check_positive("rho", rho)
    sens = check_positive("sensitivity", sensitivity)
    return _up(sens / math.sqrt(2.0 * r))


def gdp_mu_of_pure(epsilon: float) -> float:
    """mu with epsilon-DP => mu-GDP: mu = 2 Phi^-1(e^eps / (1 + e^eps)) (Dong, Roth & Su 2019): the
    convex curve G_mu lies below the two-piece linear trade-off curve of eps-DP iff it does at the
    kink alpha = 1/(1 + e^eps). Rounded up.

    Evaluated so that float rounding can only raise mu: for epsilon < 1 through p = expit(epsilon)
    nudged up by 4 ulps; otherwise through the tail q = 1 - p = expit(-epsilon) (exact to a few ulps
    where p itself would round to 1) nudged down by 4 ulps, mu = -2 Phi^-1(q). Returns ``inf`` when
    q underflows (epsilon above about 700): such an event is not GDP-accountable.
    """
    from scipy.special import ndtri

    if epsilon < 1.0:
        p = 1.0 / (1.0 + math.exp(-epsilon))
        for _ in range(4):
            p = math.nextafter(p, 1.0)
        mu = 2.0 * float(ndtri(p))
    else:
        big = math.exp(epsilon) if epsilon < 709.0 else math.inf
        q = 1.0 / (1.0 + big)
        for _ in range(4):
            q = math.nextafter(q, 0.0)
        if q <= 0.0:
            return math.inf
        mu = -2.0 * float(ndtri(q))
    return math.nextafter(mu * (1.0 + 1e-12), math.inf)
