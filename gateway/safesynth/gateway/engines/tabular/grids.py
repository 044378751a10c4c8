"""Numeric grids: public cell layouts over which noisy histograms are measured.

Two grids, both fixed by public facts only (the schema or earlier DP releases):

* the *bounds grid* (``log_grid``): a symmetric, geometric grid covering 2^-10 .. 2^50 in both signs
  with a cell around zero, used to find DP bounds when the schema gives none;
* the *fine grid* (``fine_grid``): ``cells`` equal cells between the bounds (unit cells centred on the
  integers for integer columns with a small range), plus a point cell for exactly 0 when 0 lies inside.
  A noisy histogram over it gives DP quantile bins and the within-bin distribution used at sampling.

All functions here are pure numpy on public inputs or on already-noisy histograms (post-processing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.tabular.model import project_simplex

__all__ = [
    "FineGrid",
    "LogGrid",
    "bounds_from_histogram",
    "clean_histogram",
    "fine_grid",
    "log_grid",
    "project_histogram",
    "quantile_bins",
    "within_bin_weights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_MIN_EXP = -10
_MAX_EXP = 50
_PER_OCTAVE = 2


@dataclass(frozen=True)
class LogGrid:
    """A geometric grid of cells given by ``edges`` (``len(edges) - 1`` cells, outer cells open)."""

    edges: FloatArray

    @property
    def size(self) -> int:
        """Number of cells."""
        return len(self.edges) - 1

    def assign(self, values: FloatArray) -> IntArray:
        """The cell index of each (finite or infinite, not NaN) value; out-of-range values clamp."""
        idx = np.searchsorted(self.edges, values, side="right") - 1
        return np.clip(idx, 0, self.size - 1).astype(np.int64)


def log_grid() -> LogGrid:
    """The public bounds grid: +-[2^k, 2^(k+1/2)) for k in [-10, 50), a centre cell, open ends."""
    exps = np.arange(_MIN_EXP * _PER_OCTAVE, _MAX_EXP * _PER_OCTAVE + 1) / _PER_OCTAVE
    positive = np.power(2.0, exps)
    edges = np.concatenate([[-np.inf], -positive[::-1], positive, [np.inf]])
    return LogGrid(edges=edges.astype(np.float64))


def clean_histogram(noisy: FloatArray, sigma: float, *, threshold_sigmas: float = 5.0) -> FloatArray:
    """Zero the cells whose noisy count is below ``threshold_sigmas * sigma`` (post-processing).

    When nothing passes, only the largest cell is kept (so that quantiles remain defined).
    """
    out = np.where(noisy >= threshold_sigmas * sigma, noisy, 0.0).astype(np.float64)
    if out.sum() <= 0:
        out = np.zeros_like(noisy, dtype=np.float64)
        out[int(np.argmax(noisy))] = 1.0
    return out


def bounds_from_histogram(
    grid: LogGrid, noisy: FloatArray, sigma: float, *, tail: float = 0.005
) -> tuple[float, float]:
    """DP bounds (post-processing of a noisy bounds-grid histogram): the ``tail`` and ``1 - tail``
    quantiles of the cleaned histogram, widened to the outer edges of their cells (finite)."""
    h = clean_histogram(noisy, sigma)
    cdf = np.cumsum(h) / h.sum()
    lo_cell = int(np.searchsorted(cdf, tail, side="left"))
    hi_cell = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
    hi_cell = min(max(hi_cell, lo_cell), grid.size - 1)
    finite = grid.edges[np.isfinite(grid.edges)]
    lo = grid.edges[lo_cell] if np.isfinite(grid.edges[lo_cell]) else finite[0]
    hi = grid.edges[hi_cell + 1] if np.isfinite(grid.edges[hi_cell + 1]) else finite[-1]
    # The centre cell straddles zero: a bound that falls in it is zero (data on one side of zero).
    if grid.edges[lo_cell] < 0.0 < grid.edges[lo_cell + 1]:
        lo = 0.0
    if grid.edges[hi_cell] < 0.0 < grid.edges[hi_cell + 1]:
        hi = 0.0
    return float(lo), float(hi)


def project_histogram(noisy: FloatArray) -> FloatArray:
    """The noisy histogram projected onto the simplex of its own total (at least 1): cells whose noisy
    count is below a common threshold become 0, the rest shrink by it (post-processing).

    Unlike ``clean_histogram`` (a fixed 5 sigma cut, right for locating bounds), this keeps the shape of
    a spread-out distribution whose cells are each small against the noise (e.g. a wide numeric range
    over many fine cells at a small epsilon) while still zeroing the noise-only cells of empty tails.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    out = project_simplex(noisy, max(float(noisy.sum()), 1.0))
    return out.reshape(noisy.shape)


def within_bin_weights(noisy: FloatArray, cell_to_bin: IntArray, sigma: float) -> FloatArray:
    """Within-bin sampling weights of the fine cells (post-processing of the noisy fine histogram).

    In each bin: the noisy cell counts are shrunk towards their mean by James-Stein's positive-part
    factor ``max(0, 1 - sigma^2 / spread)`` (``spread``: their mean squared deviation; a bin whose cells
    differ no more than the noise becomes uniform), then projected onto the simplex of the bin's noisy
    total (noise-only cells of an empty tail get 0). A bin whose noisy total is not positive gets 0
    everywhere, i.e. uniform at decoding.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    out = np.zeros_like(noisy)
    for b in range(int(cell_to_bin.max()) + 1 if cell_to_bin.size else 0):
        cells = np.flatnonzero(cell_to_bin == b)
        values = noisy[cells]
        total = float(values.sum())
        if not total > 0:
            continue
        mean = float(values.mean())
        spread = float(((values - mean) ** 2).mean())
        keep = max(0.0, 1.0 - sigma**2 / spread) if spread > 0 else 0.0
        out[cells] = project_simplex(mean + keep * (values - mean), total)
    return out


@dataclass(frozen=True)
class FineGrid:
    """Cells ``[edges[i], edges[i+1])`` for ``i < n_interval``, then (optionally) the point cell {0}.

    ``integer`` grids have unit cells centred on integers (values round to the cell's integer).
    """

    edges: FloatArray
    zero_point: bool
    integer: bool
    lower: float
    upper: float

    @property
    def n_interval(self) -> int:
        """Number of interval cells."""
        return len(self.edges) - 1

    @property
    def size(self) -> int:
        """Number of cells (interval cells plus the zero point cell when present)."""
        return self.n_interval + (1 if self.zero_point else 0)

    def assign(self, values: FloatArray) -> IntArray:
        """The cell of each non-NaN value; values outside the bounds are clamped into the end cells."""
        clamped = np.clip(values, self.lower, self.upper)
        idx = np.searchsorted(self.edges, clamped, side="right") - 1
        idx = np.clip(idx, 0, self.n_interval - 1).astype(np.int64)
        if self.zero_point:
            idx = np.where(clamped == 0.0, self.n_interval, idx)
        return idx

    def sample(self, cells: IntArray, uniform: FloatArray) -> FloatArray:
        """A value in each cell: uniform inside interval cells (``uniform`` in [0, 1)), 0 for the point."""
        interval = np.minimum(cells, self.n_interval - 1)
        left = self.edges[interval]
        right = self.edges[interval + 1]
        values = left + uniform * (right - left)
        if self.zero_point:
            values = np.where(cells == self.n_interval, 0.0, values)
        if self.integer:
            values = np.rint(values)
        out: FloatArray = np.clip(values, self.lower, self.upper)
        return out


def fine_grid(lower: float, upper: float, *, integer: bool, cells: int) -> FineGrid:
    """The fine grid between public or DP bounds ``lower < upper`` (``upper`` may equal ``lower``)."""
    if integer:
        lower, upper = float(math.floor(lower)), float(math.ceil(upper))
        if upper - lower + 1 <= cells:
            edges = np.arange(lower - 0.5, upper + 1.0, 1.0)
            return FineGrid(edges=edges, zero_point=False, integer=True, lower=lower, upper=upper)
    if not upper > lower:
        upper = lower + 1.0
    edges = np.linspace(lower, upper, cells + 1)
    zero_point = lower < 0.0 < upper or lower == 0.0 or upper == 0.0
    return FineGrid(edges=edges, zero_point=zero_point, integer=integer, lower=lower, upper=upper)


def quantile_bins(grid: FineGrid, cleaned: FloatArray, n_bins: int) -> IntArray:
    """Map each fine cell to a bin: contiguous runs of interval cells of about equal cleaned mass
    (at most ``n_bins`` of them), and the zero point cell as a bin of its own. Post-processing."""
    n = grid.n_interval
    mass = cleaned[:n].astype(np.float64)
    total = float(mass.sum())
    if total <= 0 or n <= n_bins:
        cell_to_bin = np.arange(n, dtype=np.int64) if n <= n_bins else np.zeros(n, dtype=np.int64)
        if total <= 0 and n > n_bins:
            cell_to_bin = (np.arange(n) * n_bins // n).astype(np.int64)
    else:
        # Cut where the cumulative mass (before the cell) crosses k * total / n_bins.
        before = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
        cell_to_bin = np.minimum((before / total * n_bins).astype(np.int64), n_bins - 1)
        # Renumber to consecutive bin ids (some quantiles fall in the same heavy cell).
        _, cell_to_bin = np.unique(cell_to_bin, return_inverse=True)
        cell_to_bin = cell_to_bin.astype(np.int64)
    if grid.zero_point:
        cell_to_bin = np.concatenate([cell_to_bin, [int(cell_to_bin.max()) + 1]])
    return cell_to_bin.astype(np.int64)
