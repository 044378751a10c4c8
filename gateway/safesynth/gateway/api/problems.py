"""RFC 9457 problem details: every error leaves the gateway as ``application/problem+json`` with a code.

Service errors carry their code and status; request validation failures become ``invalid_request``
(422) with the field errors; unknown routes ``not_found``; engine and DP parameter errors
``invalid_request``; anything unexpected ``internal_error`` (500) without internals in the body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from safesynth.gateway.service.errors import ServiceError
from safesynth.gateway.settings import SettingsError
from safesynth.sdk.routes import PROBLEM_CONTENT_TYPE

__all__ = ["install_problem_handlers", "problem_for", "problem_response"]

_log = logging.getLogger("safesynth.gateway.api")

_HTTP_CODES = {
    400: ("invalid_request", "Bad request"),
    401: ("not_authorized", "Not authorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_request", "Invalid request"),
    429: ("rate_limited", "Too many requests"),
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"https://safesynth.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="safesynth"')
    if status in (429, 503) and "retry_after" in body:
        all_headers.setdefault("Retry-After", str(max(1, int(float(body["retry_after"])))))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=all_headers)


def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem_response(
        exc.status, exc.code, exc.title, exc.message, extra=exc.extra, instance=request.url.path
    )


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for item in exc.errors()[:50]:
        errors.append(
            {
                "loc": [str(p) for p in item.get("loc", ())][:10],
                "msg": str(item.get("msg", ""))[:300],
                "type": str(item.get("type", ""))[:100],
            }
        )
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else str(first["msg"])
    return problem_response(
        422, "invalid_request", "Invalid request", detail, extra={"errors": errors}, instance=request.url.path
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        exc.status_code, code, title, detail, instance=request.url.path, headers=exc.headers
    )


def _coded_error(request: Request, exc: Exception) -> JSONResponse:
    code = str(getattr(exc, "code", "invalid_request"))
    if code in ("budget_exhausted",):
        return problem_response(409, code, "Privacy budget exhausted", str(exc), instance=request.url.path)
    return problem_response(
        422,
        "invalid_request",
        "Invalid request",
        f"{code}: {exc}",
        extra={"reason": code},
        instance=request.url.path,
    )


def _not_implemented(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        501,
        "not_implemented",
        "Not implemented",
        "this part of the gateway is not available in this build",
        instance=request.url.path,
    )


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "the gateway failed; nothing private is shown here (see the gateway's log)",
        instance=request.url.path,
    )


def problem_for(request: Request, exc: Exception) -> JSONResponse:
    """The problem response the installed handlers give ``exc`` (for code outside FastAPI's routing)."""
    from safesynth.gateway.dp.errors import DPError
    from safesynth.gateway.engines.base import EngineError

    if isinstance(exc, ServiceError):
        return _service_error(request, exc)
    if isinstance(exc, RequestValidationError):
        return _validation_error(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return _http_error(request, exc)
    if isinstance(exc, DPError | EngineError | SettingsError):
        return _coded_error(request, exc)
    if isinstance(exc, NotImplementedError):
        return _not_implemented(request, exc)
    return _internal_error(request, exc)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    from safesynth.gateway.dp.errors import DPError
    from safesynth.gateway.engines.base import EngineError

    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DPError, _coded_error)
    app.add_exception_handler(EngineError, _coded_error)
    app.add_exception_handler(SettingsError, _coded_error)
    app.add_exception_handler(NotImplementedError, _not_implemented)
    app.add_exception_handler(Exception, _internal_error)
