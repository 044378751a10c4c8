"""Shared fixtures: Adult subsets (the registered table, an independent sample) and its schema."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from safesynth.gateway.audit import AuditDesign, make_design, split
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

#: The public data sets copied into the repository (provenance: tests/data/SOURCES.md).
DATA = Path(__file__).resolve().parents[2] / "data"
ADULT_NUMERIC = ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")


@cache
def adult() -> pd.DataFrame:
    """The Adult table without its split column (read once per session)."""
    return pd.read_csv(DATA / "adult.csv").drop(columns=["split"])


def adult_schema() -> DatasetSchema:
    """Adult's schema: six numeric columns, the rest categorical (categories not given: observed)."""
    return DatasetSchema(
        columns=tuple(
            ColumnSpec(name=c, kind=ColumnKind.NUMERIC if c in ADULT_NUMERIC else ColumnKind.CATEGORICAL)
            for c in adult().columns
        )
    )


@dataclass
class Scenario:
    """A registered table with its design and split, and an independent sample of the same population."""

    registered: pd.DataFrame
    independent: pd.DataFrame
    design: AuditDesign
    train: pd.DataFrame
    holdout: pd.DataFrame


def scenario(seed: int, *, n_registered: int = 6000, n_independent: int = 3000) -> Scenario:
    """Disjoint random subsets of Adult: the registered table and an independent sample."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(adult()))
    reg = adult().iloc[perm[:n_registered]].reset_index(drop=True)
    ind = adult().iloc[perm[n_registered : n_registered + n_independent]].reset_index(drop=True)
    design = make_design(len(reg), rng=rng)
    train, holdout = split(reg, design)
    return Scenario(reg, ind, design, train, holdout)
