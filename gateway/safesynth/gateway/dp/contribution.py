"""Contribution bounding and clamping: what makes a declared sensitivity true.

* :func:`clamp` bounds each value to [lower, upper]; a sum of clamped values then has L1 sensitivity
  ``max(|lower|, |upper|)`` per contributed row (add/remove neighbours).
* :func:`bound_contributions` keeps at most ``max_contributions`` rows per privacy unit (chosen
  uniformly at random, independently of the values), so that one unit moves a count by at most that.
* :func:`bound_partitions` keeps, per privacy unit, at most ``max_partitions`` distinct keys (one row
  each), as partition selection requires.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp._validate import check_positive_int
from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.rng import RandomSource

__all__ = ["bound_contributions", "bound_partitions", "clamp", "clamp_sensitivity", "finite_values"]


def finite_values(values: Any, name: str = "values") -> npt.NDArray[np.float64]:
    """``values`` as a 1-D float array, refusing NaN and infinities."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise InvalidParameter(name, "must be finite (no NaN or infinity)")
    return x


def clamp(values: Any, lower: float, upper: float) -> npt.NDArray[np.float64]:
    """Clip every value into [lower, upper] (NaN refused)."""
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
        raise InvalidParameter("clamp", f"need finite lower <= upper, got ({lower!r}, {upper!r})")
    x = np.asarray(values, dtype=np.float64)
    if np.any(np.isnan(x)):
        raise InvalidParameter("values", "must not contain NaN")
    return np.clip(x, lower, upper)


def clamp_sensitivity(lower: float, upper: float, max_contributions: int = 1) -> float:
    """L1 sensitivity of a sum of values clamped to [lower, upper] (add/remove of one unit)."""
    k = check_positive_int("max_contributions", max_contributions)
    return k * max(abs(lower), abs(upper))


def _units(unit_ids: Sequence[Hashable] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    _, inverse = np.unique(np.asarray(unit_ids, dtype=object).astype(str), return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(-1)


def bound_contributions(
    unit_ids: Sequence[Hashable] | npt.NDArray[Any], *, max_contributions: int, rng: RandomSource
) -> npt.NDArray[np.bool_]:
    """Mask keeping at most ``max_contributions`` rows per unit, chosen uniformly at random."""
    k = check_positive_int("max_contributions", max_contributions)
    inv = _units(unit_ids)
    n = inv.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    tiebreak = np.asarray(rng.generator.random(n), dtype=np.float64)
    order = np.lexsort((tiebreak, inv))
    sorted_units = inv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_units)) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    keep = np.zeros(n, dtype=np.bool_)
    keep[order[rank < k]] = True
    return keep


def bound_partitions(
    unit_ids: Sequence[Hashable] | npt.NDArray[Any],
    keys: Sequence[Hashable] | npt.NDArray[Any],
    *,
    max_partitions: int,
    rng: RandomSource,
) -> npt.NDArray[np.bool_]:
    """Mask keeping one row per (unit, key) and at most ``max_partitions`` keys per unit (random)."""
    m = check_positive_int("max_partitions", max_partitions)
    u = _units(unit_ids)
    kk = _units(keys)
    if u.shape != kk.shape:
        raise InvalidParameter("keys", "must have the same length as unit_ids")
    n = u.shape[0]
    pair = u * (int(kk.max()) + 1 if n else 1) + kk
    _, first = np.unique(pair, return_index=True)
    dedup = np.zeros(n, dtype=np.bool_)
    dedup[first] = True
    idx = np.flatnonzero(dedup)
    sub = bound_contributions(u[idx], max_contributions=m, rng=rng)
    keep = np.zeros(n, dtype=np.bool_)
    keep[idx[sub]] = True
    return keep
