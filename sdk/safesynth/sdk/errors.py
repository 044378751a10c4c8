"""Typed SDK errors, mapped from the gateway's RFC 9457 problem ``code`` (then from the HTTP status).

Every error has a stable string ``code``. The gateway's codes and the classes they map to::

    budget_exhausted     BudgetExhausted   (carries epsilon_remaining / delta_remaining)
    not_authorized       NotAuthorized     (401: missing, unknown, expired or revoked token)
    forbidden            Forbidden         (403: role or dataset grant does not allow it)
    release_withheld     ReleaseWithheld   (403, a Forbidden: the release's audit failed the gate; its
                                            data are withheld, its spend stays spent)
    invalid_request      InvalidRequest    (400 / 422: the request was refused, nothing was spent)
    not_found            NotFound          (404)
    conflict             Conflict          (409: e.g. a dataset id already registered)
    payload_too_large    PayloadTooLarge   (413)
    rate_limited         RateLimited       (429; carries retry_after seconds)
    server_error         ServerError       (5xx)
    data_unavailable     DataUnavailable   (503, a ServerError: the dataset's file could not be read;
                                            nothing was spent)
    model_unavailable    ModelUnavailable  (503, a ServerError: the language model could not be
                                            loaded; nothing was spent)

Client-side only: ``job_failed`` (:class:`JobFailed`, a waited job failed or was cancelled),
``connection_failed`` (:class:`ConnectionFailed`), ``timeout`` (:class:`WaitTimeout`),
``invalid_response`` (:class:`InvalidResponse`), ``configuration`` (:class:`ConfigurationError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safesynth.sdk.models import Job, Problem

__all__ = [
    "BudgetExhausted",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "DataUnavailable",
    "Forbidden",
    "InvalidRequest",
    "InvalidResponse",
    "JobFailed",
    "ModelUnavailable",
    "NotAuthorized",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ReleaseWithheld",
    "SafeSynthError",
    "ServerError",
    "WaitTimeout",
    "error_for_problem",
]


class SafeSynthError(Exception):
    """Base of every SDK error. ``code`` is stable; ``status`` is the HTTP status when there was one.

    ``problem`` is the gateway's RFC 9457 problem document when the error came from one.
    """

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: Problem | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problem = problem
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        prefix = f"[{self.code}" + (f" {self.status}]" if self.status is not None else "]")
        return f"{prefix} {self.message}"


class BudgetExhausted(SafeSynthError):
    """The dataset's budget would not admit the request; nothing was spent (a refusal was recorded)."""

    code = "budget_exhausted"

    @property
    def epsilon_remaining(self) -> float | None:
        """Epsilon left in the dataset's budget, as the gateway reported it."""
        return None if self.problem is None else self.problem.epsilon_remaining

    @property
    def delta_remaining(self) -> float | None:
        """Delta left in the dataset's budget, as the gateway reported it."""
        return None if self.problem is None else self.problem.delta_remaining


class NotAuthorized(SafeSynthError):
    """401: no token, or an unknown, expired or revoked one."""

    code = "not_authorized"


class Forbidden(SafeSynthError):
    """403: the token's role or dataset grants do not allow this request."""

    code = "forbidden"


class ReleaseWithheld(Forbidden):
    """403: the release's membership-inference audit failed the gateway's gate, so its data are
    withheld (the audit and the refusal are in the ledger; the spend stays spent)."""

    code = "release_withheld"


class InvalidRequest(SafeSynthError):
    """400/422: the gateway refused the request as invalid; nothing was spent."""

    code = "invalid_request"

    @property
    def errors(self) -> list[Any]:
        """Per-field validation errors, when the gateway listed them."""
        extra = {} if self.problem is None else (self.problem.model_extra or {})
        value = extra.get("errors", [])
        return list(value) if isinstance(value, list) else []


class NotFound(SafeSynthError):
    """404: no such dataset, job, release, token or ledger entry (or not visible to this token)."""

    code = "not_found"


class Conflict(SafeSynthError):
    """409: the request conflicts with the current state (e.g. a dataset id already registered)."""

    code = "conflict"


class PayloadTooLarge(SafeSynthError):
    """413: the request body or upload exceeds the gateway's limit."""

    code = "payload_too_large"


class RateLimited(SafeSynthError):
    """429: too many requests or jobs for this principal; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(SafeSynthError):
    """5xx: the gateway failed. A spend that was already recorded is never refunded."""

    code = "server_error"


class DataUnavailable(ServerError):
    """503: the gateway could not read the dataset's data; nothing was spent."""

    code = "data_unavailable"


class ModelUnavailable(ServerError):
    """503: the gateway could not load the language model the engine needs; nothing was spent."""

    code = "model_unavailable"


class JobFailed(SafeSynthError):
    """A synthesis job ended ``failed`` or ``cancelled``. ``job`` is its final state.

    The spend of a job that was admitted stays recorded (noise may have been drawn).
    """

    code = "job_failed"

    def __init__(self, message: str, *, job: Job, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job


class ConnectionFailed(SafeSynthError):
    """The gateway could not be reached (refused, DNS, TLS, network timeout)."""

    code = "connection_failed"


class WaitTimeout(SafeSynthError):
    """A wait for a job ran out of time; the job continues on the gateway."""

    code = "timeout"


class InvalidResponse(SafeSynthError):
    """The gateway answered with something that is not the documented wire model."""

    code = "invalid_response"


class ConfigurationError(SafeSynthError):
    """The client is missing its configuration (base URL, token) or it is invalid."""

    code = "configuration"


_BY_CODE: dict[str, type[SafeSynthError]] = {
    cls.code: cls
    for cls in (
        BudgetExhausted,
        NotAuthorized,
        Forbidden,
        ReleaseWithheld,
        InvalidRequest,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        ServerError,
        DataUnavailable,
        ModelUnavailable,
        JobFailed,
    )
}
# Common synonyms a gateway might use.
_BY_CODE.update(
    {
        "unauthorized": NotAuthorized,
        "not_authenticated": NotAuthorized,
        "invalid_token": NotAuthorized,
        "validation_error": InvalidRequest,
        "invalid_parameter": InvalidRequest,
        "bad_request": InvalidRequest,
        "internal_error": ServerError,
        "budget_exceeded": BudgetExhausted,
        "queue_full": RateLimited,
        "idempotency_key_reused": Conflict,
        "unsupported_media_type": InvalidRequest,
        "unavailable": ServerError,
    }
)

_BY_STATUS: dict[int, type[SafeSynthError]] = {
    400: InvalidRequest,
    405: InvalidRequest,
    406: InvalidRequest,
    415: InvalidRequest,
    401: NotAuthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
}


def error_for_problem(
    status: int, problem: Problem | None, *, fallback_message: str = "", retry_after: float | None = None
) -> SafeSynthError:
    """The typed error for an HTTP error response: by the problem's ``code``, else by status."""
    code = problem.code if problem is not None else None
    cls = _BY_CODE.get(code) if code else None
    if cls is None:
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else SafeSynthError)
    message = fallback_message or f"HTTP {status}"
    if problem is not None:
        message = problem.detail or problem.title or message
    # The class's code is what callers switch on; an unknown server code survives on the base class.
    kwargs: dict[str, Any] = {"status": status, "problem": problem}
    if cls is SafeSynthError and code:
        kwargs["code"] = code
    if cls is RateLimited:
        extra = (problem.model_extra or {}) if problem is not None else {}
        if retry_after is None and isinstance(extra.get("retry_after"), int | float):
            retry_after = float(extra["retry_after"])
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if cls is JobFailed:  # a job failure is reported as a Job, not a problem; keep the base type
        return SafeSynthError(message, code=JobFailed.code, status=status, problem=problem)
    return cls(message, **kwargs)
