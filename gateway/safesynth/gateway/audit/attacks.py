"""Membership-inference attacks on mixed tabular data: one score per audit-pool record.

Higher score = "more likely a member". The attacks see the release (synthetic rows) and the reference
holdout (rows no engine saw, disjoint from the pool); none of them sees a membership label.

* ``exact_match``: the record appears verbatim in the release.
* ``dcr``: minus the distance to the closest synthetic record.
* ``dcr_calibrated``: log of (distance to the closest reference record) / (distance to the closest
  synthetic record): a record is suspicious when the release is closer to it than real data is.
* ``domias_kde``: log density ratio p_synthetic(x) / p_reference(x) with Gaussian kernels in the
  common embedding (DOMIAS, van Breugel et al. 2023).
* ``classifier``: a gradient-boosted classifier of synthetic vs reference rows; its log-odds at x.
* ``inference``: share of columns the attacker gets right when it guesses each from the nearest
  synthetic record on the other columns (Anonymeter's inference attack, Giomi et al. 2023).
* ``linkability``: 1 when the nearest synthetic record on one half of the columns is the nearest on
  the other half (Anonymeter's linkability attack).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from safesynth.gateway.audit.distances import ScanResult
from safesynth.gateway.audit.encoding import ColumnSlice, EncodedTable, MixedEncoder

__all__ = [
    "NUMERIC_TOLERANCE",
    "TabularScans",
    "classifier_scores",
    "inference_baseline",
    "inference_success",
    "link_split",
    "linkability_success",
]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: A numeric guess is right when its mid-rank is within this distance of the truth.
NUMERIC_TOLERANCE = 0.05
_MAX_CLASSIFIER_ROWS = 20_000


@dataclass
class TabularScans:
    """The two scans of the pool: against the release and against the reference holdout."""

    synthetic: ScanResult
    reference: ScanResult


def link_split(encoder: MixedEncoder) -> tuple[list[ColumnSlice], list[ColumnSlice]] | None:
    """Columns split into two halves (alternating, schema order); None for fewer than two columns."""
    if len(encoder.slices) < 2:
        return None
    return list(encoder.slices[0::2]), list(encoder.slices[1::2])


def _right(
    encoder: MixedEncoder, col: str, truth: EncodedTable, guess_src: EncodedTable, idx: npt.NDArray[np.int64]
) -> B:
    if col in truth.codes:
        return np.asarray(truth.codes[col] == guess_src.codes[col][idx], dtype=np.bool_)
    t, g = truth.values[col], guess_src.values[col][idx]
    both_null = np.isnan(t) & np.isnan(g)
    close = np.abs(np.nan_to_num(t, nan=-9.0) - np.nan_to_num(g, nan=9.0)) <= NUMERIC_TOLERANCE
    return np.asarray(both_null | close, dtype=np.bool_)


def inference_success(
    encoder: MixedEncoder, pool: EncodedTable, synthetic: EncodedTable, scan: ScanResult
) -> dict[str, B]:
    """Per secret column: did the nearest-neighbour guess get the pool record's value right?"""
    return {col: _right(encoder, col, pool, synthetic, idx) for col, idx in scan.inference_index.items()}


def inference_baseline(
    encoder: MixedEncoder,
    pool: EncodedTable,
    synthetic: EncodedTable,
    secrets: list[str],
    rng: np.random.Generator,
) -> dict[str, B]:
    """The random baseline: guess each secret from a random synthetic record."""
    out: dict[str, B] = {}
    for col in secrets:
        idx = rng.integers(0, synthetic.n, size=pool.n)
        out[col] = _right(encoder, col, pool, synthetic, idx)
    return out


def linkability_success(scan: ScanResult) -> B | None:
    """1 where both halves of a pool record lead to the same synthetic record."""
    if scan.link_index is None:
        return None
    a, b = scan.link_index
    return np.asarray(a == b, dtype=np.bool_)


def _classifier_matrix(encoder: MixedEncoder, t: EncodedTable) -> F64:
    cols: list[F64] = []
    for sl in encoder.slices:
        if sl.kind == "categorical":
            cols.append(np.minimum(t.codes[sl.name], 250).astype(np.float64))
        else:
            cols.append(np.nan_to_num(t.values[sl.name], nan=-1.0))  # null: a value of its own
    return np.column_stack(cols) if cols else np.zeros((t.n, 0))


def classifier_scores(
    encoder: MixedEncoder,
    pool: EncodedTable,
    synthetic: EncodedTable,
    reference: EncodedTable,
    *,
    seed: int,
) -> F64 | None:
    """Log-odds of "synthetic" at each pool record, from a classifier of synthetic vs reference rows.

    None when it cannot be fitted (no tabular columns or fewer than 2 rows on a side).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not encoder.slices or synthetic.n < 2 or reference.n < 2:
        return None
    rng = np.random.default_rng(seed)
    xs, xr = _classifier_matrix(encoder, synthetic), _classifier_matrix(encoder, reference)
    if xs.shape[0] > _MAX_CLASSIFIER_ROWS:
        xs = xs[rng.choice(xs.shape[0], _MAX_CLASSIFIER_ROWS, replace=False)]
    if xr.shape[0] > _MAX_CLASSIFIER_ROWS:
        xr = xr[rng.choice(xr.shape[0], _MAX_CLASSIFIER_ROWS, replace=False)]
    x = np.vstack([xs, xr])
    y = np.r_[np.ones(xs.shape[0]), np.zeros(xr.shape[0])]
    cat_mask = [sl.kind == "categorical" for sl in encoder.slices]
    clf = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        categorical_features=np.asarray(cat_mask, dtype=bool) if any(cat_mask) else None,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # One OpenMP thread: gradient boosting's many short parallel regions spin badly on a shared machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        clf.fit(x, y)
        proba = clf.predict_proba(_classifier_matrix(encoder, pool))[:, 1]
    proba = np.clip(proba, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(proba) - np.log1p(-proba), dtype=np.float64)
