"""Request limits: a body-size guard (ASGI middleware) and a per-token rate limiter (token bucket)."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safesynth.gateway.service.errors import RateLimited

__all__ = ["BodyLimitMiddleware", "RateLimiter"]


class _TooLarge(Exception):
    pass


def _segment_matches(want: str, got: str) -> bool:
    """A path segment matches a literal, or a ``{name}`` placeholder if non-empty."""
    return (want.startswith("{") and want.endswith("}") and got != "") or want == got


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` (``max_upload_bytes`` on upload paths) with a 413 problem.

    Checks ``Content-Length`` first, and counts streamed bytes too (chunked bodies).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int, upload_paths: tuple[str, ...]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_paths = upload_paths

    def _is_upload(self, path: str) -> bool:
        """``path`` is an upload path: equal to one, or matching one with ``{name}`` segments."""
        for pattern in self.upload_paths:
            if path == pattern:
                return True
            want, got = pattern.strip("/").split("/"), path.strip("/").split("/")
            if len(want) == len(got) and all(
                (w.startswith("{") and w.endswith("}") and g != "") or w == g
                for w, g in zip(want, got, strict=True)
            ):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if self._is_upload(scope.get("path", "")) else self.max_bytes
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if length is not None and length > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        from safesynth.gateway.api.problems import problem_response

        response = problem_response(
            413,
            "payload_too_large",
            "Payload too large",
            f"the request body is over the limit of {limit} bytes",
        )
        await response(scope, receive, send)


class RateLimiter:
    """A token bucket per key: ``rate`` requests/s sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key: str) -> None:
        """Take one token for ``key``; RateLimited (with retry_after) when the bucket is empty."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(
                    f"too many requests for this token: at most {self.rate:g}/s",
                    extra={"retry_after": round(wait, 3)},
                )
            self._buckets[key] = (tokens - 1.0, now)

    def snapshot(self) -> dict[str, Any]:
        """Bucket levels (for tests and diagnostics)."""
        with self._lock:
            return {key: value[0] for key, value in self._buckets.items()}
