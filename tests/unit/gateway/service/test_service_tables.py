"""Reading private tables: schema conversion, limits, hostile cells, formula neutralization."""

from __future__ import annotations

import pandas as pd
import pytest

from safesynth.gateway.service.datasets import row_count_bucket
from safesynth.gateway.service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from safesynth.gateway.service.tables import format_for, neutralize_formulas, read_table, to_parquet_bytes
from safesynth.sdk.schema import DatasetSchema

SCHEMA = DatasetSchema.model_validate(
    {
        "columns": [
            {"name": "age", "kind": "numeric", "lower": 0, "upper": 120},
            {"name": "city", "kind": "categorical"},
            {"name": "note", "kind": "text", "max_length": 50},
        ]
    }
)


def _read(data: bytes, **kw: int) -> pd.DataFrame:
    return read_table(
        data, "csv", SCHEMA, max_rows=kw.get("max_rows", 100), max_field_chars=kw.get("chars", 1000)
    )


def test_csv_is_converted_by_kind_and_extra_columns_dropped() -> None:
    frame = _read(b"age,city,note,secret\n30,Paris,hi,x\n,Lyon,,y\n41.5,=cmd|' /C calc'!A0,ok,z\n")
    assert list(frame.columns) == ["age", "city", "note"]
    assert frame["age"].dtype == "float64"
    assert frame["age"].isna().sum() == 1
    assert frame["city"][2] == "=cmd|' /C calc'!A0"  # kept as plain text, never evaluated


def test_parquet_roundtrip() -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0], "city": ["a", "b"], "note": ["x", None]})
    out = read_table(to_parquet_bytes(frame), "parquet", SCHEMA, max_rows=10, max_field_chars=100)
    assert out["city"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"age,city\n1,a\n2,b\n", InvalidRequest),  # missing column
        (b"age,city,note\nold,a,x\n2,b,y\n", InvalidRequest),  # wrong type
        (b"age,city,note\n1,a,x\n", InvalidRequest),  # too few rows
        (b"", InvalidRequest),  # empty
        (b"age,city,note\n1,a," + b"x" * 60 + b"\n2,b,y\n", PayloadTooLarge),  # over max_length
        (b"age,city,note\ninf,a,x\n2,b,y\n", InvalidRequest),
        (b"age,city,note\n1,\xff\xfe,x\n2,b,y\n", InvalidRequest),  # not UTF-8
        (b'age,city,note\n1,"unterminated,x\n2,b,y\n', InvalidRequest),
    ],
)
def test_bad_tables_are_refused(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        _read(data)


def test_row_limit() -> None:
    rows = b"age,city,note\n" + b"1,a,x\n" * 11
    with pytest.raises(PayloadTooLarge):
        _read(rows, max_rows=10)


def test_huge_field_refused_by_global_limit() -> None:
    schema = DatasetSchema.model_validate({"columns": [{"name": "t", "kind": "text"}]})
    data = b"t\n" + b"y" * 5000 + b"\nz\n"
    with pytest.raises(PayloadTooLarge):
        read_table(data, "csv", schema, max_rows=10, max_field_chars=1000)


def test_format_for() -> None:
    assert format_for("x.CSV", None) == "csv"
    assert format_for("x.bin", "parquet") == "parquet"
    with pytest.raises(UnsupportedMediaType):
        format_for("x.xlsx", None)


def test_neutralize_formulas() -> None:
    frame = pd.DataFrame({"a": ["=1+1", "+x", "-y", "@z", "ok", None], "n": [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    out = neutralize_formulas(frame)
    assert out["a"].tolist()[:5] == ["'=1+1", "'+x", "'-y", "'@z", "ok"]
    assert out["n"].tolist()[0] == -1.0


@pytest.mark.parametrize(
    ("n", "bucket"), [(0, "0"), (1, "1-9"), (9, "1-9"), (10, "10-99"), (32561, "10000-99999")]
)
def test_row_count_bucket(n: int, bucket: str) -> None:
    assert row_count_bucket(n) == bucket
