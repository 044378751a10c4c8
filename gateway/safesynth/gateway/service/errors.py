"""The service layer's errors: one class per stable ``code``, each with its HTTP status.

The HTTP layer turns every :class:`ServiceError` into an RFC 9457 ``application/problem+json`` body
(``type``, ``title``, ``status``, ``detail``, ``code`` and the error's ``extra`` members). The codes are
the contract with the SDK, which maps them back to typed exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "BudgetExhausted",
    "Conflict",
    "DataUnavailable",
    "Forbidden",
    "GatewayUnavailable",
    "IdempotencyConflict",
    "InvalidRequest",
    "JobFailed",
    "ModelUnavailable",
    "NotAuthorized",
    "NotFound",
    "NotInitialized",
    "PayloadTooLarge",
    "QueueFull",
    "RateLimited",
    "ReleaseWithheld",
    "ServiceError",
    "UnsupportedMediaType",
]


class ServiceError(Exception):
    """Base class. ``code`` is stable; ``status`` the HTTP status; ``extra`` JSON members for the body."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, Any] = dict(extra or {})


class InvalidRequest(ServiceError):
    """The request is malformed or asks for something impossible; nothing was spent."""

    code = "invalid_request"
    status = 422
    title = "Invalid request"


class NotAuthorized(ServiceError):
    """No valid bearer token (missing, unknown or revoked)."""

    code = "not_authorized"
    status = 401
    title = "Not authorized"


class Forbidden(ServiceError):
    """The token is valid but its role or grants do not allow this."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class ReleaseWithheld(ServiceError):
    """The release's audit failed the gate: it is withheld (its spend stays spent; see the ledger)."""

    code = "release_withheld"
    status = 403
    title = "Release withheld by the audit gate"


class NotFound(ServiceError):
    """No such dataset, job, release or entry (or not visible to this token)."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    """The resource is in a state that does not allow this (e.g. a result before the job finished)."""

    code = "conflict"
    status = 409
    title = "Conflict"


class IdempotencyConflict(Conflict):
    """An Idempotency-Key was reused for a different request."""

    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class BudgetExhausted(ServiceError):
    """The privacy filter refused the request; ``extra`` holds what remains. Nothing was spent."""

    code = "budget_exhausted"
    status = 409
    title = "Privacy budget exhausted"


class JobFailed(ServiceError):
    """The job failed (its spend, if any, stays in the ledger)."""

    code = "job_failed"
    status = 409
    title = "Job failed"


class PayloadTooLarge(ServiceError):
    """The request body, upload, row count or a field is over its limit."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(ServiceError):
    """The body's content type (or file format) is not accepted here."""

    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class RateLimited(ServiceError):
    """Too many requests from this token; ``extra['retry_after']`` seconds."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class QueueFull(RateLimited):
    """The job queue (or this token's share of it) is full."""

    code = "queue_full"
    title = "Job queue full"


class NotInitialized(ServiceError):
    """The data home has no ledger, key or state yet: run ``safesynth init``."""

    code = "not_initialized"
    status = 503
    title = "Gateway not initialized"


class GatewayUnavailable(ServiceError):
    """The gateway is starting or shutting down."""

    code = "unavailable"
    status = 503
    title = "Service unavailable"


class DataUnavailable(GatewayUnavailable):
    """A dataset's stored table cannot be read (missing or damaged file): refused before any spend."""

    code = "data_unavailable"
    title = "Data unavailable"


class ModelUnavailable(GatewayUnavailable):
    """The language model an engine needs cannot be loaded: refused before any spend."""

    code = "model_unavailable"
    title = "Model unavailable"
