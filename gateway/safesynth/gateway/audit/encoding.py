"""One mixed-type encoding shared by every attack and quality measure.

* categorical columns: the schema's categories (else those observed in the tables given to ``fit``),
  plus one code for null and one for "any other value"; embedded one-hot scaled by 1/sqrt(2), so two
  different values are at squared distance 1;
* numeric columns: the value's mid-rank in the reference table (a number in [0, 1], robust to heavy
  tails and outliers) plus a null indicator; null is a value of its own;
* text columns: normalised strings (kept apart; the text attacks use them);
* identifier columns: ignored.

The squared Euclidean distance of two embedded rows is thus close to a Gower distance: each column
contributes at most about 1. Rows also get a 64-bit hash of their canonical values for exact matching.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.audit.errors import ColumnsMismatch
from safesynth.sdk.schema import ColumnKind, DatasetSchema

__all__ = [
    "ColumnSlice",
    "EncodedTable",
    "MixedEncoder",
    "check_columns",
    "normalise_text",
    "take",
]

MAX_CATEGORIES = 200
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_WS = re.compile(r"\s+")
_NULL = "\x00<null>"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_columns(df: pd.DataFrame, schema: DatasetSchema, *, role: str) -> None:
    """Raise :class:`ColumnsMismatch` unless ``df`` has exactly the schema's non-identifier columns.

    Identifier columns may be absent (engines drop them); a column the schema does not name is refused
    (it could carry anything).
    """
    names = {str(c) for c in df.columns}
    if len(names) != len(df.columns):
        raise ColumnsMismatch(f"the {role} table has duplicate column names", detail={"role": role})
    required = {c.name for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER}
    allowed = {c.name for c in schema.columns}
    missing = sorted(required - names)
    extra = sorted(names - allowed)
    if missing or extra:
        raise ColumnsMismatch(
            f"the {role} table's columns differ from the dataset schema (missing {missing}, extra {extra})",
            detail={"role": role, "missing": missing, "extra": extra},
        )


def normalise_text(values: pd.Series) -> list[str]:
    """Lower-case, whitespace-collapsed strings; null becomes the empty string."""
    out: list[str] = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append("")
        else:
            out.append(_WS.sub(" ", str(v)).strip().lower())
    return out


def _canon_cat(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return _NULL
    if isinstance(v, float):
        if math.isnan(v):
            return _NULL
        if v.is_integer():
            return str(int(v))
    if isinstance(v, np.floating):
        return _canon_cat(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def _canon_series(s: pd.Series) -> npt.NDArray[np.object_]:
    """Canonical strings of a column's values (vectorised for string, integer and float columns)."""
    null = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
        out = s.astype(str).to_numpy(dtype=object)
    elif (
        pd.api.types.is_float_dtype(s.dtype)
        and not (np.abs(np.nan_to_num(x := s.to_numpy(dtype=np.float64, na_value=np.nan))) >= 2**53).any()
    ):
        integral = np.isfinite(x) & (x == np.floor(np.nan_to_num(x)))
        as_int = np.where(integral, np.nan_to_num(x), 0.0).astype(np.int64).astype(str)
        out = np.where(integral, as_int, x.astype(str)).astype(object)
    elif pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        out = np.asarray(s.astype(object).to_numpy(), dtype=object)
    else:
        return np.asarray([_canon_cat(v) for v in s.tolist()], dtype=object)
    out = np.array(out, dtype=object, copy=True)
    out[null] = _NULL
    return out


def _numeric(s: pd.Series) -> FloatArray:
    out = np.array(pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def _round_sig(x: FloatArray) -> FloatArray:
    """Round to 9 significant digits so that 39 and 39.0000000001 hash alike."""
    out = np.where(np.isnan(x), -1.2345e300, x)
    nz = (out != 0) & ~np.isnan(x)
    mag = np.floor(np.log10(np.abs(np.where(nz, out, 1.0))))
    scale = np.power(10.0, mag - 8)
    out = np.where(nz, np.round(out / scale) * scale, out)
    return out


@dataclass(frozen=True)
class ColumnSlice:
    """Where one column sits in the embedding."""

    name: str
    kind: str  # "categorical" or "numeric"
    start: int
    stop: int


@dataclass(frozen=True)
class EncodedTable:
    """One table, encoded. ``codes``: categorical codes; ``values``: numeric mid-ranks (NaN = null)."""

    n: int
    embedding: npt.NDArray[np.float32]
    codes: dict[str, IntArray]
    values: dict[str, FloatArray]
    row_hash: npt.NDArray[np.uint64]
    texts: dict[str, list[str]]


class MixedEncoder:
    """Fitted once per audit; encodes every table the same way."""

    def __init__(
        self, schema: DatasetSchema, reference: pd.DataFrame, observed: Sequence[pd.DataFrame]
    ) -> None:
        self.schema = schema
        self.categorical: list[str] = []
        self.numeric: list[str] = []
        self.text: list[str] = []
        self.categories: dict[str, list[str]] = {}
        self.ref_sorted: dict[str, FloatArray] = {}
        for spec in schema.columns:
            if spec.kind is ColumnKind.CATEGORICAL:
                self.categorical.append(spec.name)
                if spec.categories is not None:
                    cats = list(spec.categories)[:MAX_CATEGORIES]
                else:
                    counts: pd.Series = pd.concat(
                        [pd.Series(_canon_series(f[spec.name])) for f in observed if spec.name in f.columns]
                    ).value_counts()
                    cats = [str(c) for c in counts.index if c != _NULL][:MAX_CATEGORIES]
                    cats.sort()
                self.categories[spec.name] = cats
            elif spec.kind is ColumnKind.NUMERIC:
                self.numeric.append(spec.name)
                vals = _numeric(reference[spec.name])
                self.ref_sorted[spec.name] = np.sort(vals[~np.isnan(vals)])
            elif spec.kind is ColumnKind.TEXT:
                self.text.append(spec.name)
        self.slices: list[ColumnSlice] = []
        pos = 0
        for name in self.tabular_columns:
            if name in self.categories:
                width = len(self.categories[name]) + 2
                self.slices.append(ColumnSlice(name, "categorical", pos, pos + width))
            else:
                width = 2
                self.slices.append(ColumnSlice(name, "numeric", pos, pos + width))
            pos += width
        self.width = pos

    @property
    def tabular_columns(self) -> list[str]:
        """Categorical and numeric columns, in schema order."""
        return [c.name for c in self.schema.columns if c.name in self.categories or c.name in self.ref_sorted]

    def n_codes(self, name: str) -> int:
        """Number of codes of a categorical column (categories + null + other)."""
        return len(self.categories[name]) + 2

    def encode(self, df: pd.DataFrame) -> EncodedTable:
        """Encode ``df`` (which must hold every non-identifier schema column)."""
        n = len(df)
        emb = np.zeros((n, self.width), dtype=np.float32)
        codes: dict[str, IntArray] = {}
        values: dict[str, FloatArray] = {}
        hash_cols: dict[str, object] = {}
        for sl in self.slices:
            if sl.kind == "categorical":
                canon = _canon_series(df[sl.name])
                cats = self.categories[sl.name]
                k = len(cats)
                code = (
                    pd.Index(cats, dtype=object).get_indexer(pd.Index(canon, dtype=object)).astype(np.int64)
                )
                code = np.where(code >= 0, code, np.where(canon == _NULL, k, k + 1))
                codes[sl.name] = code
                emb[np.arange(n), sl.start + code] = _INV_SQRT2
                hash_cols[sl.name] = canon
            else:
                raw = _numeric(df[sl.name])
                ref = self.ref_sorted[sl.name]
                null = np.isnan(raw)
                if ref.size:
                    filled = np.where(null, 0.0, raw)
                    q = (np.searchsorted(ref, filled, "left") + np.searchsorted(ref, filled, "right")) / (
                        2.0 * ref.size
                    )
                else:
                    q = np.full(n, 0.5)
                q = np.where(null, np.nan, q)
                values[sl.name] = q
                emb[:, sl.start] = np.where(null, 0.0, q)
                emb[:, sl.start + 1] = null.astype(np.float32)
                hash_cols[sl.name] = _round_sig(raw)
        if hash_cols:
            row_hash = np.asarray(
                pd.util.hash_pandas_object(pd.DataFrame(hash_cols), index=False).to_numpy(), dtype=np.uint64
            )
        else:
            row_hash = np.zeros(n, dtype=np.uint64)
        texts = {name: normalise_text(df[name]) for name in self.text}
        return EncodedTable(n=n, embedding=emb, codes=codes, values=values, row_hash=row_hash, texts=texts)


def take(t: EncodedTable, idx: IntArray) -> EncodedTable:
    """The rows ``idx`` of an encoded table."""
    return EncodedTable(
        n=int(idx.size),
        embedding=t.embedding[idx],
        codes={k: v[idx] for k, v in t.codes.items()},
        values={k: v[idx] for k, v in t.values.items()},
        row_hash=t.row_hash[idx],
        texts={k: [v[int(i)] for i in idx] for k, v in t.texts.items()},
    )
