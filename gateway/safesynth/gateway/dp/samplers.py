"""Exact samplers for privacy noise, vectorised over numpy arrays, fed by :class:`RandomSource` words.

Floating-point noise generation leaks (Mironov 2012, "On significance of the least significant bits
for differential privacy"); these samplers instead output integers whose distribution is *exactly*
the stated one, given uniformly random bits. The one primitive is an exact comparison of a uniform
real V = 0.b1 b2 b3 ... (bits drawn lazily) with exp(-x) for a rational x: a 32- or 64-bit prefix of
V settles it against a rigorous float enclosure of exp(-x) in all but ~2^-30 of the cases; the rest
is settled by drawing further bits of V and comparing with decimal enclosures of exp(-x) computed
from the exact rational x (Python's ``decimal`` exp is correctly rounded) at growing precision.

* ``bernoulli_exp_neg``: Bernoulli(exp(-gamma)) (as in Canonne, Kamath & Steinke 2020, "The
  Discrete Gaussian for Differential Privacy", CKS20, but by lazy comparison instead of Alg. 1).
* ``geometric``: P(G >= k) = exp(-k/scale), by inversion of one lazy uniform: G = #{k >= 1 :
  V < exp(-k/scale)}.
* ``discrete_laplace``: difference of two independent geometrics (pmf ~ exp(-|z|/scale)).
* ``discrete_gaussian``: CKS20 Algorithm 3 (rejection from the discrete Laplace of scale
  floor(sigma)+1), generalised to a real center.
* ``rounded_laplace``: round(c + L) for L ~ Laplace(0, scale), an exact post-processing of the
  continuous Laplace mechanism (used to release reals on a grid).
* ``uniform_below``: uniform integers on {0..n-1} by rejection (no modulo bias).

Scales and sigmas are floats, i.e. exact dyadic rationals; nothing is rounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp.errors import InvalidParameter, SamplingError
from safesynth.gateway.dp.rng import RandomSource

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "bernoulli_exp_neg",
    "discrete_gaussian",
    "discrete_laplace",
    "exp_neg_interval",
    "geometric",
    "rational_of",
    "rounded_laplace",
    "uniform_below",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

#: supported range of noise scales / sigmas (in units of the integer grid).
MIN_SCALE = 2.0**-60
MAX_SCALE = 2.0**40
_TWO32 = 2.0**32
_REL = 2.0**-44  # relative slack on exp() in the fast path (numpy exp is within a few ulp)
# slack for the count thresholds: a1 = (est - h) * g <= 45.2 (V >= 2^-65) carries three roundings
# (est - h, the product, g vs the exact rational gamma), <= 45.2 * 3 * 2^-53 < 2^-45.8 absolute, and
# numpy's exp adds <= 4 ulp: the relative error of e1 is < 2^-45.6, below this slack with margin 2.6.
_RELC = 2.0**-44


def rational_of(x: float, name: str = "scale") -> tuple[int, int]:
    """A float in [MIN_SCALE, MAX_SCALE] as an exact fraction (numerator, denominator)."""
    if not (math.isfinite(x) and MIN_SCALE <= x <= MAX_SCALE):
        raise InvalidParameter(name, f"must be in [2^-60, 2^40] (in grid units), got {x!r}")
    num, den = x.as_integer_ratio()
    return num, den


def uniform_below(n: int, size: int, rng: RandomSource) -> IntArray:
    """``size`` exact uniform integers on {0, ..., n-1} (1 <= n <= 2^62), by rejection."""
    if not 1 <= n <= 1 << 62:
        raise InvalidParameter("n", "must be in [1, 2^62]")
    out = np.zeros(size, dtype=np.int64)
    if n == 1 or size == 0:
        return out
    k = (n - 1).bit_length()
    todo = np.arange(size)
    while todo.size:
        if k <= 32:
            w32 = rng.words32(todo.size) >> np.uint32(32 - k)
            ok = w32 < np.uint32(n)
            out[todo[ok]] = w32[ok].astype(np.int64)
            todo = todo[~ok]
            continue
        w = rng.words(todo.size) >> np.uint64(64 - k)
        ok = w < np.uint64(n)
        out[todo[ok]] = w[ok].astype(np.int64)
        todo = todo[~ok]
    return out


def exp_neg_interval(gamma: Fraction, digits: int) -> tuple[Fraction, Fraction]:
    """Rational bounds (a, b) with a <= exp(-gamma) <= b, width ~ (gamma + 1) * 10^(1 - digits)."""
    if gamma < 0:
        raise InvalidParameter("gamma", "must be >= 0")
    while True:
        with localcontext() as ctx:
            ctx.prec = digits
            ctx.Emin = -(10**9)
            g = Decimal(gamma.numerator) / Decimal(gamma.denominator)
            e = (-g).exp()
        if e == 0 or not e.is_normal():
            raise SamplingError("exp(-gamma) below the decimal range (probability < 10^-400000000)")
        eta = (gamma + 1) * Fraction(1, 10 ** (digits - 1))
        if eta <= Fraction(1, 100):
            ef = Fraction(e)
            return ef * (1 - 4 * eta), ef * (1 + 4 * eta)
        digits += 20


def bernoulli_exp_neg(
    gamma: FloatArray,
    err: FloatArray,
    exact_gamma: Callable[[int], Fraction],
    rng: RandomSource,
    *,
    widen: float = 0.0,
) -> BoolArray:
    """Independent Bernoulli(exp(-gamma_i)) draws, exact.

    ``gamma`` is a float approximation with ``|gamma_i - exact_gamma(i)| <= err_i <= 1/4``; only in
    the rare ambiguous cases (probability ~2^-32 each) is ``exact_gamma(i)`` (the exact rational)
    evaluated and the comparison finished with more random bits. ``widen`` (tests only) widens the
    float interval so that the exact slow path is exercised.
    """
    n = gamma.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    if float(err.max()) > 0.25:
        raise SamplingError("float error bound too large for the fast path")
    e = np.exp(-gamma)
    # exp(-(gamma -+ err)) is within e * (1 +- 2 err) for err <= 1/4; _REL covers exp's own error.
    rel = 2.0 * err + _REL
    hi = np.maximum(e * (1.0 + rel), 2.0**-40)  # never claim exp(-gamma) rounds to 0
    lo = e * (1.0 - rel)
    lo = np.where(lo < 2.0**-30, 0.0, lo)
    if widen:
        lo = lo * (1.0 - widen)
        hi = hi + widen
    lo_w = np.floor(lo * _TWO32).astype(np.uint32)  # lo < 1 so lo * 2^32 < 2^32
    hi_scaled = np.ceil(hi * _TWO32)
    can_zero = hi_scaled < _TWO32
    hi_w = np.where(can_zero, hi_scaled, 0.0).astype(np.uint32)
    u = rng.words32(n)
    yes = u < lo_w  # (u + 1) / 2^32 <= lo <= exp(-gamma)  =>  V < exp(-gamma)
    out = yes.copy()
    amb = ~yes & ~(can_zero & (u >= hi_w))  # not settled by the 32-bit prefix
    if amb.any():
        for i in np.flatnonzero(amb).tolist():
            out[i] = _LazyUniform(int(u[i]), 32, rng).below_exp_neg(exact_gamma(i))
    return out


class _LazyUniform:
    """A uniform real V in [0, 1) whose binary digits are drawn on demand (exact comparisons)."""

    __slots__ = ("bits", "num", "rng")

    def __init__(self, prefix: int, bits: int, rng: RandomSource) -> None:
        self.num, self.bits, self.rng = prefix, bits, rng

    def below_exp_neg(self, gamma: Fraction) -> bool:
        """Exactly whether V < exp(-gamma) (gamma may be negative: then always True)."""
        if gamma <= 0:
            return True
        if gamma > 1000:
            # exp(-gamma) < 2^-k: V >= 2^-k settles it without decimal arithmetic on tiny numbers
            k = math.floor(gamma)
            if self.num > 0 and (self.bits <= k or self.num >= 1 << (self.bits - k)):
                return False
        digits = 40
        while True:
            a, b = exp_neg_interval(gamma, digits)
            if Fraction(self.num + 1, 1 << self.bits) <= a:
                return True
            if Fraction(self.num, 1 << self.bits) >= b:
                return False
            self.num = (self.num << 64) | self.rng.randbits(64)
            self.bits += 64
            digits += 25
            if gamma > 1000 and self.num > 0 and self.num >= 1 << max(self.bits - math.floor(gamma), 0):
                return False


def _exp_count(
    size: int,
    gamma: Fraction,
    h: FloatArray | None,
    h_exact: Callable[[int], Fraction],
    rng: RandomSource,
) -> IntArray:
    """count_i = #{k >= 1 : V_i < exp(-(k - h_i) gamma)} for independent uniform V_i, exactly.

    With h = 0 this is Geometric: P(count >= k) = exp(-k gamma). One 64-bit word per draw settles
    the count against rigorous float enclosures of the two neighbouring thresholds; the rest (rare)
    is finished exactly with :class:`_LazyUniform`. Requires 0 <= h_i <= 1 (None means h = 0).
    """
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    g = float(gamma)
    u = rng.words(size)
    vf = u.astype(np.float64)
    vf *= 2.0**-64  # V's 64-bit prefix, up to float rounding (relative 2^-53)
    vm = vf + 2.0**-65
    est = np.log(vm)
    est *= -1.0 / g
    if h is not None:
        est += h
    np.floor(est, out=est)
    np.maximum(est, 0.0, out=est)
    a1 = est - h if h is not None else est.copy()
    a1 *= g
    e1 = np.exp(-a1)  # exp(-(est - h) gamma); exp(-(est + 1 - h) gamma) = e1 * exp(-gamma)
    # slack: exp/rounding error, plus the float rounding of h (<= 2^-53) amplified by gamma
    slack = _RELC + g * 2.0**-50
    if slack >= 0.5:
        slack = 0.5
    # V < e1 for sure if the bucket top  vf (1 + 2^-52) + 2^-64  is below e1 (1 - slack)
    ok1 = vf * (1.0 + 2.0**-52) + 2.0**-64 <= e1 * (1.0 - slack)
    ok1 |= est == 0.0
    # V >= e2 for sure if the bucket bottom  vf (1 - 2^-52)  is above e2 (1 + slack)
    ok2 = vf * (1.0 - 2.0**-52) >= e1 * (math.exp(-g) * (1.0 + 2.0 * slack))
    ok1 &= ok2
    out = est.astype(np.int64)
    bad = np.flatnonzero(~ok1)
    for i in bad.tolist():
        lazy = _LazyUniform(int(u[i]), 64, rng)
        hi_ = h_exact(i)
        k = max(int(out[i]), 0)
        while k >= 1 and not lazy.below_exp_neg((k - hi_) * gamma):
            k -= 1
        while lazy.below_exp_neg((k + 1 - hi_) * gamma):
            k += 1
        out[i] = k
    return out


def _zero(_i: int) -> Fraction:
    return Fraction(0)


def geometric(size: int, scale: float, rng: RandomSource) -> IntArray:
    """Exact draws with P(G = k) = (1 - q) q^k, q = exp(-1/scale), k = 0, 1, 2, ..."""
    t, s = rational_of(float(scale))
    return _exp_count(size, Fraction(s, t), None, _zero, rng)


def discrete_laplace(size: int, scale: float, rng: RandomSource) -> IntArray:
    """Exact draws with P(Z = z) proportional to exp(-|z| / scale) (the discrete Laplace).

    For scale >= 4 as in CKS20 Algorithm 2: a Geometric(exp(-1/scale)) magnitude with a fair sign,
    rejecting (negative, 0) so that 0 is not counted twice; for small scales (where that rejection
    is frequent) the difference of two independent geometrics, which has the same law.
    """
    t, s = rational_of(float(scale))
    gamma = Fraction(s, t)
    if float(scale) < 4.0:
        return _exp_count(size, gamma, None, _zero, rng) - _exp_count(size, gamma, None, _zero, rng)
    out = np.zeros(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        m = todo.size
        y = _exp_count(m, gamma, None, _zero, rng)
        neg = (rng.words32(m) >> np.uint32(31)).astype(np.bool_)
        ok = ~(neg & (y == 0))
        out[todo[ok]] = np.where(neg, -y, y)[ok]
        todo = todo[~ok]
    return out


def _split_centers(centers: FloatArray) -> tuple[IntArray, FloatArray]:
    """centers = n + f with n integer and f in [-1/2, 1/2], both exact."""
    n = np.round(centers)
    f = centers - n  # exact (Sterbenz): |centers - n| <= 1/2
    return n.astype(np.int64), f


def rounded_laplace(centers: FloatArray, scale: float, rng: RandomSource) -> IntArray:
    """Exact draws of round(c + L), L ~ Laplace(0, scale) continuous, for each float center c.

    This is a post-processing of the continuous Laplace mechanism, so its privacy is exactly that of
    the Laplace mechanism. With a fair sign and E = |L| / scale ~ Exp(1), V = exp(-E) is uniform and
    round(f + L) on the positive side equals #{k >= 1 : V < exp(-(k - 1/2 - f)/scale)} (and the mirror
    image with -f on the negative side).
    """
    t, s = rational_of(float(scale))
    gamma = Fraction(s, t)
    c = np.asarray(centers, dtype=np.float64)
    size = c.shape[0]
    n, f = _split_centers(c)
    pos = (rng.words32(size) >> np.uint32(31)).astype(np.bool_)
    h = np.where(pos, 0.5 + f, 0.5 - f)

    def h_exact(i: int) -> Fraction:
        fi = Fraction(float(f[i]))
        return Fraction(1, 2) + fi if pos[i] else Fraction(1, 2) - fi

    cnt = _exp_count(size, gamma, h, h_exact, rng)
    return n + np.where(pos, cnt, -cnt)


def discrete_gaussian(centers: FloatArray, sigma: float, rng: RandomSource) -> IntArray:
    """Exact draws from N_Z(c, sigma^2): P(Z = z) proportional to exp(-(z - c)^2 / (2 sigma^2)).

    CKS20 Algorithm 3 generalised to a center c = n + f (f in [-1/2, 1/2]): propose Y from the
    discrete Laplace of scale t = floor(sigma) + 1 and accept with probability exp(-gamma(Y)),
    gamma(y) = ((y - f) -+ sigma^2/t)^2 / (2 sigma^2) + (|f| -+ f)/t (sign of y), which is
    log(target/proposal) shifted by its maximum, so gamma >= 0 and the accepted Y is exactly
    distributed as N_Z(f, sigma^2).
    """
    sig = float(sigma)
    rational_of(sig, "sigma")
    c = np.asarray(centers, dtype=np.float64)
    size = c.shape[0]
    n, f = _split_centers(c)
    sig2_x = Fraction(sig) ** 2
    t = math.floor(sig) + 1
    q_x = sig2_x / t
    sig2 = sig * sig
    q = sig2 / t
    centred = not bool(np.any(f))
    out = np.zeros(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        m = todo.size
        y = discrete_laplace(m, float(t), rng)
        ft = f[todo]
        yf = y.astype(np.float64)
        if centred:
            # gamma(y) = (|y| - sigma^2/t)^2 / (2 sigma^2)  (CKS20 Alg. 3)
            ay = np.abs(yf)
            d = ay - q
            gam = d * d
            gam *= 1.0 / (2.0 * sig2)
            ay += q + 1.0
        else:
            sgn = np.where(y >= 0, 1.0, -1.0)
            d = yf - ft - q * sgn
            gam = d * d
            gam *= 1.0 / (2.0 * sig2)
            gam += (np.abs(ft) - ft * sgn) / t
            ay = np.abs(yf) + np.abs(ft) + (q + 1.0)
        # float error bound of gam (generous: >= 1000x the worst rounding error)
        err = ay * ay
        err *= 1.0 / sig2
        err += gam + 1.0
        err *= 2.0**-40
        np.minimum(err, 0.25, out=err)

        def exact(i: int, y: IntArray = y, ft: FloatArray = ft) -> Fraction:
            yi, fi = int(y[i]), Fraction(float(ft[i]))
            if yi >= 0:
                return ((yi - fi) - q_x) ** 2 / (2 * sig2_x) + (abs(fi) - fi) / t
            return ((yi - fi) + q_x) ** 2 / (2 * sig2_x) + (abs(fi) + fi) / t

        acc = bernoulli_exp_neg(gam, err, exact, rng)
        out[todo[acc]] = y[acc]
        todo = todo[~acc]
    return n + out
