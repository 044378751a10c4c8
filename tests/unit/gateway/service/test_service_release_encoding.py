"""Release encoding: the cheap encoder reads back exactly as pandas' own ``to_parquet`` file did."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.engines.base import CodedColumn
from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.release_encoding import encode_release
from safesynth.gateway.service.releases import ReleaseStore
from safesynth.gateway.service.tables import to_parquet_bytes

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=6)


def _pandas_bytes(frame: pd.DataFrame) -> bytes:
    """What the release store wrote before: pandas' own encoder."""
    return to_parquet_bytes(frame)


def _read(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """What a pandas reader gets for ``frame``: object text columns come back as ``str`` (pandas >= 3;
    nulls as NaN), except a column without any value (Arrow type null: object of None)."""
    text = [c for c in frame.columns if frame[c].dtype == object and frame[c].notna().any()]
    return frame.astype(dict.fromkeys(text, "str"))


def _assert_reads_like_pandas(frame: pd.DataFrame, data: bytes) -> None:
    """Same DataFrame as the frame (as read), as pandas' file, and the same stored schema metadata."""
    old = _pandas_bytes(frame)
    back = _read(data)
    pd.testing.assert_frame_equal(back, _read(old), check_dtype=True)
    pd.testing.assert_frame_equal(back, _as_read(frame), check_dtype=True)
    assert isinstance(back.index, pd.RangeIndex)
    # ARROW:schema and pandas metadata are those of the plain table (no dictionary, no Categorical).
    assert pq.read_metadata(io.BytesIO(data)).metadata == pq.read_metadata(io.BytesIO(old)).metadata


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, CodedColumn]]:
    """Mixed frames like an engine's output, with a correct hint for the coded columns."""
    n = draw(st.integers(0, 30))
    kinds = draw(st.lists(st.sampled_from(["coded", "text", "int", "float", "bool"]), min_size=1, max_size=6))
    columns: dict[str, Any] = {}
    hint: dict[str, CodedColumn] = {}
    for i, kind in enumerate(kinds):
        name = f"c{i}"
        if kind == "coded":
            labels = tuple(draw(st.lists(st.none() | TEXT, min_size=1, max_size=5)))
            codes = np.array(
                draw(st.lists(st.integers(0, len(labels) - 1), min_size=n, max_size=n)), np.int64
            )
            columns[name] = pd.Series(np.array(labels, dtype=object)[codes], dtype=object)
            hint[name] = CodedColumn(codes=codes, labels=labels)
        elif kind == "text":
            columns[name] = pd.Series(draw(st.lists(st.none() | TEXT, min_size=n, max_size=n)), dtype=object)
        elif kind == "int":
            values = draw(st.lists(st.none() | st.integers(-(2**40), 2**40), min_size=n, max_size=n))
            columns[name] = pd.array(values, dtype="Int64")
        elif kind == "float":
            floats = draw(st.lists(st.floats(allow_infinity=False), min_size=n, max_size=n))  # NaN: null
            columns[name] = np.array(floats, dtype=np.float64)
        else:
            columns[name] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return pd.DataFrame(columns, index=pd.RangeIndex(n)), hint


@settings(max_examples=60, deadline=None)
@given(frames())
def test_round_trip_equals_the_frame_with_or_without_hint(
    case: tuple[pd.DataFrame, dict[str, CodedColumn]],
) -> None:
    frame, hint = case
    for data in (encode_release(frame, hint), encode_release(frame)):
        _assert_reads_like_pandas(frame, data)
        types = pq.read_table(io.BytesIO(data)).schema
        for name in hint:
            if frame[name].notna().any():
                assert types.field(name).type == pa.string()  # never a dictionary for readers
    assert encode_release(frame, hint) == encode_release(frame, hint)  # deterministic


def _coded_frame(n: int = 200, seed: int = 3) -> tuple[pd.DataFrame, dict[str, CodedColumn]]:
    rng = np.random.default_rng(seed)  # test data, not DP noise
    labels = ("paris", "lyon", "__other__", None)
    codes = rng.integers(0, len(labels), n)
    frame = pd.DataFrame(
        {
            "city": pd.Series(np.array(labels, dtype=object)[codes], dtype=object),
            "age": pd.array(rng.integers(18, 90, n), dtype="Int64"),
            "income": rng.gamma(2.0, 100.0, n),
            "note": pd.Series([f"t{i}" for i in range(n)], dtype=object),
        }
    )
    return frame, {"city": CodedColumn(codes=codes, labels=labels)}


def test_hinted_columns_get_dictionary_pages_and_only_numbers_get_statistics() -> None:
    frame, hint = _coded_frame()
    data = encode_release(frame, hint)
    _assert_reads_like_pandas(frame, data)
    group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert chunks["city"].has_dictionary_page
    assert chunks["income"].has_dictionary_page is False  # continuous numbers: no dictionary
    assert not chunks["city"].is_stats_set and not chunks["note"].is_stats_set
    assert chunks["age"].is_stats_set and chunks["income"].is_stats_set


def _bad_hints(frame: pd.DataFrame, good: CodedColumn) -> list[dict[str, CodedColumn]]:
    codes, labels = good
    return [
        {"city": CodedColumn(codes=codes[:-1], labels=labels)},  # wrong length
        {"city": CodedColumn(codes=np.append(codes, 0), labels=labels)},  # wrong length
        {"missing": good},  # no such column
        {"age": good},  # not an object column
        {"city": CodedColumn(codes=codes + len(labels), labels=labels)},  # codes out of range
        {"city": CodedColumn(codes=codes - len(labels), labels=labels)},  # negative codes
        {"city": CodedColumn(codes=codes.astype(np.float64), labels=labels)},  # not integers
        {"city": CodedColumn(codes=codes, labels=(*labels[:-1], 7))},  # type: ignore[arg-type]
        {"city": CodedColumn(codes=np.full(len(codes), 3), labels=labels)},  # only nulls
        {"city": CodedColumn(codes=codes.reshape(-1, 1), labels=labels)},  # not 1-D
    ]


@pytest.mark.parametrize("which", range(10))
def test_a_hint_that_does_not_fit_is_ignored(which: int) -> None:
    frame, hint = _coded_frame()
    bad = _bad_hints(frame, hint["city"])[which]
    data = encode_release(frame, bad)
    _assert_reads_like_pandas(frame, data)
    assert data == encode_release(frame)  # the hint was ignored: the plain encoding


def test_odd_frames_still_encode() -> None:
    cases = [
        pd.DataFrame({"x": pd.Series([], dtype=object), "y": pd.Series([], dtype="Int64")}),  # 0 rows
        pd.DataFrame({"x": pd.Series([None, None], dtype=object), "y": [np.nan, np.nan]}),  # all null
        pd.DataFrame({"b": [True, False], "nb": pd.array([True, None], dtype="boolean")}),
        pd.DataFrame({"s": pd.Series(["a", None], dtype="str")}),
        pd.DataFrame(index=pd.RangeIndex(3)),  # no columns
        pd.DataFrame({"a": [1, 2]}, index=[7, 9]),  # the index is dropped, as before
    ]
    for frame in cases:
        data = encode_release(frame)
        pd.testing.assert_frame_equal(_read(data), _read(_pandas_bytes(frame)))
        assert (
            pq.read_metadata(io.BytesIO(data)).metadata
            == pq.read_metadata(io.BytesIO(_pandas_bytes(frame))).metadata
        )


def test_attrs_are_kept_like_pandas() -> None:
    frame, hint = _coded_frame(20)
    frame.attrs = {"source": "engine"}
    data = encode_release(frame, hint)
    _assert_reads_like_pandas(frame, data)  # the same PANDAS_ATTRS key as pandas writes
    assert _read(data).attrs == {"source": "engine"}


def test_repeated_labels_keep_every_code_right() -> None:
    # Parquet's dictionary encoder merges repeated dictionary values: the encoder must not give it any
    # (a schema category named like OTHER would repeat a label).
    labels = ("a", "__other__", "a", None, "__other__", "b")
    codes = np.array([2, 0, 4, 1, 5, 3, 2, 5, 4], dtype=np.int64)
    frame = pd.DataFrame({"c": pd.Series(np.array(labels, dtype=object)[codes], dtype=object)})
    data = encode_release(frame, {"c": CodedColumn(codes=codes, labels=labels)})
    _assert_reads_like_pandas(frame, data)
    assert data == encode_release(frame, {"c": CodedColumn(codes=codes, labels=labels)})


def test_the_file_holds_no_label_without_a_row() -> None:
    # The engine's labels include categories it sampled no row of: they must not reach the file.
    labels = ("a", "b", "never-sampled", None)
    codes = np.array([0, 1, 1, 3, 0], dtype=np.int64)
    frame = pd.DataFrame({"c": pd.Series(np.array(labels, dtype=object)[codes], dtype=object)})
    data = encode_release(frame, {"c": CodedColumn(codes=codes, labels=labels)})
    _assert_reads_like_pandas(frame, data)
    stored = pq.read_table(io.BytesIO(data), read_dictionary=["c"]).column("c").chunk(0)
    assert pa.types.is_dictionary(stored.type)  # the dictionary pages came from the hint
    assert stored.dictionary.to_pylist() == ["a", "b"]
    assert b"never-sampled" not in data


def test_release_store_writes_the_hinted_encoding(tmp_path: Path) -> None:
    frame, hint = _coded_frame()
    store = ReleaseStore(tmp_path / "releases", StateDB(tmp_path / "state.sqlite"))
    digest, data = store.write(frame, hint)
    assert data == encode_release(frame, hint)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.path(digest).read_bytes() == data
    pd.testing.assert_frame_equal(store.load(digest), _as_read(frame))
