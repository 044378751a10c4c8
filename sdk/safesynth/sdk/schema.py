"""The public description of a dataset: column kinds, public bounds and categories, the privacy unit.

Everything in a schema is *public*: it is written by the data owner, shown to analysts and recorded in
the ledger. A bound or a category list given here costs no privacy budget; a missing one must be
estimated by a DP mechanism whose cost the gateway charges.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ColumnKind", "ColumnSpec", "DatasetSchema", "PrivacyUnit"]

_Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
_Category = Annotated[str, Field(max_length=512)]


class ColumnKind(StrEnum):
    """How an engine treats a column."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    TEXT = "text"
    IDENTIFIER = "identifier"  # never synthesized from data; dropped or regenerated


class ColumnSpec(BaseModel):
    """One column. ``lower``/``upper`` and ``categories`` are public knowledge, not read from the data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _Name
    kind: ColumnKind
    description: str = Field(default="", max_length=2000)
    categories: tuple[_Category, ...] | None = Field(default=None, max_length=10_000)
    lower: float | None = None
    upper: float | None = None
    integer: bool = False
    max_length: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind is not ColumnKind.NUMERIC and (self.lower is not None or self.upper is not None):
            raise ValueError(f"column {self.name!r}: bounds apply to numeric columns only")
        if self.kind is not ColumnKind.CATEGORICAL and self.categories is not None:
            raise ValueError(f"column {self.name!r}: categories apply to categorical columns only")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"column {self.name!r}: categories must be distinct")
        for bound in (self.lower, self.upper):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"column {self.name!r}: bounds must be finite")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"column {self.name!r}: lower must be below upper")
        return self


class PrivacyUnit(BaseModel):
    """Whom the guarantee protects: one row, or one person with a bounded number of rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["row", "person"] = "row"
    person_column: _Name | None = None
    max_rows_per_person: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.kind == "person") != (self.person_column is not None):
            raise ValueError("privacy unit 'person' needs person_column, and only it")
        return self


class DatasetSchema(BaseModel):
    """The public schema of a dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: tuple[ColumnSpec, ...] = Field(min_length=1, max_length=1000)
    privacy_unit: PrivacyUnit = PrivacyUnit()
    description: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be distinct")
        unit = self.privacy_unit
        if unit.person_column is not None and unit.person_column not in names:
            raise ValueError(f"person_column {unit.person_column!r} is not a column")
        return self

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``; KeyError if there is none."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)
