"""The hot path: ``POST /v1/datasets/{dataset}/queries`` in front of FastAPI's middleware and routing.

DP statistics are the gateway's most frequent request. FastAPI's middleware stack, route matching
and per-request dependency solving cost about as much CPU as the statistic itself, so
:class:`GatewayApp` (the app :func:`~safesynth.gateway.api.app.create_app` builds) hands that one
operation to :class:`QueryFastPath` before its middleware stack, on plain ASGI messages, with the
same semantics as the documented route in :mod:`safesynth.gateway.api.routes` (which stays in the
OpenAPI document and is the reference; a parity test sends every case to both):

* the request-size limit (``Content-Length`` first, then the bytes actually received): 413;
* bearer authentication exactly as ``get_principal`` (a malformed ``Authorization`` header is
  ``not_authorized``), then the token's rate limit;
* ``Idempotency-Key`` of at most 200 characters;
* the body parsed as JSON and validated as the SDK's ``QueryRequest`` (422 with the field errors,
  like FastAPI's validation errors);
* the service call on the fast path's own worker threads (concurrent requests must run in parallel
  threads so that the ledger's group commit can share one transaction among them), handed over
  by :class:`~safesynth.gateway.api.handoff.ThreadHandoff` (cheaper than an executor);
* every error through the app's problem handlers.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from safesynth.gateway.api.handoff import ThreadHandoff
from safesynth.gateway.api.limits import RateLimiter
from safesynth.gateway.api.problems import problem_for, problem_response
from safesynth.gateway.service.errors import GatewayUnavailable, NotAuthorized
from safesynth.gateway.service.gateway import Gateway
from safesynth.sdk import models as wire

__all__ = ["GatewayApp", "QueryFastPath"]

_PATH = re.compile(r"^/v1/datasets/([^/]+)/queries$")
_MAX_IDEMPOTENCY_KEY = 200
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _TooLarge(Exception):
    """The body is over the request-size limit."""


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class QueryFastPath:
    """Answer ``POST /v1/datasets/{dataset}/queries`` on plain ASGI messages."""

    def __init__(self, *, max_bytes: int, threads: int) -> None:
        self.max_bytes = max_bytes
        self.threads = threads
        self._workers: ThreadHandoff | None = None

    @staticmethod
    def match(scope: Scope) -> str | None:
        """The dataset id if ``scope`` is this operation, else None."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            return None
        found = _PATH.match(scope.get("path", ""))
        return None if found is None else found.group(1)

    def workers(self) -> ThreadHandoff:
        """The fast path's worker threads (created on first use)."""
        if self._workers is None:
            self._workers = ThreadHandoff(self.threads, name="safesynth-query")
        return self._workers

    def close(self) -> None:
        """Stop the worker threads (running and queued calls finish)."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, dataset: str) -> None:
        try:
            data = await self._answer(scope, receive, dataset)
        except _Disconnected:
            return
        except _TooLarge:
            await problem_response(
                413,
                "payload_too_large",
                "Payload too large",
                f"the request body is over the limit of {self.max_bytes} bytes",
            )(scope, receive, send)
            return
        except Exception as exc:  # every other error as the app's handlers render it
            await problem_for(Request(scope, receive), exc)(scope, receive, send)
            return
        headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode("ascii"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _body(self, receive: Receive) -> bytes:
        """The request body; _TooLarge as soon as more than ``max_bytes`` arrived."""
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _principal(headers: dict[bytes, bytes], app: Any, gateway: Gateway) -> Any:
        raw = headers.get(b"authorization")
        header = None if raw is None else raw.decode("latin-1")
        scheme, credentials = get_authorization_scheme_param(header)
        token = credentials if header and scheme and credentials and scheme.lower() == "bearer" else None
        if header is not None and token is None:
            raise NotAuthorized("use 'Authorization: Bearer <token>'")
        principal = gateway.authenticate(token)
        limiter = getattr(getattr(app, "state", None), "rate_limiter", None)
        if isinstance(limiter, RateLimiter):
            limiter.hit(principal.token_id)
        return principal

    async def _answer(self, scope: Scope, receive: Receive, dataset: str) -> bytes:
        app = scope.get("app")
        gateway = getattr(getattr(app, "state", None), "gateway", None)
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette reads them
        declared: int | None = None
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                declared = None
        if declared is not None and declared > self.max_bytes:
            raise _TooLarge
        if not isinstance(gateway, Gateway):
            raise GatewayUnavailable("the gateway is not running")
        principal = self._principal(headers, app, gateway)
        raw_key = headers.get(b"idempotency-key")
        key = None if raw_key is None else raw_key.decode("latin-1")
        errors: list[dict[str, Any]] = []
        if key is not None and len(key) > _MAX_IDEMPOTENCY_KEY:
            errors.append(
                {
                    "type": "string_too_long",
                    "loc": ("header", "Idempotency-Key"),
                    "msg": f"String should have at most {_MAX_IDEMPOTENCY_KEY} characters",
                }
            )
        raw = await self._body(receive)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        body: Any = None
        if raw:
            media = content_type.split(";", 1)[0].strip().lower()
            if media and not (media == "application/json" or media.endswith("+json")):
                errors.append(
                    {"type": "model_attributes_type", "loc": ("body",), "msg": "a JSON body is needed"}
                )
            else:
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:  # as FastAPI: a 422 json_invalid error
                    at = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
                    errors.append({"type": "json_invalid", "loc": ("body", at), "msg": "JSON decode error"})
        query: wire.QueryRequest | None = None
        if not errors and body is None:
            errors.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
        elif not errors:
            try:
                query = wire.QueryRequest.model_validate(body)
            except ValidationError as exc:
                errors.extend({**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors())
        if errors or query is None:
            raise RequestValidationError(errors)
        call = functools.partial(gateway.query_text, principal, dataset, query, idempotency_key=key)
        answer = await self.workers().call(call)
        return answer.encode("utf-8")


class GatewayApp(FastAPI):
    """FastAPI with the DP-statistics fast path in front of its middleware stack."""

    fast_path: QueryFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        dataset = None if fast is None else fast.match(scope)
        if fast is None or dataset is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await fast(scope, receive, send, dataset)
