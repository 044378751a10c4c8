"""Quality of a synthetic release against real data: fidelity and utility, as aggregates.

* marginal total variation distance (TVD) over 1-, 2- and 3-way marginals (numbers binned in deciles
  of the real training data, null its own bin; all pairs up to 300, up to 100 random triples);
* correlation difference: mean absolute difference of Pearson correlations (numeric pairs) and of
  Cramer's V (all binned pairs);
* train on synthetic, test on real (TSTR) vs train on real, test on real (TRTR), with logistic /
  linear regression and histogram gradient boosting, when a target column is given;
* discriminator AUC: a classifier told real from synthetic (3-fold cross-validated; 0.5 = can't);
* text columns: length statistics, distance between the mean embeddings in the public hashing space
  (linear-kernel MMD), and, with a categorical target, a text classifier trained on synthetic text.

Every figure is computed from private data: the report holds aggregates only (no rows, no real
marginals), and it is not differentially private; the gateway releases it under the dataset's policy.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.audit.encoding import EncodedTable, MixedEncoder, check_columns
from safesynth.gateway.audit.errors import InvalidAuditInput
from safesynth.sdk.schema import ColumnKind, DatasetSchema

__all__ = ["QualityReport", "TextQuality", "UtilityResult", "quality_report"]

N_BINS = 10
MAX_PAIRS = 300
MAX_TRIPLES = 100
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UtilityResult:
    """One model trained on ``trained_on`` ("synthetic" or "real"), tested on real held-out rows."""

    model: str
    trained_on: str
    metric: str
    value: float | None


@dataclass(frozen=True)
class TextQuality:
    """Text column fidelity."""

    real_chars_mean: float
    synthetic_chars_mean: float
    real_words_median: float
    synthetic_words_median: float
    real_words_p95: float
    synthetic_words_p95: float
    empty_share_synthetic: float
    embedding_mmd: float
    centroid_cosine: float


@dataclass(frozen=True)
class QualityReport:
    """The result of :func:`quality_report` (aggregates only)."""

    sizes: dict[str, int]
    tvd_1way: dict[str, float]
    tvd_1way_mean: float
    tvd_2way_mean: float
    tvd_2way_max: float
    tvd_3way_mean: float
    pairs_used: int
    triples_used: int
    correlation_diff: float | None
    association_diff: float | None
    association_diff_matrix: dict[str, dict[str, float]]
    target: str | None
    utility: tuple[UtilityResult, ...]
    discriminator_auc: float | None
    text: dict[str, TextQuality]
    runtime_seconds: float
    notes: tuple[str, ...] = field(default=())
    version: str = "quality/v1"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (NaN as null)."""
        out = asdict(self)
        out["utility"] = [asdict(u) for u in self.utility]
        out["text"] = {k: asdict(v) for k, v in self.text.items()}
        out["notes"] = list(self.notes)
        cleaned: dict[str, Any] = _clean(out)
        return cleaned


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _binned(encoder: MixedEncoder, t: EncodedTable) -> dict[str, tuple[I64, int]]:
    """Per tabular column: integer codes and their number."""
    out: dict[str, tuple[I64, int]] = {}
    for sl in encoder.slices:
        if sl.kind == "categorical":
            out[sl.name] = (t.codes[sl.name], encoder.n_codes(sl.name))
        else:
            q = t.values[sl.name]
            b = np.where(np.isnan(q), N_BINS, np.minimum(np.floor(np.nan_to_num(q) * N_BINS), N_BINS - 1))
            out[sl.name] = (b.astype(np.int64), N_BINS + 1)
    return out


def _dist(codes: list[tuple[I64, int]]) -> F64:
    joint = np.zeros_like(codes[0][0])
    size = 1
    for c, k in codes:
        joint = joint * k + c
        size *= k
    counts = np.bincount(joint, minlength=size).astype(np.float64)
    dist: F64 = counts / max(counts.sum(), 1.0)
    return dist


def _tvd(a: list[tuple[I64, int]], b: list[tuple[I64, int]]) -> float:
    return 0.5 * float(np.abs(_dist(a) - _dist(b)).sum())


def _cramers_v(x: I64, kx: int, y: I64, ky: int) -> float:
    table = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype(np.float64)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) @ table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (min(table.shape) - 1)))


def quality_report(
    real_train: pd.DataFrame,
    real_test: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: DatasetSchema,
    target: str | None = None,
    *,
    seed: int = 0,
    max_rows: int = 20_000,
) -> QualityReport:
    """Compare ``synthetic`` with ``real_train`` (fidelity) and test models on ``real_test`` (utility)."""
    t0 = time.perf_counter()
    for role, df in (("real_train", real_train), ("real_test", real_test), ("synthetic", synthetic)):
        check_columns(df, schema, role=role)
        if len(df) == 0:
            raise InvalidAuditInput(f"{role} has no rows", detail={"parameter": role})
    if target is not None:
        try:
            spec = schema.column(target)
        except KeyError as exc:
            raise InvalidAuditInput(
                f"target {target!r} is not a column", detail={"parameter": "target"}
            ) from exc
        if spec.kind not in (ColumnKind.CATEGORICAL, ColumnKind.NUMERIC):
            raise InvalidAuditInput("target must be categorical or numeric", detail={"parameter": "target"})
    rng = np.random.default_rng(seed)

    def cap(df: pd.DataFrame) -> pd.DataFrame:
        return df if len(df) <= max_rows else df.iloc[np.sort(rng.choice(len(df), max_rows, replace=False))]

    real_train, real_test, synthetic = cap(real_train), cap(real_test), cap(synthetic)
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    notes: list[str] = []
    encoder = MixedEncoder(schema, real_train, [real_train, real_test, synthetic])
    er, et, es = encoder.encode(real_train), encoder.encode(real_test), encoder.encode(synthetic)
    br, bs = _binned(encoder, er), _binned(encoder, es)
    cols = list(br)
    tvd1 = {c: _tvd([br[c]], [bs[c]]) for c in cols}
    pairs = list(itertools.combinations(cols, 2))
    if len(pairs) > MAX_PAIRS:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), MAX_PAIRS, replace=False))]
    tvd2 = [_tvd([br[a], br[b]], [bs[a], bs[b]]) for a, b in pairs]
    n_triples = math.comb(len(cols), 3)
    triples: list[tuple[str, ...]] = []
    if n_triples:
        all_triples = list(itertools.combinations(cols, 3)) if n_triples <= 5000 else []
        if all_triples:
            pick = sorted(rng.choice(len(all_triples), min(MAX_TRIPLES, len(all_triples)), replace=False))
            triples = [all_triples[i] for i in pick]
        else:
            triples = [tuple(rng.choice(cols, 3, replace=False).tolist()) for _ in range(MAX_TRIPLES)]
    tvd3 = [_tvd([br[c] for c in tr], [bs[c] for c in tr]) for tr in triples]

    numeric = [c for c in encoder.numeric if c in cols]
    corr_diff: float | None = None
    if len(numeric) >= 2:
        cr = (
            pd.DataFrame({c: pd.to_numeric(real_train[c], errors="coerce") for c in numeric})
            .corr()
            .to_numpy()
        )
        cs = (
            pd.DataFrame({c: pd.to_numeric(synthetic[c], errors="coerce") for c in numeric}).corr().to_numpy()
        )
        iu = np.triu_indices(len(numeric), 1)
        diff = np.abs(np.nan_to_num(cr[iu]) - np.nan_to_num(cs[iu]))
        corr_diff = float(diff.mean())
    assoc: dict[str, dict[str, float]] = {}
    assoc_vals: list[float] = []
    for a, b in pairs:
        d = abs(
            _cramers_v(br[a][0], br[a][1], br[b][0], br[b][1])
            - _cramers_v(bs[a][0], bs[a][1], bs[b][0], bs[b][1])
        )
        assoc.setdefault(a, {})[b] = d
        assoc_vals.append(d)

    with threadpool_limits(limits=1, user_api="openmp"):
        utility = _utility(encoder, er, et, es, target, notes, seed) if target is not None else []
        disc = _discriminator(encoder, er, es, seed, notes) if encoder.slices else None
        text = {c: _text_quality(er.texts[c], es.texts[c]) for c in encoder.text}
        if target is not None and encoder.text and target in encoder.categorical:
            utility += _text_utility(encoder, er, et, es, target, notes)

    return QualityReport(
        sizes={"real_train": len(real_train), "real_test": len(real_test), "synthetic": len(synthetic)},
        tvd_1way=tvd1,
        tvd_1way_mean=float(np.mean(list(tvd1.values()))) if tvd1 else math.nan,
        tvd_2way_mean=float(np.mean(tvd2)) if tvd2 else math.nan,
        tvd_2way_max=float(np.max(tvd2)) if tvd2 else math.nan,
        tvd_3way_mean=float(np.mean(tvd3)) if tvd3 else math.nan,
        pairs_used=len(pairs),
        triples_used=len(triples),
        correlation_diff=corr_diff,
        association_diff=float(np.mean(assoc_vals)) if assoc_vals else None,
        association_diff_matrix=assoc,
        target=target,
        utility=tuple(utility),
        discriminator_auc=disc,
        text=text,
        runtime_seconds=time.perf_counter() - t0,
        notes=tuple(notes),
    )


def _features(encoder: MixedEncoder, t: EncodedTable, drop: str) -> tuple[F64, F64, list[bool]]:
    """(one-hot embedding without ``drop``, codes/ranks matrix without ``drop``, categorical mask)."""
    keep = [s for s in encoder.slices if s.name != drop]
    emb = (
        np.hstack([t.embedding[:, s.start : s.stop] for s in keep]).astype(np.float64)
        if keep
        else np.zeros((t.n, 1))
    )
    mat = [
        np.minimum(t.codes[s.name], 250).astype(np.float64)
        if s.kind == "categorical"
        else np.nan_to_num(t.values[s.name], nan=-1.0)
        for s in keep
    ]
    codes = np.column_stack(mat) if mat else np.zeros((t.n, 1))
    return emb, codes, [s.kind == "categorical" for s in keep] or [False]


def _utility(
    encoder: MixedEncoder,
    er: EncodedTable,
    et: EncodedTable,
    es: EncodedTable,
    target: str,
    notes: list[str],
    seed: int,
) -> list[UtilityResult]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, r2_score, roc_auc_score

    classify = target in encoder.categorical
    out: list[UtilityResult] = []
    test_emb, test_codes, mask = _features(encoder, et, target)

    def label(t: EncodedTable) -> F64:
        return t.codes[target].astype(np.float64) if classify else np.nan_to_num(t.values[target], nan=-1.0)

    y_test = label(et)
    for source, t in (("synthetic", es), ("real", er)):
        emb, codes, _ = _features(encoder, t, target)
        y = label(t)
        if classify and np.unique(y).size < 2:
            notes.append(f"utility: the {source} data has a single {target!r} class; models not trained")
            for model in ("logistic_regression", "hist_gradient_boosting"):
                out.append(UtilityResult(model, source, "accuracy", None))
            continue
        models: list[tuple[str, Any, F64, F64]] = []
        if classify:
            models.append(("logistic_regression", LogisticRegression(max_iter=200, tol=1e-3), emb, test_emb))
            hgb_c = HistGradientBoostingClassifier(
                max_iter=100, categorical_features=np.asarray(mask), random_state=seed
            )
            models.append(("hist_gradient_boosting", hgb_c, codes, test_codes))
        else:
            models.append(("ridge_regression", Ridge(alpha=1.0), emb, test_emb))
            hgb_r = HistGradientBoostingRegressor(
                max_iter=100, categorical_features=np.asarray(mask), random_state=seed
            )
            models.append(("hist_gradient_boosting", hgb_r, codes, test_codes))
        for name, model, xtr, xte in models:
            model.fit(xtr, y)
            pred = model.predict(xte)
            if classify:
                out.append(UtilityResult(name, source, "accuracy", float(accuracy_score(y_test, pred))))
                out.append(
                    UtilityResult(name, source, "macro_f1", float(f1_score(y_test, pred, average="macro")))
                )
                classes = np.unique(y_test)
                if classes.size == 2 and len(model.classes_) == 2:
                    proba = model.predict_proba(xte)[:, list(model.classes_).index(classes[1])]
                    out.append(
                        UtilityResult(
                            name, source, "roc_auc", float(roc_auc_score(y_test == classes[1], proba))
                        )
                    )
            else:
                out.append(UtilityResult(name, source, "r2", float(r2_score(y_test, pred))))
    return out


def _discriminator(
    encoder: MixedEncoder, er: EncodedTable, es: EncodedTable, seed: int, notes: list[str]
) -> float | None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = min(er.n, es.n, 10_000)
    if n < 10:
        notes.append("discriminator skipped: fewer than 10 rows on a side")
        return None
    rng = np.random.default_rng(seed)
    _, xr, mask = _features(encoder, er, "")
    _, xs, _ = _features(encoder, es, "")
    x = np.vstack([xr[rng.choice(er.n, n, replace=False)], xs[rng.choice(es.n, n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = HistGradientBoostingClassifier(
        max_iter=100, categorical_features=np.asarray(mask), random_state=seed
    )
    proba = cross_val_predict(
        clf, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=seed), method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(y, proba))


def _text_quality(real: list[str], synthetic: list[str]) -> TextQuality:
    from safesynth.gateway.audit.text_attacks import hashing_vectors

    def lengths(texts: list[str]) -> tuple[F64, F64]:
        chars = np.asarray([len(t) for t in texts], dtype=np.float64)
        words = np.asarray([len(t.split()) for t in texts], dtype=np.float64)
        return chars, words

    rc, rw = lengths(real)
    sc, sw = lengths(synthetic)
    mr = np.asarray(hashing_vectors(real).mean(axis=0)).ravel()
    ms = np.asarray(hashing_vectors(synthetic).mean(axis=0)).ravel()
    denom = float(np.linalg.norm(mr) * np.linalg.norm(ms))
    return TextQuality(
        real_chars_mean=float(rc.mean()) if rc.size else 0.0,
        synthetic_chars_mean=float(sc.mean()) if sc.size else 0.0,
        real_words_median=float(np.median(rw)) if rw.size else 0.0,
        synthetic_words_median=float(np.median(sw)) if sw.size else 0.0,
        real_words_p95=float(np.percentile(rw, 95)) if rw.size else 0.0,
        synthetic_words_p95=float(np.percentile(sw, 95)) if sw.size else 0.0,
        empty_share_synthetic=float(np.mean([not t for t in synthetic])) if synthetic else 0.0,
        embedding_mmd=float(np.sum((mr - ms) ** 2)),
        centroid_cosine=float(mr @ ms / denom) if denom > 0 else 0.0,
    )


def _text_utility(
    encoder: MixedEncoder, er: EncodedTable, et: EncodedTable, es: EncodedTable, target: str, notes: list[str]
) -> list[UtilityResult]:
    from scipy.sparse import hstack
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    from safesynth.gateway.audit.text_attacks import hashing_vectors

    def feats(t: EncodedTable) -> Any:
        return hstack([hashing_vectors(t.texts[c]) for c in encoder.text]).tocsr()

    out: list[UtilityResult] = []
    x_test, y_test = feats(et), et.codes[target]
    for source, t in (("synthetic", es), ("real", er)):
        y = t.codes[target]
        if np.unique(y).size < 2:
            notes.append(f"text utility: the {source} data has a single {target!r} class")
            out.append(UtilityResult("text_logistic_regression", source, "accuracy", None))
            continue
        model = LogisticRegression(max_iter=500).fit(feats(t), y)
        out.append(
            UtilityResult(
                "text_logistic_regression",
                source,
                "accuracy",
                float(accuracy_score(y_test, model.predict(x_test))),
            )
        )
    return out
