"""The common encoding: canonical values, exact-match hashes, distances, column checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.audit import ColumnsMismatch
from safesynth.gateway.audit.distances import scan
from safesynth.gateway.audit.encoding import MixedEncoder, _canon_cat, _canon_series, check_columns
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=False, width=64),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=20), st.sampled_from(["object", "infer"]))
def test_vectorised_canonical_values_equal_the_scalar_rule(items: list[object], dtype: str) -> None:
    s = pd.Series(items, dtype=object) if dtype == "object" else pd.Series(items)
    assert list(_canon_series(s)) == [_canon_cat(v) for v in s.tolist()]


SCHEMA = DatasetSchema(
    columns=(
        ColumnSpec(name="n", kind=ColumnKind.NUMERIC),
        ColumnSpec(name="c", kind=ColumnKind.CATEGORICAL),
        ColumnSpec(name="t", kind=ColumnKind.TEXT),
        ColumnSpec(name="id", kind=ColumnKind.IDENTIFIER),
    )
)


def test_hashes_match_across_representations_and_distances_are_gower_like() -> None:
    a = pd.DataFrame(
        {"n": [39, 40.0, None], "c": ["x", "y", None], "t": ["Hi  there", "b", None], "id": [1, 2, 3]}
    )
    b = pd.DataFrame({"n": ["39", 40, np.nan], "c": ["x", "y", np.nan], "t": ["hi there", "c", ""]})
    enc = MixedEncoder(SCHEMA, a, [a, b])
    ea, eb = enc.encode(a), enc.encode(b)
    assert np.array_equal(ea.row_hash, eb.row_hash)  # text and identifier columns are not part of the row
    assert ea.texts["t"] == ["hi there", "b", ""]
    res = scan(ea.embedding, eb.embedding, bandwidth=0.5)
    assert np.allclose(res.nearest_distance, 0.0) and res.nearest_index.tolist() == [0, 1, 2]
    # a categorical mismatch costs exactly 1 in squared distance
    c = pd.DataFrame({"n": [39], "c": ["y"], "t": ["z"]})
    d = scan(enc.encode(c).embedding, ea.embedding[:1], bandwidth=0.5).nearest_distance[0]
    assert d == pytest.approx(1.0, abs=1e-3)


def test_check_columns() -> None:
    ok = pd.DataFrame({"n": [1], "c": ["x"], "t": ["a"]})
    check_columns(ok, SCHEMA, role="synthetic")  # the identifier column may be absent
    with pytest.raises(ColumnsMismatch):
        check_columns(ok.drop(columns=["t"]), SCHEMA, role="synthetic")
    with pytest.raises(ColumnsMismatch):
        check_columns(ok.assign(extra=1), SCHEMA, role="synthetic")
