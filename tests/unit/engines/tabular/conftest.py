"""Small private tables for the tabular engine's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema


def small_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Mixed columns with a strong dependence (grade follows score), nulls, an id column."""
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 101, n).astype(float)
    grade = np.where(score >= 50, "high", "low").astype(object)
    city = rng.choice(np.array(["paris", "lyon", "nice"], dtype=object), n, p=[0.5, 0.3, 0.2])
    city[rng.random(n) < 0.1] = None
    income = np.round(rng.lognormal(10, 1, n), 2)
    return pd.DataFrame(
        {"id": np.arange(1000, 1000 + n), "score": score, "grade": grade, "city": city, "income": income}
    )


def small_schema(*, public: bool = False) -> DatasetSchema:
    """The schema of ``small_table``: DP bounds/categories unless ``public``."""
    return DatasetSchema(
        columns=(
            ColumnSpec(name="id", kind=ColumnKind.IDENTIFIER),
            ColumnSpec(
                name="score",
                kind=ColumnKind.NUMERIC,
                integer=True,
                lower=0.0 if public else None,
                upper=100.0 if public else None,
            ),
            ColumnSpec(
                name="grade", kind=ColumnKind.CATEGORICAL, categories=("high", "low") if public else None
            ),
            ColumnSpec(
                name="city",
                kind=ColumnKind.CATEGORICAL,
                categories=("paris", "lyon", "nice") if public else None,
            ),
            ColumnSpec(name="income", kind=ColumnKind.NUMERIC, lower=0.0 if public else None),
        )
    )


@pytest.fixture
def table() -> pd.DataFrame:
    return small_table()
