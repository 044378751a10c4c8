"""The DP-statistics fast path answers exactly like the documented FastAPI route.

Each request is sent in-process to two apps over the same gateway: one with the
:class:`QueryFastPath` middleware (the default) and one without it (the FastAPI route). Status,
problem ``code``, content type and the answer's fields must agree.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gw_fixtures import Home, make_home, require_dp

from safesynth.gateway.api.app import create_app

require_dp()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    home = make_home(tmp_path_factory.mktemp("fast"), epsilon_total=5.0)
    yield home
    home.gateway.close()


class AppClient:
    """A minimal in-process client (httpx over the ASGI app, one event loop per call)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                return await client.post(url, content=content, headers=headers)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def clients(home: Home) -> tuple[AppClient, AppClient]:
    fast = AppClient(create_app(home.settings, gateway=home.gateway))
    plain = AppClient(create_app(home.settings, gateway=home.gateway, fast_queries=False))
    return fast, plain


def _count(value: float, epsilon: float = 0.01) -> bytes:
    body = {
        "kind": "count",
        "epsilon": epsilon,
        "purpose": "parity",
        "filters": [{"column": "age", "op": "ge", "value": value}],
    }
    return json.dumps(body).encode()


CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("valid", "d1", {"role": "analyst"}, b""),  # body filled per app below (distinct queries)
    ("malformed json", "d1", {"role": "analyst", "content-type": "application/json"}, b"{not json"),
    ("not json", "d1", {"role": "analyst", "content-type": "text/plain"}, b"hello"),
    ("empty body", "d1", {"role": "analyst", "content-type": "application/json"}, b""),
    ("invalid field", "d1", {"role": "analyst"}, b'{"kind": "count", "epsilon": -1, "purpose": "p"}'),
    ("extra field", "d1", {"role": "analyst"}, b'{"kind": "count", "epsilon": 1, "purpose": "p", "x": 1}'),
    ("no token", "d1", {"role": "missing"}, _count(1)),
    ("basic auth", "d1", {"role": "analyst", "authorization": "Basic abc"}, _count(2)),
    ("revoked token", "d1", {"role": "revoked"}, _count(3)),
    ("auditor", "d1", {"role": "auditor"}, _count(4)),
    ("not granted", "d2", {"role": "analyst"}, _count(5)),
    ("unknown dataset", "nope", {"role": "admin"}, _count(6)),
    ("unknown column", "d1", {"role": "analyst"}, b'{"kind":"sum","column":"zz","epsilon":1,"purpose":"p"}'),
    ("long idempotency key", "d1", {"role": "analyst", "idempotency-key": "k" * 201}, _count(7)),
    ("over budget", "d1", {"role": "analyst"}, _count(8, epsilon=50.0)),
    ("too large", "d1", {"role": "analyst"}, b'{"kind": "count", "purpose": "' + b"x" * (1 << 20) + b'"}'),
]


def _send(client: AppClient, home: Home, dataset: str, spec: dict[str, str], body: bytes) -> Any:
    headers = {k.lower(): v for k, v in home.headers(spec["role"]).items()}
    headers.setdefault("content-type", "application/json")
    headers.update({k: v for k, v in spec.items() if k != "role"})
    return client.post(f"/v1/datasets/{dataset}/queries", content=body, headers=headers)


@pytest.mark.parametrize(("name", "dataset", "spec", "body"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_matches_the_route(
    clients: tuple[AppClient, AppClient],
    home: Home,
    name: str,
    dataset: str,
    spec: dict[str, str],
    body: bytes,
) -> None:
    fast, plain = clients
    if name == "valid":
        a = _send(fast, home, dataset, spec, _count(100))
        b = _send(plain, home, dataset, spec, _count(101))
    else:
        a = _send(fast, home, dataset, spec, body)
        b = _send(plain, home, dataset, spec, body)
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    ja, jb = a.json(), b.json()
    assert set(ja) == set(jb)
    if a.status_code >= 400:
        assert ja["code"] == jb["code"] and a.headers["content-type"] == "application/problem+json"
        assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    else:
        assert ja["kind"] == jb["kind"] == "count" and ja["cached"] is jb["cached"] is False
        assert ja["spend_seq"] + 1 == jb["spend_seq"]  # both were charged, one after the other


def test_fast_path_answers_a_repeat_from_the_cache(clients: tuple[AppClient, AppClient], home: Home) -> None:
    fast, plain = clients
    first = _send(fast, home, "d1", {"role": "analyst"}, _count(200)).json()
    again = _send(plain, home, "d1", {"role": "analyst"}, _count(200)).json()
    third = _send(fast, home, "d1", {"role": "analyst"}, _count(200)).json()
    assert again["cached"] is True and third["cached"] is True
    assert first["value"] == again["value"] == third["value"]


def test_serve_warms_the_modules_of_a_first_job() -> None:
    """``safesynth serve`` imports what the first synthesis would import (a renamed module fails here)."""
    from safesynth.gateway.api.app import WARM_IMPORTS, warm_imports

    warm_imports()
    assert all(name in sys.modules for name in WARM_IMPORTS)
