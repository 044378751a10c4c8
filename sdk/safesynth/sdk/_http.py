"""What the sync and async clients share: configuration, request policy, response decoding.

Kept free of any I/O so that both clients (and their tests) use exactly the same rules.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from safesynth.sdk.errors import ConfigurationError, InvalidResponse, SafeSynthError, error_for_problem
from safesynth.sdk.models import Problem
from safesynth.sdk.routes import IDEMPOTENCY_HEADER

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "ENV_TIMEOUT",
    "ENV_TOKEN",
    "ENV_URL",
    "RETRY_STATUSES",
    "ClientConfig",
    "backoff_seconds",
    "decode",
    "encode_body",
    "error_from_response",
    "is_retryable_request",
    "new_idempotency_key",
    "query_params",
    "resolve_config",
    "retry_after_seconds",
]

M = TypeVar("M", bound=BaseModel)

ENV_URL = "SAFESYNTH_URL"
ENV_TOKEN = "SAFESYNTH_TOKEN"  # noqa: S105  (the name of an environment variable, not a secret)
ENV_TIMEOUT = "SAFESYNTH_TIMEOUT"
#: The gateway's default address (it binds loopback by default).
DEFAULT_URL = "http://127.0.0.1:8765"
#: Finite by default: 30 s per read, 5 s to connect. Uploads and downloads may pass their own.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: Statuses worth retrying for an idempotent request (the gateway was busy or restarting).
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _user_agent() -> str:
    try:
        return f"safesynth-sdk/{version('safesynth')}"
    except PackageNotFoundError:  # running from a source tree
        return "safesynth-sdk"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A resolved client configuration. ``token`` is kept out of ``repr``."""

    base_url: str
    token: str | None
    timeout: httpx.Timeout
    max_retries: int
    user_agent: str

    def __repr__(self) -> str:
        token = "<set>" if self.token else None
        return f"ClientConfig(base_url={self.base_url!r}, token={token}, max_retries={self.max_retries})"

    def headers(self) -> dict[str, str]:
        """The headers every request carries."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_config(
    *,
    base_url: str | None,
    token: str | None,
    timeout: float | httpx.Timeout | None,
    max_retries: int,
    allow_insecure: bool,
) -> ClientConfig:
    """Arguments first, then ``SAFESYNTH_URL`` / ``SAFESYNTH_TOKEN`` / ``SAFESYNTH_TIMEOUT`` (seconds),
    then the defaults (loopback, no token, 30 s).

    Refuses to send a bearer token in clear text (``http://``) to a host that is not loopback,
    unless ``allow_insecure`` is set.
    """
    url = (base_url or os.environ.get(ENV_URL) or DEFAULT_URL).strip().rstrip("/")
    secret = token if token is not None else os.environ.get(ENV_TOKEN)
    secret = secret.strip() if secret else None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base URL must be http(s)://host[:port], got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError("base URL must not carry a query, fragment or credentials")
    if secret and parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure:
        raise ConfigurationError(
            f"refusing to send a token over plain http to {parts.hostname}; use https "
            "(or allow_insecure=True on a trusted network)"
        )
    if secret is not None and (not secret.isprintable() or " " in secret):
        raise ConfigurationError("the token contains spaces or control characters")
    if max_retries < 0 or max_retries > 10:
        raise ConfigurationError("max_retries must be between 0 and 10")
    if timeout is None and os.environ.get(ENV_TIMEOUT):
        try:
            timeout = float(os.environ[ENV_TIMEOUT])
        except ValueError:
            raise ConfigurationError(f"{ENV_TIMEOUT} must be a number of seconds") from None
    if timeout is None:
        resolved = DEFAULT_TIMEOUT
    elif isinstance(timeout, httpx.Timeout):
        resolved = timeout
    else:
        if not 0 < timeout < float("inf"):
            raise ConfigurationError("timeout must be a positive number of seconds")
        resolved = httpx.Timeout(float(timeout), connect=min(5.0, float(timeout)))
    return ClientConfig(url, secret, resolved, max_retries, _user_agent())


def new_idempotency_key() -> str:
    """A fresh random key for one logical POST (reused across its retries): 128 random bits, 32 hex."""
    return secrets.token_hex(16)


def is_retryable_request(request: httpx.Request) -> bool:
    """GET/HEAD are idempotent; a POST is when it carries an Idempotency-Key."""
    return request.method in ("GET", "HEAD") or IDEMPOTENCY_HEADER in request.headers


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff (0.25, 0.5, 1, ... capped at 8 s); a server's Retry-After wins (<= 60 s)."""
    if retry_after is not None:
        return max(0.0, min(retry_after, 60.0))
    return float(min(0.25 * (2**attempt), 8.0))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def encode_body(model: BaseModel) -> bytes:
    """A wire model as JSON bytes (what the gateway validates)."""
    return model.model_dump_json(exclude_none=False).encode()


def _problem_from(response: httpx.Response) -> Problem | None:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "code" in data and "status" in data and "title" in data:
        try:
            return Problem.model_validate(data)
        except ValidationError:
            return None
    # A framework's default error body ({"detail": ...}): keep the message.
    detail = data.get("detail")
    if detail is None:
        return None
    text = detail if isinstance(detail, str) else json.dumps(detail)[:2000]
    return Problem(title=response.reason_phrase or "error", status=response.status_code, code="", detail=text)


def error_from_response(response: httpx.Response) -> SafeSynthError:
    """The typed error for an error response (problem+json or anything else)."""
    problem = _problem_from(response)
    fallback = f"HTTP {response.status_code} {response.reason_phrase} from {response.request.url.path}"
    if problem is None and response.content:
        fallback += ": " + response.text[:300]
    return error_for_problem(
        response.status_code, problem, fallback_message=fallback, retry_after=retry_after_seconds(response)
    )


def decode(response: httpx.Response, model: type[M]) -> M:
    """The response body as ``model``; an error status raises its typed error."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise InvalidResponse(
            f"{response.request.method} {response.request.url.path}: the gateway's answer is not a valid "
            f"{model.__name__}: {exc.error_count()} error(s), first: {exc.errors()[0]['msg']}",
            status=response.status_code,
        ) from exc


def query_params(values: Mapping[str, Any]) -> dict[str, str | int | float]:
    """Drop None values from query parameters."""
    return {key: value for key, value in values.items() if value is not None}
