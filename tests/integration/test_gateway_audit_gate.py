"""The audit gate: a release whose audit FAILs is withheld, the refusal is in the ledger, the spend stays.

The engine here is deliberately broken (it plans like the real tabular engine, then releases the
training rows verbatim): a fake for testing the code around engines, never a path a user runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import SCHEMA, csv_bytes, require_dp
from gw_server import init, running, settings_for

from safesynth.gateway import engines
from safesynth.gateway.engines.base import EngineContext, EngineOutput, Plan
from safesynth.gateway.engines.tabular.engine import TabularEngine
from safesynth.sdk.schema import DatasetSchema

require_dp()


class LeakyEngine(TabularEngine):
    """Charges what the tabular engine plans, then releases the private rows themselves."""

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        return EngineOutput(table=data.reset_index(drop=True).copy(), report={})


def _entries(client: httpx.Client, kind: str) -> list[dict[str, Any]]:
    response = client.get("/v1/ledger/entries", params={"limit": 1000, "kind": kind})
    return list(response.json()["entries"])


@pytest.mark.slow
def test_a_failing_release_is_withheld_and_the_spend_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(engines.ENGINES, "tabular", f"{__name__}:LeakyEngine")
    settings = settings_for(tmp_path / "home", run_audits=True)
    token = init(settings)
    with (
        running(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client,
    ):
        meta = {
            "id": "leaky",
            "dataset_schema": json.loads(SCHEMA.model_dump_json()),
            "budget": {"epsilon_total": 10.0, "delta_total": 1e-5},
        }
        registered = client.post(
            "/v1/datasets",
            files={"file": ("d.csv", csv_bytes(3000), "text/csv")},
            data={"metadata": json.dumps(meta)},
        )
        assert registered.status_code == 201, registered.text
        body = {"engine": "tabular", "rows": 50, "epsilon": 1.0, "purpose": "gate test"}
        job = client.post("/v1/datasets/leaky/syntheses", json=body).json()
        deadline = time.monotonic() + 300
        while (state := client.get(f"/v1/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "job did not finish"
            time.sleep(0.2)
        release_id = state["release_id"]
        assert release_id, state
        assert client.get(f"/v1/releases/{release_id}").json()["audit_verdict"] == "FAIL"
        download = client.get(f"/v1/releases/{release_id}/data", params={"format": "csv"})
        assert download.status_code == 403 and download.json()["code"] == "release_withheld"
        refusals = [e for e in _entries(client, "refusal/v1") if e["payload"].get("reason") == "audit_gate"]
        assert [r["payload"]["release"] for r in refusals] == [release_id]
        assert len(_entries(client, "spend/v1")) == 1  # the spend stays spent
