"""The audit design: row sets, membership coins, commitment, public vs private JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.audit import (
    AuditDesign,
    DatasetTooSmall,
    DesignMismatch,
    InvalidAuditInput,
    make_design,
    split,
)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 3000), frac=st.floats(0.05, 0.5), seed=st.integers(0, 2**32 - 1))
def test_row_sets_partition_the_table(n: int, frac: float, seed: int) -> None:
    d = make_design(n, holdout_fraction=frac, rng=np.random.default_rng(seed))
    train, unseen = set(d.train_rows.tolist()), set(d.unseen_rows.tolist())
    assert train.isdisjoint(unseen)
    assert train | unseen == set(range(n))
    assert set(d.members.tolist()) <= train
    assert set(d.non_members.tolist()) <= unseen
    assert set(d.holdout.tolist()).isdisjoint(d.pool.tolist())
    assert d.verify_commitment()


def test_membership_is_a_fair_coin() -> None:
    d = make_design(100_000, pool_size=20_000, rng=np.random.default_rng(3))
    # Binomial(20000, 1/2): sd 70.7; a 5-sd band fails with probability < 1e-6.
    assert abs(int(d.membership.sum()) - 10_000) < 5 * 70.8


def test_ledger_json_has_no_private_parts() -> None:
    d = make_design(500, rng=np.random.default_rng(1))
    public = d.to_ledger_json()
    text = json.dumps(public)
    assert public["commitment"]["digest"] == d.commitment
    for key in ("holdout", "pool", "membership", "salt"):
        assert key not in public
    assert d.salt.hex() not in text
    assert public["pool_size"] == d.pool.size and public["holdout_size"] == d.holdout.size


def test_private_json_round_trip_and_tamper_detection() -> None:
    d = make_design(500, rng=np.random.default_rng(2))
    obj = d.to_private_json()
    back = AuditDesign.from_private_json(json.loads(json.dumps(obj)))
    assert np.array_equal(back.membership, d.membership) and back.commitment == d.commitment
    flipped = dict(obj)
    bits = list(obj["membership"])
    bits[0] = "1" if bits[0] == "0" else "0"
    flipped["membership"] = "".join(bits)
    with pytest.raises(DesignMismatch):
        AuditDesign.from_private_json(flipped)


def test_commitment_is_salted() -> None:
    a = make_design(300, rng=np.random.default_rng(5))
    b = make_design(300, rng=np.random.default_rng(5))
    assert np.array_equal(a.membership, b.membership)
    assert a.commitment != b.commitment


def test_split_keeps_positions_as_index() -> None:
    df = pd.DataFrame({"x": np.arange(200)}, index=np.arange(200) * 7)
    d = make_design(200, rng=np.random.default_rng(0))
    train, holdout = split(df, d)
    assert train.index.tolist() == d.train_rows.tolist()
    assert holdout["x"].tolist() == d.unseen_rows.tolist()
    with pytest.raises(DesignMismatch):
        split(df.iloc[:10], d)


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(DatasetTooSmall) as e:
        make_design(1)
    assert e.value.code == "dataset_too_small"
    with pytest.raises(InvalidAuditInput):
        make_design(100, holdout_fraction=1.5)
    with pytest.raises(InvalidAuditInput):
        make_design(100, pool_size=10_000)
    with pytest.raises(InvalidAuditInput):
        make_design(100, attacks=("nonsense",))
