"""Vectorised DP mechanisms with exact sampling; clamping and contribution bounds are part of them.

Reals are released on a power-of-two grid g fixed by the noise scale alone (never by the data, so
the grid reveals nothing): g = 2^(floor(log2 scale) - 20) for Laplace and 2^(floor(log2 sigma) - 30)
for the Gaussian. The value is split exactly as x / g = n + f (n integer, |f| <= 1/2), noise is
drawn around f and n is added back, so values of any magnitude work. The output is an exact sample of

* Laplace: ``g * round((x + L) / g)`` with L ~ Laplace(scale) continuous, i.e. a post-processing of
  the exact continuous Laplace mechanism (:func:`samplers.rounded_laplace`): its privacy is exactly
  that of :class:`~safesynth.gateway.dp.events.LaplaceEvent` (scale, L1 sensitivity).
* Gaussian: ``g * Z`` with Z ~ N_Z(x / g, s^2), the discrete Gaussian centred at the (unsnapped)
  value, s = sigma (1 + 2^-40) / g in [2^30, 2^31). Two facts are used by the accountant
  (proofs in docs/privacy-accounting.md, section 3):

  1. Rényi: for centres at L2 distance D its Rényi divergence is at most alpha D^2/(2 s^2) +
     8 e^{-2 pi^2 s^2} alpha/(alpha-1) (Poisson summation; Canonne, Kamath & Steinke 2020, Sec. 2),
     and the 2^-40 inflation of sigma more than absorbs the additive term: the RDP curve of
     :class:`GaussianEvent` (sigma, L2 sensitivity) holds exactly.
  2. Closeness to the continuous mechanism: let r be the law of round(N(c, s^2)), a
     post-processing of the continuous Gaussian with sigma (1 + 2^-40) >= sigma. Per coordinate,
     on the bulk |k - c| <= 64 s the log-ratio |ln(p(k) / r(k))| is at most 181 / s^2 <= 2^-52
     (Taylor bound of the cell integral; Poisson summation for the normaliser), and both laws put
     mass below e^-2000 outside it. A call with d <= 2^20 coordinates therefore has log-ratio
     eta <= :data:`LATTICE_LOG_RATIO_PER_CALL` = 2^-32 on its bulk, and n calls satisfy every
     (eps + 2 n eta, e^(n eta) delta_cont(eps))-DP statement of the continuous mechanisms (up to
     an additive e^-1900). The accountant's exact GDP and PLD values for Gaussian events include it.

Nothing here is float noise: Mironov's (2012) least-significant-bit attack has nothing to read.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp._validate import check_delta, check_positive, check_positive_int
from safesynth.gateway.dp.contribution import clamp as _clamp
from safesynth.gateway.dp.contribution import finite_values
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.dp.samplers import (
    bernoulli_exp_neg,
    discrete_gaussian,
    discrete_laplace,
    rounded_laplace,
    uniform_below,
)

__all__ = [
    "GAUSSIAN_MAX_COORDINATES",
    "LATTICE_LOG_RATIO_PER_CALL",
    "discrete_gaussian_mechanism",
    "discrete_laplace_mechanism",
    "exponential_mechanism",
    "gaussian_mechanism",
    "laplace_mechanism",
    "partition_selection",
    "partition_selection_threshold",
    "release_grid",
    "report_noisy_max",
]

K = TypeVar("K", bound=Hashable)
_LAPLACE_GRID_BITS = 20
_GAUSSIAN_GRID_BITS = 30
_SIGMA_INFLATION = 1.0 + 2.0**-40
#: the most coordinates one :func:`gaussian_mechanism` call may noise (2^20).
GAUSSIAN_MAX_COORDINATES = 1 << 20
#: bound on |ln(lattice density / rounded continuous density)| of one :func:`gaussian_mechanism`
#: call on its bulk: 2^20 coordinates x 181 / (2^30)^2 <= 2^-32 (module doc, fact 2).
LATTICE_LOG_RATIO_PER_CALL = 2.0**-32


def _check_rng(rng: object) -> RandomSource:
    if not isinstance(rng, RandomSource):
        raise InvalidParameter("rng", "must be a RandomSource (RandomSource.secure() in production)")
    return rng


def release_grid(noise: float, *, bits: int = _LAPLACE_GRID_BITS) -> float:
    """The power-of-two output grid 2^(floor(log2 noise) - bits) of a noise scale/sigma (data-free)."""
    return 2.0 ** (math.floor(math.log2(noise)) - bits)


def _split(x: npt.NDArray[np.float64], g: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """x / g = n + f exactly, n integer-valued floats, |f| <= 1/2; refuses values whose x / g overflows."""
    c = x / g  # exact: g is a power of two
    if not np.all(np.isfinite(c)):
        raise InvalidParameter("values", "too large relative to the noise scale (overflow on its grid)")
    n = np.round(c)
    return n, c - n  # c - n is exact (Sterbenz)


def _prepare(
    values: Any, clamp: tuple[float, float] | None
) -> tuple[npt.NDArray[np.float64], tuple[int, ...]]:
    arr = np.asarray(values, dtype=np.float64)
    shape = arr.shape
    x = finite_values(arr)
    if clamp is not None:
        x = _clamp(x, clamp[0], clamp[1])
    return x, shape


def laplace_mechanism(
    values: Any,
    *,
    sensitivity: float,
    scale: float,
    rng: RandomSource,
    clamp: tuple[float, float] | None = None,
) -> npt.NDArray[np.float64]:
    """values + Laplace(scale) noise per coordinate, released on a grid (epsilon = L1 sens / scale).

    ``clamp=(lower, upper)`` clips the values first. Record ``LaplaceEvent(scale, sensitivity)``.
    """
    check_positive("sensitivity", sensitivity)
    b = check_positive("scale", scale)
    r = _check_rng(rng)
    x, shape = _prepare(values, clamp)
    g = release_grid(b)
    n, f = _split(x, g)
    z = rounded_laplace(f, b / g, r)
    return ((n + z.astype(np.float64)) * g).reshape(shape)


def gaussian_mechanism(
    values: Any,
    *,
    sensitivity: float,
    sigma: float,
    rng: RandomSource,
    clamp: tuple[float, float] | None = None,
) -> npt.NDArray[np.float64]:
    """values + N(0, sigma^2) noise per coordinate (exact discrete Gaussian on a fine grid).

    Record ``GaussianEvent(sigma, sensitivity)`` (L2 sensitivity of the whole vector); each call is
    one unit of the event's ``count`` and noises at most :data:`GAUSSIAN_MAX_COORDINATES` values.
    """
    check_positive("sensitivity", sensitivity)
    s = check_positive("sigma", sigma)
    r = _check_rng(rng)
    x, shape = _prepare(values, clamp)
    if x.size > GAUSSIAN_MAX_COORDINATES:
        raise InvalidParameter(
            "values", f"at most {GAUSSIAN_MAX_COORDINATES} coordinates per call (one event count each)"
        )
    g = release_grid(s, bits=_GAUSSIAN_GRID_BITS)
    sig_g = math.nextafter(s * _SIGMA_INFLATION / g, math.inf)  # in [2^30, 2^31)
    n, f = _split(x, g)
    z = discrete_gaussian(f, sig_g, r)
    # n + z is the exact lattice sample; its float rounding is a post-processing of it
    return ((n + z.astype(np.float64)) * g).reshape(shape)


def _int_values(values: Any) -> npt.NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise InvalidParameter("values", "must be integers")
    return arr.astype(np.int64)


def discrete_laplace_mechanism(
    values: Any, *, sensitivity: int, scale: float, rng: RandomSource
) -> npt.NDArray[np.int64]:
    """Integer values + discrete Laplace(scale) noise (epsilon = sensitivity / scale).

    Record ``DiscreteLaplaceEvent(scale, sensitivity)``.
    """
    check_positive_int("sensitivity", sensitivity)
    b = check_positive("scale", scale)
    r = _check_rng(rng)
    x = _int_values(values)
    return x + discrete_laplace(x.size, b, r).reshape(x.shape)


def discrete_gaussian_mechanism(
    values: Any, *, sensitivity: int, sigma: float, rng: RandomSource
) -> npt.NDArray[np.int64]:
    """Integer values + discrete Gaussian N_Z(0, sigma^2) noise (CKS20).

    Record ``DiscreteGaussianEvent(sigma, sensitivity)``.
    """
    check_positive_int("sensitivity", sensitivity)
    s = check_positive("sigma", sigma)
    r = _check_rng(rng)
    x = _int_values(values)
    return x + discrete_gaussian(np.zeros(x.size), s, r).reshape(x.shape)


def exponential_mechanism(
    scores: Any,
    *,
    sensitivity: float,
    epsilon: float,
    rng: RandomSource,
    monotonic: bool = False,
) -> int:
    """Index i with probability proportional to exp(epsilon * score_i / (2 sensitivity)) (or
    ``/ sensitivity`` when ``monotonic``), sampled exactly by rejection: a uniform candidate is
    accepted with probability exp(-epsilon (max - score_i) / (c sensitivity)).

    epsilon-DP and epsilon-bounded-range: record ``ExponentialEvent(epsilon)``.
    """
    sens = check_positive("sensitivity", sensitivity)
    eps = check_positive("epsilon", epsilon)
    r = _check_rng(rng)
    u = finite_values(scores, "scores")
    n = u.shape[0]
    if n == 0:
        raise InvalidParameter("scores", "must not be empty")
    if n == 1:
        return 0
    c = 1 if monotonic else 2
    umax = float(u.max())
    coef = eps / (c * sens)
    gam_all = coef * (umax - u)
    coef_x = Fraction(eps) / (c * Fraction(sens))
    umax_x = Fraction(umax)
    batch = int(min(max(64, n), 1 << 16))
    while True:
        idx = uniform_below(n, batch, r)
        gam = gam_all[idx]
        err = np.minimum(gam * 2.0**-48 + 1e-300, 0.25)

        def exact(i: int, idx: npt.NDArray[np.int64] = idx) -> Fraction:
            return coef_x * (umax_x - Fraction(float(u[int(idx[i])])))

        acc = np.flatnonzero(bernoulli_exp_neg(gam, err, exact, r))
        if acc.size:
            return int(idx[acc[0]])


def report_noisy_max(
    scores: Any,
    *,
    sensitivity: float,
    epsilon: float,
    rng: RandomSource,
    monotonic: bool = False,
) -> int:
    """Report-noisy-max with Gumbel noise, which is distributed exactly as the exponential mechanism
    (so it is sampled as such). Record ``ExponentialEvent(epsilon)``."""
    return exponential_mechanism(
        scores, sensitivity=sensitivity, epsilon=epsilon, rng=rng, monotonic=monotonic
    )


def partition_selection_threshold(epsilon: float, delta: float, max_partitions_contributed: int = 1) -> int:
    """Integer threshold T of :func:`partition_selection`: 1 + ceil(b ln(m / delta)) + 1, b = m/eps."""
    eps = check_positive("epsilon", epsilon)
    d = check_delta("delta", delta)
    m = check_positive_int("max_partitions_contributed", max_partitions_contributed)
    b = m / eps
    return 2 + math.ceil(b * math.log(m / d))


def partition_selection(
    counts: Mapping[K, int],
    *,
    epsilon: float,
    delta: float,
    max_partitions_contributed: int = 1,
    rng: RandomSource,
) -> list[K]:
    """Keys whose count plus discrete Laplace noise (scale m/epsilon) reaches the threshold T.

    ``counts[k]`` must be the number of distinct privacy units with key k, each unit contributing to
    at most m = ``max_partitions_contributed`` keys (see :func:`contribution.bound_partitions`).
    Keys with count <= 0 are ignored; a key present only in the private data is returned only if it
    passed the noisy threshold. (epsilon, delta)-DP: the noisy counts of common keys are epsilon-DP
    (L1 sensitivity m); a key of count 1 passes with probability <= exp(-(T-1)/b), at most m such keys
    per unit, so T - 1 >= b ln(m / delta) bounds the failure by delta (Korolova et al. 2009; Wilson et
    al. 2020). Output is sorted (never in data order). Record ``PartitionSelectionEvent``.
    """
    r = _check_rng(rng)
    thr = partition_selection_threshold(epsilon, delta, max_partitions_contributed)
    b = max_partitions_contributed / epsilon
    keys: list[K] = []
    vals: list[int] = []
    for k, c in counts.items():
        if isinstance(c, bool) or not isinstance(c, int | np.integer):
            raise InvalidParameter("counts", f"count of {k!r} must be an integer")
        if c > 0:
            keys.append(k)
            vals.append(int(c))
    if not keys:
        return []
    noisy = np.asarray(vals, dtype=np.int64) + discrete_laplace(len(keys), b, r)
    out = [k for k, v in zip(keys, noisy.tolist(), strict=True) if v >= thr]
    try:
        return sorted(out)  # type: ignore[type-var]
    except TypeError:
        return sorted(out, key=repr)
