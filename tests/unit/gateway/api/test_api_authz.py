"""Authorization matrix: every endpoint x role x granted/not granted dataset x missing/revoked token.

Against the real app served by uvicorn on a loopback port (module-scoped: one server for the matrix).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gw_fixtures import SCHEMA, Home, csv_bytes, make_home, require_dp
from gw_server import running

require_dp()

ROLES = ("admin", "analyst", "analyst_other", "auditor", "missing", "revoked")
ALL = {"admin", "analyst", "analyst_other", "auditor"}
DATA_READERS = {"admin", "analyst", "auditor"}  # d1 is granted to "analyst" only
SPENDERS = {"admin", "analyst"}
LEDGER = {"admin", "auditor"}
ADMIN = {"admin"}

COUNT = {"kind": "count", "epsilon": 0.01, "purpose": "authz matrix"}
# the same request as the integration tests: the (slow) tabular plan is computed once per process
SYNTH = {"engine": "tabular", "rows": 20, "epsilon": 1.0, "purpose": "integration test"}


def _register_body() -> dict[str, Any]:
    return {
        "files": {"file": ("x.csv", csv_bytes(40), "text/csv")},
        "data": {
            "metadata": json.dumps(
                {
                    "id": f"reg-{uuid.uuid4().hex[:8]}",
                    "dataset_schema": json.loads(SCHEMA.model_dump_json()),
                    "budget": {"epsilon_total": 1.0},
                }
            )
        },
    }


# (name, method, path, request kwargs factory, roles allowed)
ENDPOINTS: list[tuple[str, str, str, Any, set[str]]] = [
    ("info", "GET", "/v1/info", None, ALL),
    ("tokens.list", "GET", "/v1/tokens", None, ADMIN),
    ("tokens.create", "POST", "/v1/tokens", lambda: {"json": {"name": "x", "role": "auditor"}}, ADMIN),
    ("tokens.get", "GET", "/v1/tokens/{victim}", None, ADMIN),
    ("tokens.revoke", "POST", "/v1/tokens/{victim}/revoke", None, ADMIN),
    ("datasets.register", "POST", "/v1/datasets", _register_body, ADMIN),
    ("datasets.list", "GET", "/v1/datasets", None, ALL),
    ("datasets.get", "GET", "/v1/datasets/d1", None, DATA_READERS),
    ("datasets.budget", "GET", "/v1/datasets/d1/budget", None, DATA_READERS),
    ("synthesis.plan", "POST", "/v1/datasets/d1/syntheses/plan", lambda: {"json": SYNTH}, SPENDERS),
    ("queries.plan", "POST", "/v1/datasets/d1/queries/plan", lambda: {"json": COUNT}, SPENDERS),
    ("queries.run", "POST", "/v1/datasets/d1/queries", lambda: {"json": COUNT}, SPENDERS),
    ("jobs.list", "GET", "/v1/jobs", None, ALL),
    ("releases.list", "GET", "/v1/releases", None, ALL),
    ("ledger.entries", "GET", "/v1/ledger/entries", None, LEDGER),
    ("ledger.entry", "GET", "/v1/ledger/entries/0", None, LEDGER),
    ("ledger.checkpoint", "GET", "/v1/ledger/checkpoint", None, LEDGER),
    ("ledger.proof", "GET", "/v1/ledger/proofs/0", None, LEDGER),
    ("ledger.consistency", "GET", "/v1/ledger/consistency?old=1&new=2", None, LEDGER),
    ("ledger.export", "GET", "/v1/ledger/export", None, LEDGER),
    ("ledger.public_key", "GET", "/v1/ledger/public-key", None, ALL),  # public, like /v1/info
]
# Objects that do not exist: every authenticated role gets 404, never a hint.
UNKNOWN = [
    ("GET", "/v1/jobs/job-0000000000000000"),
    ("POST", "/v1/jobs/job-0000000000000000/cancel"),
    ("GET", "/v1/releases/" + "0" * 64),
    ("GET", "/v1/releases/" + "0" * 64 + "/data"),
    ("GET", "/v1/datasets/nope"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    home = make_home(tmp_path_factory.mktemp("authz"))
    admin = home.principal("admin")
    from safesynth.sdk.models import TokenCreate

    home.token_ids["victim"] = home.gateway.create_token(
        admin, TokenCreate(name="victim", role="auditor")
    ).info.id
    yield home
    home.gateway.close()


@pytest.fixture(scope="module")
def client(home: Home) -> Iterator[httpx.Client]:
    with (
        running(home.settings, gateway=home.gateway) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "allowed"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_matrix(
    client: httpx.Client,
    home: Home,
    role: str,
    name: str,
    method: str,
    path: str,
    kwargs: Any,
    allowed: set[str],
) -> None:
    url = path.format(victim=home.token_ids["victim"])
    response = client.request(method, url, headers=home.headers(role), **(kwargs() if kwargs else {}))
    if role in ("missing", "revoked"):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "not_authorized"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif role in allowed:
        # 501: an engine that is not built in this checkout (never an auth failure, never a 500)
        assert response.status_code < 300 or response.status_code == 501, (name, role, response.text)
    else:
        assert response.status_code == 403, (name, role, response.text)
        assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), UNKNOWN)
def test_unknown_objects(client: httpx.Client, home: Home, role: str, method: str, path: str) -> None:
    response = client.request(method, path, headers=home.headers(role))
    if role in ("missing", "revoked"):
        assert response.status_code == 401
    elif role == "auditor" and (path.endswith("/cancel") or path.endswith("/data")):
        assert response.status_code == 403  # auditors never cancel jobs or download release data
    elif role.startswith("analyst") and path.startswith("/v1/datasets/"):
        # an analyst cannot tell an unknown dataset from one it has no grant for
        assert response.status_code == 403
    else:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"


def test_health_needs_no_token(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "bearer ssk_x", "Token abc"])
def test_malformed_authorization_header(client: httpx.Client, header: str) -> None:
    response = client.get("/v1/datasets", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authorized"


def test_analyst_sees_only_granted_datasets(client: httpx.Client, home: Home) -> None:
    ids = [d["id"] for d in client.get("/v1/datasets", headers=home.headers("analyst")).json()["datasets"]]
    assert ids == ["d1"]
    all_ids = [
        d["id"] for d in client.get("/v1/datasets", headers=home.headers("auditor")).json()["datasets"]
    ]
    assert {"d1", "d2"} <= set(all_ids)


def test_revoke_via_api_takes_effect_at_once(client: httpx.Client, home: Home) -> None:
    created = client.post(
        "/v1/tokens", json={"name": "tmp", "role": "auditor"}, headers=home.headers("admin")
    ).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/v1/datasets", headers=headers).status_code == 200
    client.post(f"/v1/tokens/{created['info']['id']}/revoke", headers=home.headers("admin"))
    assert client.get("/v1/datasets", headers=headers).status_code == 401
