"""A scripted fake gateway for unit tests of the client (httpx.MockTransport): routes -> handlers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

SHA = "ab" * 32

Handler = Callable[[httpx.Request], httpx.Response]


def problem(status: int, code: str, detail: str = "nope", **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "t", "status": status, "code": code, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def job(state: str = "queued", progress: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"id": "job-1", "dataset": "ds", "state": state, "progress": progress, "stage": state, **extra}


def release(**extra: Any) -> dict[str, Any]:
    return {
        "id": SHA,
        "sha256": SHA,
        "dataset": "ds",
        "rows": 2,
        "columns": ["a", "b"],
        "spend_seq": 3,
        "epsilon": 0.9,
        "delta": 1e-7,
        "created": "2026-01-01T00:00:00Z",
        **extra,
    }


class FakeGateway:
    """Routes ``(METHOD, path)`` to handlers (or queues of responses); records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler | list[httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, handler: Handler | list[httpx.Response] | httpx.Response) -> None:
        if isinstance(handler, httpx.Response):
            response = handler
            self.routes[(method, path)] = lambda _request: response
        else:
            self.routes[(method, path)] = handler

    def json(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.on(method, path, lambda _request: httpx.Response(status, json=body))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return problem(404, "not_found", f"no route {request.method} {request.url.path}")
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        return route(request)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    @staticmethod
    def body(request: httpx.Request) -> Any:
        return json.loads(request.content)
