"""Reading a private table (CSV or Parquet) into a DataFrame that fits its schema, with limits.

CSV is read with every cell as text (no type guessing, nothing evaluated: a cell like ``=HYPERLINK()``
stays a plain string), then each column is converted by its schema kind. Problems are
:class:`~safesynth.gateway.service.errors.InvalidRequest` or ``PayloadTooLarge`` naming the column;
they are shown to the admin who registers the data (its owner), never to analysts.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from safesynth.gateway.service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from safesynth.sdk.schema import ColumnKind, DatasetSchema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableFormat", "format_for", "neutralize_formulas", "read_table", "to_parquet_bytes"]

TableFormat = Literal["csv", "parquet"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def format_for(name: str, declared: str | None) -> TableFormat:
    """The table format: ``declared`` if given, else from the file name's suffix."""
    fmt = declared or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(Path(name).suffix.lower())
    if fmt == "csv":
        return "csv"
    if fmt == "parquet":
        return "parquet"
    raise UnsupportedMediaType(f"cannot tell the format of {Path(name).name!r}: use .csv or .parquet")


def _load(source: Path | bytes, fmt: TableFormat, max_rows: int) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    handle: io.BytesIO | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if fmt == "csv":
            return pd.read_csv(
                handle,
                dtype=str,
                keep_default_na=True,
                nrows=max_rows + 1,
                encoding="utf-8",
                engine="c",
                skipinitialspace=False,
            )
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(handle)
        if parquet.metadata.num_rows > max_rows:
            raise PayloadTooLarge(f"the table has more than {max_rows} rows (the gateway's limit)")
        frame: pd.DataFrame = parquet.read().to_pandas()
        return frame
    except (PayloadTooLarge, InvalidRequest):
        raise
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV file is not valid UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InvalidRequest("the table is empty") from None
    except (pd.errors.ParserError, ValueError, pa.ArrowException, OSError) as exc:
        raise InvalidRequest(f"cannot read the {fmt} table: {str(exc)[:300]}") from None


def read_table(
    source: Path | bytes,
    fmt: TableFormat,
    schema: DatasetSchema,
    *,
    max_rows: int,
    max_field_chars: int,
) -> pd.DataFrame:
    """The table's schema columns, converted by kind; extra columns are dropped."""
    import pandas as pd

    raw = _load(source, fmt, max_rows)
    if len(raw) > max_rows:
        raise PayloadTooLarge(f"the table has more than {max_rows} rows (the gateway's limit)")
    if len(raw) < 2:
        raise InvalidRequest("the table needs at least 2 rows")
    raw.columns = [str(c) for c in raw.columns]
    missing = [c.name for c in schema.columns if c.name not in raw.columns]
    if missing:
        raise InvalidRequest(f"columns named in the schema are missing from the table: {missing[:20]}")
    out: dict[str, pd.Series] = {}
    for spec in schema.columns:
        column = raw[spec.name]
        if spec.kind is ColumnKind.NUMERIC:
            numbers = pd.to_numeric(column, errors="coerce")
            bad = int((column.notna() & numbers.isna()).sum())
            if bad:
                raise InvalidRequest(f"column {spec.name!r}: {bad} values are not numbers")
            finite = numbers.dropna()
            if len(finite) and not finite.abs().lt(float("inf")).all():
                raise InvalidRequest(f"column {spec.name!r}: infinite values are not allowed")
            out[spec.name] = numbers.astype("float64")
        else:
            text = column.astype("object").where(column.notna(), None)
            text = text.map(lambda v: v if v is None else str(v))
            lengths = text.dropna().map(len)
            limit = min(max_field_chars, spec.max_length or max_field_chars)
            if len(lengths) and int(lengths.max()) > limit:
                raise PayloadTooLarge(f"column {spec.name!r}: a value is longer than {limit} characters")
            out[spec.name] = text
    return pd.DataFrame(out)


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as Parquet bytes (no index)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that a spreadsheet would run as a formula start with ``'`` (OWASP)."""
    import pandas as pd

    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            out[name] = column.map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    return out
