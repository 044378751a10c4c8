"""Availability is checked before the budget is charged: unreadable data or a model that cannot be
loaded refuse the request with a typed 503 error and leave the ledger (and so the budget) untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from gw_fixtures import SCHEMA, make_home, require_dp, table, verify_store

from safesynth.gateway.service.errors import DataUnavailable, ModelUnavailable
from safesynth.gateway.service.gateway import Gateway
from safesynth.sdk import models as wire
from safesynth.sdk.schema import ColumnKind, ColumnSpec

require_dp()


def _count() -> wire.QueryRequest:
    return wire.QueryRequest(kind="count", epsilon=0.1, purpose="p")


def _synthesis() -> wire.SynthesisRequest:
    return wire.SynthesisRequest(engine="tabular", rows=20, epsilon=1.0, purpose="p")


def test_unreadable_data_refuses_queries_and_syntheses_without_spending(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    home.gateway.close()
    (home.settings.datasets_dir / "d1" / "table.parquet").write_bytes(b"not a parquet file")
    gateway = Gateway(home.settings, recover_jobs=False)  # a fresh process: nothing cached
    try:
        admin = gateway.authenticate(home.tokens["admin"])
        size = gateway.ledger.size
        with pytest.raises(DataUnavailable) as caught:
            gateway.query(admin, "d1", _count())
        assert caught.value.status == 503 and caught.value.code == "data_unavailable"
        with pytest.raises(DataUnavailable):
            gateway.submit_synthesis(admin, "d1", _synthesis())
        assert gateway.ledger.size == size  # no spend, no refusal: nothing was charged
        assert gateway.budget(admin, "d1").epsilon_spent == 0.0
        assert gateway.query(admin, "d2", _count()).spend_seq == size  # the other dataset still works
    finally:
        gateway.close()
    verify_store(home.settings.ledger_path)


def test_a_model_that_cannot_load_refuses_before_spending(tmp_path: Path) -> None:
    bad_model = tmp_path / "broken.gguf"
    bad_model.write_bytes(b"GGUF" + b"\0" * 60)  # a header and nothing behind it
    home = make_home(tmp_path, model_path=bad_model)
    try:
        admin = home.principal("admin")
        with_text = SCHEMA.model_copy(
            update={"columns": (*SCHEMA.columns, ColumnSpec(name="note", kind=ColumnKind.TEXT))}
        )
        frame = table(60)
        frame["note"] = "a short note"
        home.gateway.register_dataset(
            admin,
            wire.DatasetCreate(id="txt", dataset_schema=with_text, budget=wire.BudgetSpec(epsilon_total=5.0)),
            upload=frame.to_csv(index=False).encode(),
            filename="t.csv",
        )
        size = home.gateway.ledger.size
        with pytest.raises(ModelUnavailable) as caught:
            home.gateway.submit_synthesis(admin, "txt", _synthesis())
        assert caught.value.code == "model_unavailable"
        assert home.gateway.ledger.size == size
        assert home.gateway.budget(admin, "txt").epsilon_spent == 0.0
        # a dataset without text columns needs no model: still served
        job = home.gateway.submit_synthesis(admin, "d1", _synthesis())
        assert job.spend_seq == size
    finally:
        home.gateway.close()
