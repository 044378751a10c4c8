"""Column domains: how a column's values become integer codes for the marginals, and back.

Every domain is public or a DP release: categorical domains are the schema's categories or the
DP-selected ones, plus ``OTHER`` (every other value; not for a complete public list) and the null
cell; numeric domains are DP quantile bins over a public or DP fine grid, plus the null cell.
Nulls are a value everywhere.

``Compression`` is MST's domain compression: after the noisy 1-way marginal, codes whose noisy count
is below 3 sigma are merged into one "rare" code (post-processing), shrinking the 2-way tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.engines.tabular.grids import FineGrid
from safesynth.gateway.engines.tabular.model import allocate

__all__ = ["OTHER", "CategoricalDomain", "Compression", "NumericDomain", "compress", "to_float"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The value standing for every category that was not selected (or not in the public list).
OTHER = "__other__"


def to_float(series: pd.Series) -> FloatArray:
    """Numeric values as floats; nulls and unparsable values become NaN (null); +-inf stay (clamped
    later to the bounds like any out-of-range value)."""
    numbers = pd.to_numeric(series, errors="coerce")
    return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _as_text(value: object) -> str:
    """The string form of a category value (integers keep no trailing '.0')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class CategoricalDomain:
    """Codes: ``0..len(categories)-1`` the categories, then ``OTHER``, then null.

    A ``closed`` domain is a complete public category list (the schema's ``categories``): it has no
    ``OTHER`` code, so ``OTHER`` is never produced; a value outside the list (which the schema says
    does not exist) is counted as null. Codes: the categories, then null.
    """

    name: str
    categories: tuple[str, ...]
    closed: bool = False

    @property
    def size(self) -> int:
        """Number of codes."""
        return len(self.categories) + (1 if self.closed else 2)

    @property
    def other_code(self) -> int:
        """The code of ``OTHER`` (a closed domain has none: its values outside the list are null)."""
        return self.null_code if self.closed else len(self.categories)

    @property
    def null_code(self) -> int:
        """The code of null."""
        return self.size - 1

    def encode(self, series: pd.Series) -> IntArray:
        """The code of each value (its text form looked up in the categories; null for a null cell).

        Each distinct value is looked up once (``pd.factorize``). A column of mixed Python objects is
        looked up value by value instead: factorize would merge values that are equal but print
        differently (``True`` and ``1``)."""
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) not in (
            "string",
            "empty",
        ):
            return self.encode_each(series)
        positions, uniques = pd.factorize(series, use_na_sentinel=True)
        index = {c: i for i, c in enumerate(self.categories)}
        other = self.other_code
        # position -1 (a null cell) takes the last entry: the null code
        lookup = np.array([*(index.get(_as_text(v), other) for v in uniques), self.null_code], dtype=np.int64)
        codes: IntArray = lookup[positions]
        return codes

    def encode_each(self, series: pd.Series) -> IntArray:
        """:meth:`encode` value by value (the reference; used for columns of mixed objects)."""
        index = {c: i for i, c in enumerate(self.categories)}
        other, null = self.other_code, self.null_code
        values = series.astype(object).to_numpy()
        isnull = pd.isna(series).to_numpy()
        return np.fromiter(
            (null if n else index.get(_as_text(v), other) for v, n in zip(values, isnull, strict=True)),
            dtype=np.int64,
            count=len(values),
        )

    @property
    def labels(self) -> tuple[str | None, ...]:
        """The value of each code: the categories, then ``OTHER`` (not for a closed domain), then None."""
        return (*self.categories, *(() if self.closed else (OTHER,)), None)

    def decode(self, codes: IntArray) -> npt.NDArray[np.object_]:
        """The value of each code (None for null): ``labels[codes]``."""
        labels = np.array(self.labels, dtype=object)
        return labels[codes]


def _spread(n: int, values: IntArray, weights: FloatArray, gen: np.random.Generator) -> IntArray:
    """``n`` draws among ``values`` in proportion to ``weights``, by controlled rounding (``allocate``:
    each value's count is the floor or ceiling of its expectation) in a random order. Unlike
    independent draws, this adds no multinomial noise to the counts the model already fixed."""
    picked = np.repeat(values, allocate(n, weights, gen))
    gen.shuffle(picked)
    out: IntArray = picked.astype(np.int64)
    return out


@dataclass(frozen=True)
class NumericDomain:
    """Codes: ``0..n_bins-1`` the DP quantile bins of the fine grid, then null."""

    name: str
    grid: FineGrid
    cell_to_bin: IntArray
    cell_weights: FloatArray

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.cell_to_bin.max()) + 1

    @property
    def size(self) -> int:
        """Number of codes."""
        return self.n_bins + 1

    @property
    def null_code(self) -> int:
        """The code of null."""
        return self.n_bins

    def encode(self, values: FloatArray) -> IntArray:
        """The bin of each value (NaN is null)."""
        isnull = np.isnan(values)
        cells = self.grid.assign(np.where(isnull, self.grid.lower, values))
        return np.where(isnull, self.null_code, self.cell_to_bin[cells]).astype(np.int64)

    def decode(self, codes: IntArray, gen: np.random.Generator) -> FloatArray:
        """A value for each code: the bin's rows spread over its fine cells by controlled rounding of
        their (noisy, cleaned) weights, then a uniform point inside each cell; NaN for null.
        Post-processing of DP releases."""
        out = np.full(codes.shape, np.nan, dtype=np.float64)
        for b in range(self.n_bins):
            rows = np.flatnonzero(codes == b)
            if rows.size == 0:
                continue
            cells = np.flatnonzero(self.cell_to_bin == b)
            w = self.cell_weights[cells]
            if not w.sum() > 0:
                w = np.ones(cells.size)
            chosen = _spread(rows.size, cells, w, gen)
            out[rows] = self.grid.sample(chosen, gen.random(rows.size))
        return out


@dataclass(frozen=True)
class Compression:
    """A map from a domain's codes to compressed codes: kept codes keep their order; the rest merge
    into one last code, expanded at sampling in proportion to ``rare_weights``."""

    keep: IntArray
    rare: IntArray
    rare_weights: FloatArray
    original_size: int

    @property
    def size(self) -> int:
        """Number of compressed codes."""
        return int(self.keep.size + (1 if self.rare.size else 0))

    def mapping(self) -> IntArray:
        """original code -> compressed code."""
        out = np.full(self.original_size, self.keep.size, dtype=np.int64)
        out[self.keep] = np.arange(self.keep.size)
        return out

    def compress_values(self, values: FloatArray) -> FloatArray:
        """Sum a vector over the original codes into the compressed codes."""
        return np.bincount(self.mapping(), weights=values, minlength=self.size).astype(np.float64)

    def expand(self, codes: IntArray, gen: np.random.Generator) -> IntArray:
        """Compressed codes back to original codes (the rare code spread over its members by
        controlled rounding of ``rare_weights``)."""
        out = np.empty(codes.shape, dtype=np.int64)
        kept = codes < self.keep.size
        out[kept] = self.keep[codes[kept]]
        n_rare = int((~kept).sum())
        if n_rare:
            w = self.rare_weights
            p = w / w.sum() if w.sum() > 0 else np.full(self.rare.size, 1.0 / self.rare.size)
            out[~kept] = _spread(n_rare, self.rare, p, gen)
        return out


def compress(
    noisy: FloatArray, sigma: float, *, threshold_sigmas: float = 3.0, max_size: int = 1000
) -> Compression:
    """MST's compression of a noisy 1-way marginal: keep codes with count >= 3 sigma (at most
    ``max_size - 1`` of them, the largest), merge the rest into one rare code (expanded at sampling by
    James-Stein-shrunk noisy counts, see ``_shrunk``)."""
    supported = noisy >= threshold_sigmas * sigma
    if supported.sum() > max_size - 1:
        top = np.argsort(-noisy, kind="stable")[: max_size - 1]
        supported = np.zeros(noisy.size, dtype=bool)
        supported[top] = True
    keep = np.flatnonzero(supported).astype(np.int64)
    rare = np.flatnonzero(~supported).astype(np.int64)
    if rare.size == 1:  # a single rare code stays itself
        keep = np.arange(noisy.size, dtype=np.int64)
        rare = np.zeros(0, dtype=np.int64)
    weights = _shrunk(noisy[rare], sigma) if rare.size else np.zeros(0)
    return Compression(keep=keep, rare=rare, rare_weights=weights, original_size=int(noisy.size))


def _shrunk(values: FloatArray, sigma: float) -> FloatArray:
    """Expansion weights of the rare code's members: their noisy counts shrunk towards their mean by
    James-Stein's positive-part factor ``max(0, 1 - sigma^2 / spread)`` (members that differ no more
    than the noise share the rare mass evenly), clipped at 0. Post-processing."""
    mean = float(values.mean())
    spread = float(((values - mean) ** 2).mean())
    keep = max(0.0, 1.0 - sigma**2 / spread) if spread > 0 else 0.0
    return np.maximum(mean + keep * (values - mean), 0.0)
