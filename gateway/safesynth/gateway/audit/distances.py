"""Blockwise nearest-neighbour scans of query rows against a table, in the common embedding.

One pass over the (queries x table) squared-distance matrix, a block of queries at a time, gives
everything the distance-based attacks need: the distance to the closest record and its index, a
Gaussian kernel density (DOMIAS-style density estimate), the nearest record on all columns but one
(inference attack) and on each half of the columns (linkability attack). The per-column distance of a
slice is ``|q_s|^2 + |x_s|^2 - 2 q_s . x_s``, so the scan is a handful of BLAS products per block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from safesynth.gateway.audit.encoding import ColumnSlice

__all__ = ["ScanResult", "scan"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_ZERO = 1e-4  # squared distances below this are float32 round-off of an exact copy


@dataclass
class ScanResult:
    """Per query row: nearest distance/index, log kernel density, and the partial-column neighbours."""

    nearest_distance: F64
    nearest_index: I64
    log_density: F64
    inference_index: dict[str, I64] = field(default_factory=dict)
    link_index: tuple[I64, I64] | None = None


def _sqdist(q: F32, x: F32, nx: F32) -> F32:
    nq = np.einsum("ij,ij->i", q, q)
    d: F32 = nq[:, None] + nx[None, :] - 2.0 * (q @ x.T)
    np.maximum(d, 0.0, out=d)
    d[d < _ZERO] = 0.0
    return d


class _SliceDist:
    """Per-column squared distance, from codes (categorical) or value + null indicator (numeric)."""

    def __init__(self, sl: ColumnSlice, table: F32) -> None:
        self.sl = sl
        block = table[:, sl.start : sl.stop]
        if sl.kind == "categorical":
            self.codes = np.argmax(block, axis=1)
        else:
            self.value, self.null = block[:, 0], block[:, 1]

    def __call__(self, q: F32) -> F32:
        block = q[:, self.sl.start : self.sl.stop]
        if self.sl.kind == "categorical":
            qc = np.argmax(block, axis=1)
            mismatch: F32 = (qc[:, None] != self.codes[None, :]).astype(np.float32)
            return mismatch
        dv = block[:, 0:1] - self.value[None, :]
        dn = block[:, 1:2] - self.null[None, :]
        out: F32 = dv * dv + dn * dn
        return out


def scan(
    queries: F32,
    table: F32,
    *,
    bandwidth: float,
    secrets: Sequence[ColumnSlice] = (),
    link_split: tuple[Sequence[ColumnSlice], Sequence[ColumnSlice]] | None = None,
    block: int | None = None,
) -> ScanResult:
    """Scan ``queries`` (m x d) against ``table`` (n x d, n >= 1). ``bandwidth`` > 0 for the density.

    ``block`` queries at a time (default: about 8 million matrix cells, at most 256 rows), so memory
    stays near 100 MB whatever the table's size.
    """
    m, n = queries.shape[0], table.shape[0]
    if block is None:
        block = max(4, min(256, 8_000_000 // max(n, 1)))
    nx = np.einsum("ij,ij->i", table, table)
    slice_dist = {s.name: _SliceDist(s, table) for s in [*secrets, *(link_split[0] if link_split else ())]}
    dist = np.empty(m, dtype=np.float64)
    idx = np.empty(m, dtype=np.int64)
    logk = np.empty(m, dtype=np.float64)
    inf = {s.name: np.empty(m, dtype=np.int64) for s in secrets}
    link_a = np.empty(m, dtype=np.int64)
    link_b = np.empty(m, dtype=np.int64)
    inv2h2 = np.float32(1.0 / (2.0 * bandwidth * bandwidth))
    log_n = float(np.log(n))
    for lo in range(0, m, block):
        hi = min(m, lo + block)
        q = queries[lo:hi]
        d = _sqdist(q, table, nx)
        j = np.argmin(d, axis=1)
        idx[lo:hi] = j
        dist[lo:hi] = np.sqrt(d[np.arange(hi - lo), j].astype(np.float64))
        a = d * (-inv2h2)
        amax = a.max(axis=1, keepdims=True)
        np.subtract(a, amax, out=a)
        np.exp(a, out=a)
        logk[lo:hi] = np.log(a.sum(axis=1, dtype=np.float64)) + amax[:, 0].astype(np.float64) - log_n
        del a
        for s in secrets:
            inf[s.name][lo:hi] = np.argmin(d - slice_dist[s.name](q), axis=1)
        if link_split is not None:
            da = np.zeros_like(d)
            for s in link_split[0]:
                da += slice_dist[s.name](q)
            link_a[lo:hi] = np.argmin(da, axis=1)
            link_b[lo:hi] = np.argmin(d - da, axis=1)
    return ScanResult(
        nearest_distance=dist,
        nearest_index=idx,
        log_density=logk,
        inference_index=inf,
        link_index=(link_a, link_b) if link_split is not None else None,
    )
