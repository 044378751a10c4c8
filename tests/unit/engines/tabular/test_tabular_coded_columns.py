"""The tabular engine's release hint: its categorical columns are exactly ``labels[codes]``."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from tests.unit.engines.tabular.conftest import small_schema, small_table

from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import EngineContext, EngineOutput, SynthesisRequest
from safesynth.gateway.engines.tabular.engine import TabularEngine
from safesynth.gateway.service.release_encoding import encode_release
from safesynth.gateway.service.tables import to_parquet_bytes

ENGINE = TabularEngine()


@pytest.mark.parametrize(("public", "rows"), [(False, 300), (True, 250), (False, 0)])
def test_the_hint_matches_the_table(public: bool, rows: int) -> None:
    schema = small_schema(public=public)
    plan = ENGINE.plan(schema, SynthesisRequest("tabular", 2.0, 1e-6, rows=rows or None))
    output = ENGINE.run(plan, schema, small_table(), EngineContext(rng=RandomSource.seeded(5)))
    table = output.table
    if rows == 0:  # with rows None the DP count decides the size: only its columns are checked
        rows = len(table)
    assert set(output.coded_columns) == {"grade", "city"}  # the categorical columns, nothing else
    for name, (codes, labels) in output.coded_columns.items():
        assert len(codes) == rows == len(table)
        expected = np.array(labels, dtype=object)[codes]
        assert table[name].dtype == object
        assert table[name].tolist() == expected.tolist()  # element by element, None for null
    # The release encoded with the hint reads back like pandas' own file of the same table.
    data = encode_release(table, output.coded_columns)
    back = pd.read_parquet(io.BytesIO(data))
    pd.testing.assert_frame_equal(back, pd.read_parquet(io.BytesIO(to_parquet_bytes(table))))


def test_the_hint_is_read_only_and_empty_by_default() -> None:
    output = EngineOutput(table=pd.DataFrame({"a": [1]}))
    assert dict(output.coded_columns) == {}
    with pytest.raises(TypeError):
        output.coded_columns["a"] = None  # type: ignore[index]
