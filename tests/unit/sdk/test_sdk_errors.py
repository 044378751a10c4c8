"""Problem+json responses map to typed errors with stable codes."""

from __future__ import annotations

import httpx
import pytest

from safesynth.sdk import errors as e
from safesynth.sdk._http import error_from_response


def _response(
    status: int, body: object = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1:8765/v1/x")
    if text is not None:
        return httpx.Response(status, text=text, request=request, headers=headers)
    return httpx.Response(status, json=body, request=request, headers=headers)


def _problem(status: int, code: str, **extra: object) -> dict[str, object]:
    return {"type": "about:blank", "title": "T", "status": status, "code": code, "detail": "why", **extra}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (409, "budget_exhausted", e.BudgetExhausted),
        (401, "not_authorized", e.NotAuthorized),
        (403, "forbidden", e.Forbidden),
        (403, "release_withheld", e.ReleaseWithheld),
        (422, "invalid_request", e.InvalidRequest),
        (400, "invalid_request", e.InvalidRequest),
        (404, "not_found", e.NotFound),
        (409, "conflict", e.Conflict),
        (409, "idempotency_key_reused", e.Conflict),
        (413, "payload_too_large", e.PayloadTooLarge),
        (415, "unsupported_media_type", e.InvalidRequest),
        (429, "rate_limited", e.RateLimited),
        (429, "queue_full", e.RateLimited),
        (500, "internal_error", e.ServerError),
        (503, "unavailable", e.ServerError),
    ],
)
def test_codes_map_to_classes(status: int, code: str, cls: type[e.SafeSynthError]) -> None:
    err = error_from_response(_response(status, _problem(status, code)))
    assert type(err) is cls
    assert err.code == cls.code
    assert err.status == status
    assert err.problem is not None and err.problem.code == code
    assert "why" in str(err) and f"[{cls.code} {status}]" in str(err)


def test_budget_exhausted_carries_what_remains() -> None:
    err = error_from_response(
        _response(409, _problem(409, "budget_exhausted", epsilon_remaining=0.25, delta_remaining=1e-7))
    )
    assert isinstance(err, e.BudgetExhausted)
    assert err.epsilon_remaining == 0.25
    assert err.delta_remaining == 1e-7


def test_rate_limited_reads_retry_after_header_then_body() -> None:
    err = error_from_response(_response(429, _problem(429, "rate_limited"), headers={"Retry-After": "7"}))
    assert isinstance(err, e.RateLimited) and err.retry_after == 7.0
    err = error_from_response(_response(429, _problem(429, "rate_limited", retry_after=3)))
    assert isinstance(err, e.RateLimited) and err.retry_after == 3.0


def test_unknown_code_falls_back_to_status_and_unknown_status_keeps_code() -> None:
    assert type(error_from_response(_response(403, _problem(403, "weird")))) is e.Forbidden
    err = error_from_response(_response(418, _problem(418, "teapot")))
    assert type(err) is e.SafeSynthError
    assert err.code == "teapot"


def test_non_problem_bodies() -> None:
    err = error_from_response(_response(502, text="<html>bad gateway</html>"))
    assert isinstance(err, e.ServerError) and "bad gateway" in str(err)
    err = error_from_response(_response(422, {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}))
    assert isinstance(err, e.InvalidRequest) and "bad" in str(err)
    err = error_from_response(_response(401, {"detail": "Not authenticated"}))
    assert isinstance(err, e.NotAuthorized)


def test_invalid_request_lists_field_errors() -> None:
    err = error_from_response(
        _response(422, _problem(422, "invalid_request", errors=[{"loc": ["epsilon"], "msg": "x"}]))
    )
    assert isinstance(err, e.InvalidRequest)
    assert err.errors == [{"loc": ["epsilon"], "msg": "x"}]


def test_every_error_class_has_a_distinct_code() -> None:
    classes = [getattr(e, name) for name in e.__all__ if isinstance(getattr(e, name), type)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(issubclass(cls, e.SafeSynthError) for cls in classes)
