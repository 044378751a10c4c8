"""Release encoding: a synthetic table as Parquet bytes, cheaply, read back as pandas' own file would be.

:func:`encode_release` stores what ``frame.to_parquet(index=False)`` stores: the same key-value
metadata (``ARROW:schema``, ``pandas``, ``PANDAS_ATTRS``), so the same Arrow schema and the same
DataFrame for every reader (``pd.read_parquet`` gives what it gave for pandas' file). Only the
Parquet layout differs, for less CPU:

- min/max statistics only for columns that are not strings (string statistics cost much to compute
  and are of no use for a release file);
- no dictionary encoding for floating-point columns (synthetic numbers are drawn inside their bins,
  so nearly every value is distinct: hashing them costs time and the dictionary makes the file larger);
- the columns are converted to Arrow on the calling thread (pyarrow's thread pool costs more than it
  saves on a release-sized table: object columns need the GIL anyway);
- for the columns an engine decoded from integer codes (``coded_columns``: ``frame[name]`` equals
  ``labels[codes]``, see :class:`~safesynth.gateway.engines.base.CodedColumn`), an Arrow dictionary
  array is built from the codes, so Parquet gets its dictionary pages without hashing every string.
  The file still declares those columns plain ``string``: it is written without pyarrow's own schema
  (``store_schema=False``) and the ``ARROW:schema`` and ``pandas`` metadata of the plain table (what
  ``pa.Table.from_pandas(frame)`` gives) are added to the footer. Readers get plain strings, never a
  dictionary or a Categorical.

A hint that does not fit its column (column missing or not ``object``, wrong length, a code out of
range, a label that is not a string or None, no non-null value) is ignored for that column: the column
is converted like any other. A hint that fits the shape is trusted to be exact (the engine's
contract). The output is deterministic: the same frame and hint always give the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from safesynth.gateway.engines.base import CodedColumn

__all__ = ["encode_release"]

_ARROW_SCHEMA_KEY = b"ARROW:schema"
_PANDAS_ATTRS_KEY = b"PANDAS_ATTRS"


def encode_release(frame: pd.DataFrame, coded_columns: Mapping[str, CodedColumn] | None = None) -> bytes:
    """``frame`` as Parquet bytes (no index), reading back like ``frame.to_parquet(index=False)``'s.

    ``coded_columns`` is the engine's optional hint (``EngineOutput.coded_columns``); see the module
    docstring for what is checked and what is trusted.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(frame.columns)
    unique_text_names = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    dictionaries: dict[str, pa.DictionaryArray] = {}
    if coded_columns and unique_text_names:
        for name, hint in coded_columns.items():
            array = _dictionary_array(frame, name, hint) if name in names else None
            if array is not None:
                dictionaries[name] = array
    rest = frame.drop(columns=list(dictionaries)) if dictionaries else frame
    converted = pa.Table.from_pandas(rest, preserve_index=False, nthreads=1)
    if dictionaries:
        fields = [pa.field(n, pa.string()) if n in dictionaries else converted.schema.field(n) for n in names]
        # The plain table's schema and pandas metadata, from pyarrow's own code on a 0-row copy.
        stub = frame.iloc[:0]
        plain = pa.Table.from_pandas(stub, schema=pa.schema(fields), preserve_index=False, nthreads=1).schema
        columns = [dictionaries[n] if n in dictionaries else converted.column(n) for n in names]
        table = pa.Table.from_arrays(columns, names=names)
    else:
        plain = converted.schema
        table = converted
    metadata = dict(plain.metadata or {})
    if frame.attrs:  # as pandas' to_parquet does
        metadata[_PANDAS_ATTRS_KEY] = json.dumps(frame.attrs).encode("utf-8")
        plain = plain.with_metadata(metadata)
    options: dict[str, Any] = {
        "write_statistics": [f.name for f in plain if not _is_text_or_nested(f.type)],
        "use_dictionary": [f.name for f in plain if not pa.types.is_floating(f.type)],
    }
    sink = pa.BufferOutputStream()
    if not dictionaries:
        table = table.replace_schema_metadata(metadata)
        with pq.ParquetWriter(sink, table.schema, **options) as writer:
            writer.write_table(table)
    else:
        with pq.ParquetWriter(sink, table.schema, store_schema=False, **options) as writer:
            writer.write_table(table)
            stored = {**metadata, _ARROW_SCHEMA_KEY: base64.b64encode(plain.serialize().to_pybytes())}
            writer.add_key_value_metadata(stored)
    return bytes(sink.getvalue().to_pybytes())


def _dictionary_array(frame: pd.DataFrame, name: str, hint: CodedColumn) -> pa.DictionaryArray | None:
    """The column as a dictionary array built from ``hint``; None when the hint does not fit."""
    import numpy as np
    import pyarrow as pa

    column = frame[name]
    codes = np.asarray(hint[0])
    labels = tuple(hint[1])
    if (
        column.dtype != np.dtype(object)
        or codes.ndim != 1
        or codes.dtype.kind not in "iu"
        or len(codes) != len(column)
        or not all(label is None or isinstance(label, str) for label in labels)
        or len(codes) == 0
        or int(codes.min()) < 0
        or int(codes.max()) >= len(labels)
    ):
        return None
    # The dictionary holds each non-null label that occurs, once: the file holds the table's values
    # and nothing else (no label without a row), and Parquet's dictionary encoder merges repeated
    # values, which would shift every later index. ``position``: label index -> dictionary index, -1
    # for a null label (or one that does not occur).
    used = np.zeros(len(labels), dtype=bool)
    used[codes] = True
    dictionary: dict[str, int] = {}
    position = np.full(len(labels), -1, dtype=np.int32)
    for i, label in enumerate(labels):
        if label is not None and used[i]:
            position[i] = dictionary.setdefault(label, len(dictionary))
    indices = position[codes]
    null = indices < 0
    if null.all():  # pyarrow types an all-null column as null, not string: convert it like pandas
        return None
    if null.any():
        indices[null] = 0  # a valid index under the null mask
        array = pa.array(indices, type=pa.int32(), mask=null)
    else:
        array = pa.array(indices, type=pa.int32())
    # Every index is in range (checked above), so pyarrow's own check is skipped.
    return pa.DictionaryArray.from_arrays(array, pa.array(list(dictionary), type=pa.string()), safe=False)


def _is_text_or_nested(kind: Any) -> bool:
    """Whether a column of Arrow type ``kind`` gets no statistics (strings, binaries, dictionaries,
    nested types whose leaves are not named by the column's name)."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_dictionary(kind)
        or pa.types.is_nested(kind)
    )
