"""End to end against a REAL uvicorn server on a loopback port: registration, DP statistics, plans,
hostile inputs, the ledger endpoints and offline verification of the export."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import SCHEMA, csv_bytes, require_dp, verify_zip
from gw_server import init, running, settings_for

from safesynth.gateway.settings import GatewaySettings

require_dp()


@dataclass
class Server:
    url: str
    settings: GatewaySettings
    admin: httpx.Client
    analyst: httpx.Client
    auditor: httpx.Client
    root: Path


def _metadata(dataset: str, **extra: object) -> str:
    body = {
        "id": dataset,
        "dataset_schema": json.loads(SCHEMA.model_dump_json()),
        "budget": {"epsilon_total": 5.0, "delta_total": 1e-5},
        **extra,
    }
    return json.dumps(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("server")
    root = base / "allowed"
    root.mkdir()
    (root / "d.csv").write_bytes(csv_bytes(300))
    (base / "outside.csv").write_bytes(csv_bytes(50))
    (root / "link.csv").symlink_to(base / "outside.csv")
    settings = settings_for(base / "home", allowed_data_roots=(root,), max_request_bytes=64 * 1024)
    token = init(settings)
    with running(settings) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        response = admin.post(
            "/v1/datasets",
            files={"file": ("d.csv", csv_bytes(300), "text/csv")},
            data={"metadata": _metadata("d1")},
        )
        assert response.status_code == 201, response.text
        analyst_token = admin.post(
            "/v1/tokens", json={"name": "a", "role": "analyst", "datasets": ["d1"]}
        ).json()
        auditor_token = admin.post("/v1/tokens", json={"name": "u", "role": "auditor"}).json()
        analyst = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {analyst_token['token']}"}, timeout=60
        )
        auditor = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {auditor_token['token']}"}, timeout=60
        )
        yield Server(url, settings, admin, analyst, auditor, root)
        for client in (admin, analyst, auditor):
            client.close()


def _ledger_size(server: Server) -> int:
    return int(server.auditor.get("/v1/ledger/entries", params={"limit": 1}).json()["size"])


def test_registration_shows_no_private_value(server: Server) -> None:
    info = server.analyst.get("/v1/datasets/d1").json()
    assert info["row_count_bucket"] == "100-999"
    assert info["budget"] == {"epsilon_total": 5.0, "delta_total": 1e-5}
    text = json.dumps(info)
    assert "300" not in text.replace("100-999", "")  # the exact row count is never shown
    home = server.settings.home
    assert oct(home.stat().st_mode)[-3:] == "700"
    for file in (home / "datasets" / "d1").iterdir():
        assert oct(file.stat().st_mode)[-3:] == "600"
    entries = server.auditor.get("/v1/ledger/entries", params={"kind": "dataset.registered/v1"}).json()[
        "entries"
    ]
    payload = entries[0]["payload"]
    assert payload["budget"] == {"epsilon_total": "5", "delta_total": "0.00001"}
    assert len(payload["schema_sha256"]) == 64


def test_server_side_path_and_traversal(server: Server) -> None:
    ok = server.admin.post(
        "/v1/datasets", json=json.loads(_metadata("d-path", path=str(server.root / "d.csv")))
    )
    assert ok.status_code == 201, ok.text
    size = _ledger_size(server)
    for bad in (
        str(server.root / ".." / "outside.csv"),  # traversal
        str(server.root / "link.csv"),  # symlink out of the root
        "/etc/passwd",
        "relative/d.csv",
        str(server.root / "missing.csv"),
    ):
        response = server.admin.post("/v1/datasets", json=json.loads(_metadata("d-bad", path=bad)))
        assert response.status_code in (403, 404, 422), (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert _ledger_size(server) == size  # nothing recorded for refused registrations


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "count", "epsilon": 0.1, "purpose": "p"},
        {"kind": "sum", "column": "income", "epsilon": 0.1, "purpose": "p"},
        {"kind": "mean", "column": "age", "epsilon": 0.1, "purpose": "p"},
        {"kind": "histogram", "column": "city", "epsilon": 0.1, "purpose": "p"},
        {"kind": "histogram", "column": "age", "bins": [18, 40, 65, 90], "epsilon": 0.1, "purpose": "p"},
        {
            "kind": "quantiles",
            "column": "age",
            "quantiles": [0.25, 0.5, 0.75],
            "epsilon": 0.1,
            "purpose": "p",
        },
        {
            "kind": "count",
            "epsilon": 0.1,
            "purpose": "p",
            "filters": [
                {"column": "city", "op": "in", "value": ["Paris", "Lyon"]},
                {"column": "age", "op": "ge", "value": 30},
            ],
        },
    ],
    ids=["count", "sum", "mean", "hist-cat", "hist-num", "quantiles", "filtered"],
)
def test_dp_statistics_and_cache(server: Server, body: dict[str, object]) -> None:
    before = _ledger_size(server)
    first = server.analyst.post("/v1/datasets/d1/queries", json=body)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["cached"] is False and result["epsilon"] > 0 and result["spend_seq"] >= before
    assert _ledger_size(server) == before + 1
    again = server.analyst.post("/v1/datasets/d1/queries", json={**body, "purpose": "other purpose"}).json()
    assert again["cached"] is True
    assert again["value"] == result["value"] and again["histogram"] == result["histogram"]
    assert _ledger_size(server) == before + 1  # the repeat cost nothing
    if body["kind"] == "quantiles":
        values = [q["value"] for q in result["quantiles"]]
        assert all(18 <= v <= 90 for v in values)
    if body["kind"] == "histogram" and body["column"] == "city":
        assert [b["label"] for b in result["histogram"]] == ["Paris", "Lyon", "Nice", "=HYPERLINK()"]


@pytest.mark.slow
def test_plan_spends_nothing(server: Server) -> None:
    before = _ledger_size(server)
    plan = server.analyst.post(
        "/v1/datasets/d1/queries/plan",
        json={"kind": "mean", "column": "income", "epsilon": 0.4, "purpose": "p"},
    )
    assert plan.status_code == 200, plan.text
    assert plan.json()["admitted"] is True and plan.json()["epsilon"] <= 0.4 + 1e-9
    synth = server.analyst.post(
        "/v1/datasets/d1/syntheses/plan",
        json={"engine": "tabular", "rows": 20, "epsilon": 1.0, "purpose": "integration test"},
    )
    assert synth.status_code == 200, synth.text
    assert synth.json()["epsilon"] <= 1.0 + 1e-9 and synth.json()["events"]
    assert _ledger_size(server) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "count", "epsilon": "0.1", "purpose": "p"}, "invalid_request"),  # wrong type
        ({"kind": "count", "epsilon": -1, "purpose": "p"}, "invalid_request"),
        ({"kind": "count", "epsilon": 0.1, "purpose": "p", "extra": 1}, "invalid_request"),
        ({"kind": "sum", "column": "nope", "epsilon": 0.1, "purpose": "p"}, "invalid_request"),
        ({"kind": "sum", "column": "city", "epsilon": 0.1, "purpose": "p"}, "invalid_request"),
        (
            {
                "kind": "count",
                "epsilon": 0.1,
                "purpose": "p",
                "filters": [{"column": "age", "op": "eq", "value": "x"}],
            },
            "invalid_request",
        ),
        ({"kind": "count", "epsilon": 0.1, "purpose": "x" * 100_000}, "payload_too_large"),
    ],
)
def test_bad_inputs_spend_nothing(server: Server, body: dict[str, object], code: str) -> None:
    before = _ledger_size(server)
    response = server.analyst.post("/v1/datasets/d1/queries", json=body)
    assert response.status_code in (413, 422), response.text
    assert response.json()["code"] == code
    assert response.headers["content-type"].startswith("application/problem+json")
    assert _ledger_size(server) == before


def test_malformed_json_and_media_type(server: Server) -> None:
    bad = server.analyst.post(
        "/v1/datasets/d1/queries", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    unsupported = server.admin.post("/v1/datasets", content=b"x", headers={"Content-Type": "text/plain"})
    assert unsupported.status_code == 415
    unknown = server.analyst.get("/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_hostile_upload_is_refused_cleanly(server: Server) -> None:
    before = _ledger_size(server)
    schema = json.loads(SCHEMA.model_dump_json())
    schema["columns"][2] = {"name": "city", "kind": "categorical"}  # no public list: any text
    header = b"age,income,city,smoker\n"
    rows = b"".join(b"%d,%d,Paris,yes\n" % (20 + i, i) for i in range(20))
    cases = [
        (header + b"old,1,Paris,yes\n" + rows, 422, "invalid_request"),  # wrong type
        (b"\x00\xff\xfe garbage", 422, "invalid_request"),
        (header + b"30,1," + b"P" * 150_000 + b",yes\n" + rows, 413, "payload_too_large"),  # huge field
    ]
    for i, (data, status, code) in enumerate(cases):
        meta = {"id": f"hostile-{i}", "dataset_schema": schema, "budget": {"epsilon_total": 1.0}}
        response = server.admin.post(
            "/v1/datasets", files={"file": ("h.csv", data, "text/csv")}, data={"metadata": json.dumps(meta)}
        )
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
    assert _ledger_size(server) == before  # refused registrations record nothing
    formulas = header + b"".join(b'%d,1,=HYPERLINK("http://x"),@SUM(A1)\n' % (20 + i) for i in range(20))
    meta = {"id": "formulas", "dataset_schema": schema, "budget": {"epsilon_total": 1.0}}
    schema["columns"][3] = {"name": "smoker", "kind": "categorical"}
    meta["dataset_schema"] = schema
    ok = server.admin.post(
        "/v1/datasets", files={"file": ("f.csv", formulas, "text/csv")}, data={"metadata": json.dumps(meta)}
    )
    assert ok.status_code == 201, ok.text  # formula cells are plain data: stored, never evaluated
    assert "HYPERLINK" not in ok.text  # and never shown back


def test_budget_history_and_ledger_endpoints(server: Server, tmp_path: Path) -> None:
    server.analyst.post(
        "/v1/datasets/d1/queries", json={"kind": "count", "epsilon": 0.05, "purpose": "history"}
    )
    budget = server.analyst.get("/v1/datasets/d1/budget").json()
    assert budget["history"] and budget["history"][-1]["kind"] == "spend"
    assert budget["epsilon_spent"] + budget["epsilon_remaining"] == pytest.approx(
        5.0, rel=1e-6, abs=1e-6
    ) or (budget["epsilon_spent"] <= 5.0)
    checkpoint = server.auditor.get("/v1/ledger/checkpoint").json()
    size = checkpoint["size"]
    assert size >= 3
    proof = server.auditor.get(f"/v1/ledger/proofs/{size - 1}", params={"tree_size": size})
    assert proof.status_code == 200, proof.text
    consistency = server.auditor.get("/v1/ledger/consistency", params={"old": 1, "new": size})
    assert consistency.status_code == 200, consistency.text
    assert server.auditor.get("/v1/ledger/proofs/100000").status_code == 404
    key = server.auditor.get("/v1/ledger/public-key")
    assert key.status_code == 200 and key.text.strip()
    export = server.auditor.get("/v1/ledger/export")
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    verify_zip(export.content, server.settings.public_key_path, tmp_path / "export")


def test_request_size_limit(server: Server) -> None:
    response = server.analyst.post(
        "/v1/datasets/d1/queries",
        content=b'{"kind": "count", "epsilon": 0.1, "purpose": "' + b"x" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_rate_limit(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home", rate_limit_per_second=0.01, rate_limit_burst=3)
    token = init(settings)
    with (
        running(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        statuses = [client.get("/v1/datasets").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        limited = client.get("/v1/datasets")
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
    assert os.access(settings.home, os.R_OK)
