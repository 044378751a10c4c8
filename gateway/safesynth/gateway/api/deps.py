"""FastAPI dependencies: the gateway from the app state, the authenticated (rate-limited) principal.

Both are ``async``: they only read memory and one indexed SQLite row (microseconds), so they run on the
event loop instead of costing two thread-pool hops per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from safesynth.gateway.api.limits import RateLimiter
from safesynth.gateway.service.errors import GatewayUnavailable, NotAuthorized
from safesynth.gateway.service.gateway import Gateway
from safesynth.gateway.service.tokens import Principal

__all__ = ["CurrentPrincipal", "GatewayDep", "IdempotencyKey", "get_gateway", "get_principal"]


async def get_gateway(request: Request) -> Gateway:
    """The app's gateway (503 while starting or stopping)."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise GatewayUnavailable("the gateway is not running")
    assert isinstance(gateway, Gateway)
    return gateway


_bearer = HTTPBearer(auto_error=False, description="A SafeSynth token: `Authorization: Bearer ssk_...`")


async def get_principal(
    request: Request,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    """Authenticate ``Authorization: Bearer <token>`` and apply the token's rate limit."""
    header = request.headers.get("authorization")
    if header is not None and credentials is None:
        raise NotAuthorized("use 'Authorization: Bearer <token>'")
    token = credentials.credentials if credentials is not None else None
    principal = gateway.authenticate(token)
    limiter = getattr(request.app.state, "rate_limiter", None)
    if isinstance(limiter, RateLimiter):
        limiter.hit(principal.token_id)
    return principal


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="A retry with the same key returns the first answer and never spends twice.",
    ),
]
