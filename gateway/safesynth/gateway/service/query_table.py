"""The private rows a DP statistic reads, as cached numpy columns (built once per dataset).

Building applies the privacy unit's contribution bound once (at most ``max_rows_per_person`` rows per
person, the first ones), so every query of a dataset sees the same bounded rows. Columns are
converted lazily, on first use, and kept: a numeric column as ``float64`` with NaN for missing
values, any other column as integer codes of its values' strings (-1 for missing). Filters are evaluated as
numpy masks; a missing value matches no filter (not even ``ne`` or ``not_in``).

A table is read-only once built and safe to share between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from safesynth.sdk.models import Filter
from safesynth.sdk.schema import ColumnKind, DatasetSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["QueryTable", "bound_contributions"]


def bound_contributions(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """At most ``max_rows_per_person`` rows per person (the first ones; rows-unit data unchanged)."""
    unit = schema.privacy_unit
    if unit.kind != "person" or unit.person_column is None:
        return frame
    return frame.groupby(unit.person_column, sort=False, dropna=False).head(unit.max_rows_per_person)


class QueryTable:
    """The contribution-bounded rows of one dataset with lazily converted numpy columns."""

    def __init__(self, frame: pd.DataFrame, schema: DatasetSchema) -> None:
        self.schema = schema
        self.frame = bound_contributions(frame, schema).reset_index(drop=True)
        self.rows = len(self.frame)
        self._lock = threading.Lock()
        self._numeric: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}

    def is_numeric(self, column: str) -> bool:
        """Whether the schema declares ``column`` numeric."""
        return self.schema.column(column).kind is ColumnKind.NUMERIC

    def numeric(self, column: str) -> np.ndarray:
        """``column`` as float64, NaN where missing or not a number (cached; do not modify)."""
        import numpy as np
        import pandas as pd

        with self._lock:
            cached = self._numeric.get(column)
        if cached is not None:
            return cached
        values = pd.to_numeric(self.frame[column], errors="coerce").astype("Float64")
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        array.setflags(write=False)
        with self._lock:
            self._numeric.setdefault(column, array)
            return self._numeric[column]

    def codes(self, column: str) -> tuple[np.ndarray, dict[str, int]]:
        """``column`` as integer codes (-1 where missing) and the code of each distinct value's string.

        Values are compared as strings (the schema's categories are strings). Cached; do not modify.
        """
        import numpy as np
        import pandas as pd

        with self._lock:
            cached = self._codes.get(column)
        if cached is not None:
            return cached
        raw_codes, uniques = pd.factorize(self.frame[column], use_na_sentinel=True)
        index: dict[str, int] = {}
        remap = np.empty(len(uniques) + 1, dtype=np.int64)
        remap[-1] = -1  # the missing sentinel -1 indexes the last slot
        for i, value in enumerate(uniques):
            remap[i] = index.setdefault(str(value), len(index))
        codes = remap[np.asarray(raw_codes, dtype=np.int64)]
        codes.setflags(write=False)
        with self._lock:
            self._codes.setdefault(column, (codes, index))
            return self._codes[column]

    def present(self, column: str) -> np.ndarray:
        """Rows where ``column`` has a value."""
        import numpy as np

        if self.is_numeric(column):
            return np.asarray(~np.isnan(self.numeric(column)), dtype=bool)
        return np.asarray(self.codes(column)[0] >= 0, dtype=bool)

    def label_counts(self, column: str, selected: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """How many ``selected`` rows hold each of ``labels`` (as strings), in order."""
        import numpy as np

        codes, index = self.codes(column)
        chosen = codes[selected]
        tally = np.bincount(chosen[chosen >= 0], minlength=len(index))
        counts = [int(tally[index[label]]) if label in index else 0 for label in labels]
        return np.array(counts, dtype=np.int64)

    def _filter_mask(self, flt: Filter) -> np.ndarray:
        import numpy as np

        values: Sequence[Any] = flt.value if isinstance(flt.value, tuple) else (flt.value,)
        if self.is_numeric(flt.column):
            column = self.numeric(flt.column)
            present: np.ndarray = ~np.isnan(column)
            target = [float(v) for v in values]
            with np.errstate(invalid="ignore"):
                if flt.op in ("in", "not_in"):
                    inside = np.isin(column, np.asarray(target, dtype=np.float64))
                    return present & (inside if flt.op == "in" else ~inside)
                compare = {
                    "eq": np.equal,
                    "ne": np.not_equal,
                    "lt": np.less,
                    "le": np.less_equal,
                    "gt": np.greater,
                    "ge": np.greater_equal,
                }[flt.op]
                return np.asarray(present & compare(column, target[0]), dtype=bool)
        if flt.op not in ("eq", "ne", "in", "not_in"):
            raise ValueError(f"operator {flt.op!r} applies to numeric columns only")
        codes, index = self.codes(flt.column)
        wanted = np.array(sorted({index[str(v)] for v in values if str(v) in index}), dtype=np.int64)
        hits = np.isin(codes, wanted)
        return hits if flt.op in ("eq", "in") else (codes >= 0) & ~hits

    def mask(self, filters: Sequence[Filter]) -> np.ndarray:
        """The rows where every filter holds."""
        import numpy as np

        selected = np.ones(self.rows, dtype=bool)
        for flt in filters:
            selected &= self._filter_mask(flt)
        return selected
