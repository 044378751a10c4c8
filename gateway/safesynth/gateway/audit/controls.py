"""Control releases that validate the audit: leaky ones it must flag, honest ones it must not.

Used by the audit's tests and by ``benchmarks/audit.py`` (the detection-power table). None of them is
an engine: they are deliberately simple mechanisms with a known answer.

* :func:`verbatim_copies`: training rows, copied (the worst case);
* :func:`mixed_copies`: a share of copied training rows mixed into an independent sample;
* :func:`jittered_copies`: copied rows with small noise on every numeric value;
* :func:`randomized_response`: per-record local DP (k-ary randomized response on categories, Laplace on
  numbers clipped to bounds; epsilon split evenly over the columns). Honest at the stated epsilon; with
  ``noise_factor=1/1000`` it is the "DP mechanism with 1000x too little noise".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from safesynth.gateway.audit.errors import InvalidAuditInput
from safesynth.sdk.schema import ColumnKind, DatasetSchema

__all__ = ["jittered_copies", "mixed_copies", "randomized_response", "verbatim_copies"]


def _sample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    idx = rng.choice(len(df), n, replace=n > len(df))
    return df.iloc[idx].reset_index(drop=True)


def verbatim_copies(train: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` training rows, copied verbatim (without replacement when possible)."""
    return _sample(train, n, rng)


def mixed_copies(
    train: pd.DataFrame, independent: pd.DataFrame, fraction: float, rng: np.random.Generator
) -> pd.DataFrame:
    """``len(independent)`` rows: a ``fraction`` of copied training rows, the rest independent rows."""
    if not 0.0 <= fraction <= 1.0:
        raise InvalidAuditInput("fraction must be in [0, 1]", detail={"parameter": "fraction"})
    n = len(independent)
    k = round(fraction * n)
    out = pd.concat([_sample(independent, n - k, rng), _sample(train, k, rng)], ignore_index=True)
    return out.iloc[rng.permutation(n)].reset_index(drop=True)


def jittered_copies(
    train: pd.DataFrame, schema: DatasetSchema, n: int, rng: np.random.Generator, *, scale: float = 0.02
) -> pd.DataFrame:
    """``n`` copied training rows with Gaussian noise of ``scale`` x the column's std on numbers."""
    out = _sample(train, n, rng)
    for spec in schema.columns:
        if spec.kind is ColumnKind.NUMERIC:
            x = pd.to_numeric(out[spec.name], errors="coerce").to_numpy(dtype=float)
            sd = float(np.nanstd(x)) if np.isfinite(x).any() else 0.0
            x = x + rng.normal(0.0, scale * sd if sd > 0 else scale, size=n)
            out[spec.name] = x
    return out


def randomized_response(
    train: pd.DataFrame,
    schema: DatasetSchema,
    *,
    epsilon: float,
    rng: np.random.Generator,
    noise_factor: float = 1.0,
) -> pd.DataFrame:
    """Each training row, randomised locally: epsilon-LDP per row when ``noise_factor`` is 1.

    The budget is split evenly over the categorical and numeric columns. Categories: keep the value with
    probability e^e / (e^e + k - 1), else a uniform other category (schema categories, else those seen).
    Numbers: Laplace noise of scale (upper - lower) / e, clipped to [lower, upper] (schema bounds, else
    the observed range). Text columns are blanked. ``noise_factor`` multiplies every noise scale (the
    categorical epsilon is divided by it): 1/1000 is a badly broken mechanism.
    """
    if not (math.isfinite(epsilon) and epsilon > 0 and noise_factor > 0):
        raise InvalidAuditInput("epsilon and noise_factor must be positive", detail={"parameter": "epsilon"})
    cols = [c for c in schema.columns if c.kind in (ColumnKind.CATEGORICAL, ColumnKind.NUMERIC)]
    eps_col = epsilon / max(1, len(cols)) / noise_factor
    out = train.reset_index(drop=True).copy()
    n = len(out)
    for spec in schema.columns:
        if spec.kind is ColumnKind.TEXT:
            out[spec.name] = ""
        elif spec.kind is ColumnKind.CATEGORICAL:
            values = out[spec.name].astype(object)
            cats = (
                list(spec.categories)
                if spec.categories is not None
                else sorted({str(v) for v in values.dropna().tolist()})
            )
            k = len(cats)
            if k < 2:
                continue
            keep_p = math.exp(min(eps_col, 700.0)) / (math.exp(min(eps_col, 700.0)) + k - 1)
            keep = rng.random(n) < keep_p
            current = values.map(lambda v: str(v) if v is not None and v == v else None).tolist()
            new: list[object] = []
            for i in range(n):
                if keep[i]:
                    new.append(values.iloc[i])
                else:
                    j = int(rng.integers(0, k - 1))
                    others = [c for c in cats if c != current[i]] if current[i] in cats else cats
                    new.append(others[min(j, len(others) - 1)])
            out[spec.name] = pd.Series(new, index=out.index, dtype=object)
        elif spec.kind is ColumnKind.NUMERIC:
            x = pd.to_numeric(out[spec.name], errors="coerce").to_numpy(dtype=float)
            lo = (
                spec.lower if spec.lower is not None else float(np.nanmin(x)) if np.isfinite(x).any() else 0.0
            )
            hi = (
                spec.upper if spec.upper is not None else float(np.nanmax(x)) if np.isfinite(x).any() else 1.0
            )
            width = max(hi - lo, 1e-12)
            noisy = np.clip(x + rng.laplace(0.0, width / eps_col, size=n), lo, hi)
            if spec.integer:
                noisy = np.round(noisy)
            out[spec.name] = noisy
    return out
