"""DP bounds of a numeric column: a noisy histogram over a public geometric grid, then its tails.

For a sum, mean or quantiles over a column without public bounds, a share of the query's epsilon
buys the clamping range. The mechanism never looks at a value except to count it in a cell of a
grid fixed in advance (the same layout as the tabular engine's bounds grid: the cells
``+-[2^(j/2), 2^((j+1)/2))`` for ``j`` in ``[-20, 100)``, one cell around zero, open ends):

1. count the rows in each cell (one privacy unit of at most ``k`` rows changes the counts by at
   most ``k`` in L1), add discrete Laplace noise of scale ``k / epsilon``: one
   :class:`~safesynth.gateway.dp.events.DiscreteLaplaceEvent` (:func:`bounds_event`), epsilon-DP;
2. post-processing only: zero the cells whose noisy count is below ``scale * ln(cells / 0.01)`` (an
   empty cell passes with probability about 0.01 / cells, so a cell holding one person's rows is
   almost always dropped), take the ``tail`` and ``1 - tail`` quantiles of what remains, and widen
   them to their cells' outer edges (a bound in the cell around zero is 0).

A bound is therefore always a public grid edge (or 0), never a value of the data; a value held by
one row can move a bound only through the noisy count of its cell. Pure: randomness is passed in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from safesynth.gateway.dp._validate import check_positive
from safesynth.gateway.dp.events import DiscreteLaplaceEvent
from safesynth.gateway.dp.mechanisms import discrete_laplace_mechanism

if TYPE_CHECKING:
    from safesynth.gateway.dp.rng import RandomSource

__all__ = ["DEFAULT_TAIL", "bounds_event", "bounds_grid", "dp_bounds"]

FloatArray = npt.NDArray[np.float64]

#: Share of the kept (noisy) mass left outside each bound.
DEFAULT_TAIL = 0.005
_MIN_HALF_OCTAVE = -20
_MAX_HALF_OCTAVE = 100
#: A kept cell's noisy count must exceed ``scale * ln(cells / _FALSE_CELLS)``.
_FALSE_CELLS = 0.01


def bounds_grid() -> FloatArray:
    """The public grid's edges, ascending, with ``-inf`` and ``+inf`` at the ends."""
    exps = np.arange(_MIN_HALF_OCTAVE, _MAX_HALF_OCTAVE + 1) / 2.0
    positive = np.power(2.0, exps)
    edges = np.concatenate([[-np.inf], -positive[::-1], positive, [np.inf]])
    return edges.astype(np.float64)


def bounds_event(epsilon: float, sensitivity: int) -> DiscreteLaplaceEvent:
    """The privacy event of :func:`dp_bounds` at ``epsilon`` (``sensitivity``: rows per unit)."""
    eps = check_positive("epsilon", epsilon)
    return DiscreteLaplaceEvent(scale=sensitivity / eps, sensitivity=sensitivity)


def dp_bounds(
    values: FloatArray,
    *,
    epsilon: float,
    sensitivity: int,
    rng: RandomSource,
    tail: float = DEFAULT_TAIL,
) -> tuple[float, float]:
    """``(lower, upper)`` with ``lower < upper``: epsilon-DP bounds of ``values`` (no NaN).

    Costs exactly :func:`bounds_event` ``(epsilon, sensitivity)``; ``values`` must hold at most
    ``sensitivity`` rows of any one privacy unit.
    """
    if not 0.0 < tail < 0.5:
        raise ValueError("tail must be in (0, 0.5)")
    event = bounds_event(epsilon, sensitivity)
    edges = bounds_grid()
    cells = len(edges) - 1
    idx = np.clip(
        np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right") - 1, 0, cells - 1
    )
    counts = np.bincount(idx, minlength=cells).astype(np.int64)
    noisy = discrete_laplace_mechanism(counts, sensitivity=event.sensitivity, scale=event.scale, rng=rng)
    # ---- post-processing of the noisy counts only
    threshold = event.scale * math.log(cells / _FALSE_CELLS)
    kept = np.where(noisy > threshold, noisy, 0).astype(np.float64)
    if kept.sum() <= 0:
        kept = np.zeros(cells, dtype=np.float64)
        kept[int(np.argmax(noisy))] = 1.0
    cdf = np.cumsum(kept) / kept.sum()
    lo_cell = int(np.searchsorted(cdf, tail, side="left"))
    hi_cell = min(max(int(np.searchsorted(cdf, 1.0 - tail, side="left")), lo_cell), cells - 1)
    finite = edges[1:-1]
    lower = float(edges[lo_cell]) if lo_cell > 0 else float(finite[0])
    upper = float(edges[hi_cell + 1]) if hi_cell + 1 < cells else float(finite[-1])
    if edges[lo_cell] < 0.0 < edges[lo_cell + 1]:
        lower = 0.0
    if edges[hi_cell] < 0.0 < edges[hi_cell + 1]:
        upper = 0.0
    if (
        not upper > lower
    ):  # both bounds in one cell: that cell's edges (an open end cell: its finite neighbour)
        k = min(max(hi_cell, 1), cells - 2)
        lower, upper = float(edges[k]), float(edges[k + 1])
    return lower, upper
