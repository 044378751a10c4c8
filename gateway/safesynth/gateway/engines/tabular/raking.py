"""Final raking: fit the synthetic rows to every noisy measurement already made (post-processing).

A model's sample can drift from what was measured: the adaptive model re-estimates a column's 1-way
distribution through its conditional tables, so its sample's 1-way margins wander from the best
estimate the measurements allow. This step corrects that, at zero privacy cost:

1. ``combine_one_way``: each column's 1-way estimate is the inverse-variance weighted mean of its own
   noisy 1-way measurement and the margins of every noisy table that covers it (a table margin over
   ``m`` other cells has ``m`` times the cell variance) and, for a numeric column, of its noisy fine
   histogram summed into the bins (``extra``), projected onto the simplex of the estimated
   total (non-negative, summing to N): one consistent set of 1-way targets;
2. ``rake_rows``: iterative proportional fitting of one weight per synthetic row to those targets
   (and optionally to non-negative, projected higher-order tables), then integer resampling of the
   rows by systematic sampling along the rows sorted by their codes (in expectation each row appears
   its weight's share of the requested rows; the sort keeps the 1-way counts close to the raked ones),
   so the output keeps the requested number of rows.

Inputs are DP releases (noisy tables, their public noise scales, a DP total) and the synthetic sample:
no private value is read here, so the step is pure post-processing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.tabular.model import Measurement, project_simplex

__all__ = ["NoisyTable", "combine_one_way", "rake_rows"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A noisy marginal over ``columns`` (flat, mixed radix, first column most significant) and the
#: standard deviation of the Gaussian noise of each of its cells.
NoisyTable = tuple[tuple[int, ...], FloatArray, float]


def combine_one_way(
    sizes: Sequence[int],
    one_way: Sequence[Measurement],
    tables: Sequence[NoisyTable],
    total: float,
    *,
    extra: Sequence[tuple[int, Measurement]] = (),
) -> list[FloatArray]:
    """Per column, the inverse-variance combination of every noisy measurement covering it, projected
    onto ``{x >= 0, sum(x) = total}``. ``extra`` adds further 1-way measurements (column, measurement
    with per-cell variances; an infinite variance marks an unmeasured cell), e.g. a numeric column's
    noisy fine histogram summed into its bins."""
    num = [m.values / m.variance for m in one_way]
    den = [1.0 / m.variance for m in one_way]
    for c, m in extra:
        measured = np.isfinite(m.variance)
        w = np.divide(1.0, m.variance, out=np.zeros_like(m.variance), where=measured)
        num[c] = num[c] + np.where(measured, m.values, 0.0) * w
        den[c] = den[c] + w
    for columns, values, sigma in tables:
        shape = tuple(sizes[c] for c in columns)
        table = np.asarray(values, dtype=np.float64).reshape(shape)
        cells = table.size
        for axis, c in enumerate(columns):
            if columns.index(c) != axis:  # a column listed twice: skip the duplicate
                continue
            others = tuple(a for a in range(len(columns)) if a != axis)
            margin = table.sum(axis=others) if others else table
            var = (cells // sizes[c]) * sigma**2
            num[c] = num[c] + margin / var
            den[c] = den[c] + 1.0 / var
    return [project_simplex(n / d, total) for n, d in zip(num, den, strict=True)]


def _codes(sample: IntArray, columns: Sequence[int], sizes: Sequence[int]) -> IntArray:
    out = np.zeros(sample.shape[0], dtype=np.int64)
    for c in columns:
        out = out * sizes[c] + sample[:, c]
    return out


def _systematic(
    sample: IntArray, sizes: Sequence[int], weights: FloatArray, n_out: int, gen: np.random.Generator
) -> IntArray:
    """Integer copies per row, summing to ``n_out``, with expectation ``n_out * w / sum(w)``: systematic
    sampling along the rows sorted by their codes (columns with the most cells first, random order among
    equal rows). Sorting stratifies: each value of the first column gets its expected count within one
    row, the next columns nearly so, which a random order would not give."""
    n = sample.shape[0]
    columns = sorted(range(sample.shape[1]), key=lambda c: (-sizes[c], c))
    keys: list[npt.NDArray[np.float64] | IntArray] = [np.asarray(gen.random(n), dtype=np.float64)]
    keys += [sample[:, c] for c in reversed(columns)]
    order = np.lexsort(tuple(keys))
    cum = np.cumsum(n_out * weights[order] / weights.sum())
    cum[-1] = float(n_out)  # exact total despite rounding of the sum
    picks = np.diff(np.floor(np.concatenate([[0.0], cum]) + float(gen.random()))).astype(np.int64)
    if picks.sum() != n_out:  # u close to 1 with the fixed end: one pick spills over
        picks[np.argmax(picks)] -= int(picks.sum()) - n_out
    counts = np.zeros(n, dtype=np.int64)
    counts[order] = picks
    return counts


def rake_rows(
    sample: IntArray,
    sizes: Sequence[int],
    targets: Sequence[tuple[tuple[int, ...], FloatArray]],
    n_out: int,
    gen: np.random.Generator,
    *,
    iterations: int = 200,
) -> IntArray:
    """``n_out`` rows of ``sample`` (codes, rows x columns), raked to ``targets``.

    Each target is (columns, non-negative counts over their joint cells, flat). Row weights start at 1
    and are scaled, target after target, so that the weighted counts match the (rescaled) target;
    cells the sample does not contain cannot be matched and keep weight 0 (the sample's support is
    kept). Then the rows are resampled by weight (stratified systematic sampling, ``_systematic``) and
    shuffled.
    """
    n = sample.shape[0]
    if n == 0 or n_out <= 0:
        return np.zeros((max(n_out, 0), sample.shape[1]), dtype=np.int64)
    weights = np.ones(n, dtype=np.float64)
    prepared: list[tuple[IntArray, FloatArray]] = []
    for columns, counts in targets:
        codes = _codes(sample, columns, sizes)
        target = np.maximum(np.asarray(counts, dtype=np.float64).ravel(), 0.0)
        prepared.append((codes, target))
    for _ in range(iterations):
        worst = 0.0
        for codes, target in prepared:
            current = np.bincount(codes, weights=weights, minlength=target.size)
            scaled = target * (current.sum() / max(target.sum(), 1e-12))
            factor = np.divide(scaled, current, out=np.ones_like(current), where=current > 0)
            weights *= factor[codes]
            worst = max(worst, float(np.abs(current - scaled).sum()) / max(float(current.sum()), 1e-12))
        if worst < 1e-4:
            break
    counts_per_row = _systematic(sample, sizes, weights, n_out, gen)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts_per_row)
    gen.shuffle(rows)
    out: IntArray = np.ascontiguousarray(sample[rows])
    return out
