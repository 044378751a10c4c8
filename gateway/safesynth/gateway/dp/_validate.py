"""Parameter checks shared by the DP core: finite, positive, in range; errors name the parameter."""

from __future__ import annotations

import math
import numbers

from safesynth.gateway.dp.errors import InvalidParameter

__all__ = ["check_count", "check_delta", "check_positive", "check_positive_int", "check_probability"]


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameter(name, f"must be a real number, got {type(value).__name__}")
    out = float(value)
    if math.isnan(out):
        raise InvalidParameter(name, "must not be NaN")
    if math.isinf(out):
        raise InvalidParameter(name, "must be finite")
    return out


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is finite and strictly positive."""
    out = _as_float(name, value)
    if out <= 0.0:
        raise InvalidParameter(name, f"must be > 0, got {out!r}")
    return out


def check_delta(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A delta: finite, in (0, 1) (or [0, 1) with ``allow_zero``)."""
    out = _as_float(name, value)
    if out < 0.0 or out >= 1.0 or (out == 0.0 and not allow_zero):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise InvalidParameter(name, f"must be in {bound}, got {out!r}")
    return out


def check_probability(name: str, value: object) -> float:
    """A probability in (0, 1]."""
    out = _as_float(name, value)
    if not 0.0 < out <= 1.0:
        raise InvalidParameter(name, f"must be in (0, 1], got {out!r}")
    return out


def check_positive_int(name: str, value: object) -> int:
    """A strictly positive Python int (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameter(name, f"must be an integer, got {type(value).__name__}")
    out = int(value)
    if out <= 0:
        raise InvalidParameter(name, f"must be >= 1, got {out}")
    return out


def check_count(name: str, value: object) -> int:
    """An event repetition count (>= 1)."""
    return check_positive_int(name, value)
