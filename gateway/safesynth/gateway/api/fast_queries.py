"""The hot path: ``POST /v1/datasets/{dataset}/queries`` without FastAPI's routing and dependency solving.

DP statistics are the gateway's most frequent request. FastAPI's route matching over every route and
its per-request dependency solving cost about as much CPU as the statistic itself, so this ASGI
middleware answers that one operation directly, with the same semantics as the documented route in
:mod:`safesynth.gateway.api.routes` (which stays in the OpenAPI document and is the reference):

* bearer authentication exactly as ``get_principal`` (a malformed ``Authorization`` header is
  ``not_authorized``), then the token's rate limit;
* ``Idempotency-Key`` of at most 200 characters;
* the body parsed as JSON and validated as the SDK's ``QueryRequest`` (422 with
  the field errors, like FastAPI's validation errors);
* the service call in the thread pool; every error through the app's problem handlers.

The request-size limit still applies: :class:`~safesynth.gateway.api.limits.BodyLimitMiddleware` wraps
this middleware.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from safesynth.gateway.api.limits import RateLimiter
from safesynth.gateway.api.problems import problem_for
from safesynth.gateway.service.errors import GatewayUnavailable, NotAuthorized
from safesynth.gateway.service.gateway import Gateway
from safesynth.sdk import models as wire

__all__ = ["QueryFastPath"]

_PATH = re.compile(r"^/v1/datasets/([^/]+)/queries$")
_MAX_IDEMPOTENCY_KEY = 200


class QueryFastPath:
    """Serve ``POST /v1/datasets/{dataset}/queries`` directly; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response: Response = await self._answer(request, match.group(1))
        except Exception as exc:  # every error as the app's handlers render it
            response = problem_for(request, exc)
        await response(scope, receive, send)

    @staticmethod
    def _principal(request: Request, gateway: Gateway) -> Any:
        header = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(header)
        token = credentials if header and scheme and credentials and scheme.lower() == "bearer" else None
        if header is not None and token is None:
            raise NotAuthorized("use 'Authorization: Bearer <token>'")
        principal = gateway.authenticate(token)
        limiter = getattr(request.app.state, "rate_limiter", None) if "app" in request.scope else None
        if isinstance(limiter, RateLimiter):
            limiter.hit(principal.token_id)
        return principal

    async def _answer(self, request: Request, dataset: str) -> Response:
        app = request.scope.get("app")
        gateway = getattr(getattr(app, "state", None), "gateway", None)
        if not isinstance(gateway, Gateway):
            raise GatewayUnavailable("the gateway is not running")
        principal = self._principal(request, gateway)
        key = request.headers.get("idempotency-key")
        errors: list[dict[str, Any]] = []
        if key is not None and len(key) > _MAX_IDEMPOTENCY_KEY:
            errors.append(
                {
                    "type": "string_too_long",
                    "loc": ("header", "Idempotency-Key"),
                    "msg": f"String should have at most {_MAX_IDEMPOTENCY_KEY} characters",
                }
            )
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
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
        answer = await run_in_threadpool(gateway.query_json, principal, dataset, query, idempotency_key=key)
        return Response(
            content=json.dumps(answer, allow_nan=False, separators=(",", ":")), media_type="application/json"
        )
