"""The double-spend race: 40 concurrent DP statistics of epsilon 0.5 against epsilon_total 3.

Exactly the number of requests the privacy filter admits when they arrive one after another are
admitted; the others get ``budget_exhausted``; the ledger holds exactly those spends (plus one refusal
per refused request) and verifies. The requests differ in a filter value, so none is a cache hit.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import SCHEMA, csv_bytes, require_dp, verify_zip
from gw_server import init, running, settings_for

from safesynth.gateway.dp.filter import PrivacyFilter
from safesynth.gateway.service.queries import plan_query
from safesynth.sdk.models import QueryRequest

require_dp()

N_REQUESTS = 40
EPSILON = 0.5
EPSILON_TOTAL = 3.0
DELTA_TOTAL = 1e-6


def _expected_admitted() -> int:
    request = QueryRequest(kind="count", epsilon=EPSILON, purpose="race")
    events = plan_query(SCHEMA, request).events
    flt = PrivacyFilter(EPSILON_TOTAL, DELTA_TOTAL)
    state = flt.empty_state()
    admitted = 0
    for _ in range(N_REQUESTS):
        decision = flt.decide(state, events)
        if decision.admitted:
            admitted += 1
            state = decision.new_state
    return admitted


@pytest.mark.slow
def test_concurrent_spends_admit_exactly_what_the_filter_allows(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home")
    admin = init(settings)
    expected = _expected_admitted()
    assert 0 < expected < N_REQUESTS
    with running(settings) as url:
        headers = {"Authorization": f"Bearer {admin}"}
        metadata = json.dumps(
            {
                "id": "race",
                "dataset_schema": json.loads(SCHEMA.model_dump_json()),
                "budget": {"epsilon_total": EPSILON_TOTAL, "delta_total": DELTA_TOTAL},
            }
        )
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            registered = client.post(
                "/v1/datasets",
                files={"file": ("d.csv", csv_bytes(200), "text/csv")},
                data={"metadata": metadata},
            )
            assert registered.status_code == 201, registered.text

        def one(i: int) -> httpx.Response:
            body = {
                "kind": "count",
                "epsilon": EPSILON,
                "purpose": f"race {i}",
                "filters": [{"column": "age", "op": "ge", "value": 18 + i}],
            }
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                return client.post("/v1/datasets/race/queries", json=body)

        with ThreadPoolExecutor(max_workers=N_REQUESTS) as pool:
            responses = list(pool.map(one, range(N_REQUESTS)))
        statuses = [r.status_code for r in responses]
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert len(ok) == expected, statuses
        assert all(r.status_code == 409 and r.json()["code"] == "budget_exhausted" for r in refused)
        assert all("epsilon_remaining" in r.json() for r in refused)

        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            entries = client.get("/v1/ledger/entries", params={"limit": 1000}).json()["entries"]
            spends = [e for e in entries if e["kind"] == "spend/v1" and e["payload"]["dataset"] == "race"]
            refusals = [e for e in entries if e["kind"] == "refusal/v1"]
            assert len(spends) == expected
            assert len(refusals) == N_REQUESTS - expected
            assert sorted(r.json()["spend_seq"] for r in ok) == sorted(e["seq"] for e in spends)
            budget = client.get("/v1/datasets/race/budget").json()
            assert budget["epsilon_spent"] <= EPSILON_TOTAL + 1e-9
            export = client.get("/v1/ledger/export")
            assert export.status_code == 200
    verify_zip(export.content, settings.public_key_path, tmp_path / "export")
