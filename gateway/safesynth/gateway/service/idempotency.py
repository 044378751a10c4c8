"""Idempotency keys: a retried POST with the same key returns the first answer and never spends twice.

Keys are scoped per principal. The first request with a key runs; its JSON answer is stored with a
hash of the request. A retry with the same key and the same request gets the stored answer; a reuse
of the key for a different request is refused (``idempotency_key_reused``). Concurrent requests with
the same key are serialized by a lock (one of a fixed set, chosen by the key), so only one of them can
spend.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import IdempotencyConflict, InvalidRequest

__all__ = ["IdempotencyStore", "request_hash"]

_STRIPES = 1024
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


def request_hash(*parts: Any) -> str:
    """SHA-256 of the parts' canonical JSON."""
    return hashlib.sha256(
        json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


class IdempotencyStore:
    """Stored answers by (principal, key)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        # Striped: a fixed number of locks, the same one for every retry of a (principal, key).
        self._locks = tuple(threading.Lock() for _ in range(_STRIPES))

    def _lock(self, principal: str, key: str) -> threading.Lock:
        digest = hashlib.sha256(f"{principal}\0{key}".encode()).hexdigest()
        return self._locks[int(digest[:8], 16) % _STRIPES]

    def expire(self, older_than_hours: float) -> int:
        """Forget keys older than ``older_than_hours``; return how many."""
        cutoff = datetime.now(UTC).timestamp() - older_than_hours * 3600.0
        stamp = datetime.fromtimestamp(cutoff, UTC).isoformat()
        return self._db.execute("DELETE FROM idempotency WHERE created_at < ?", (stamp,))

    def run(
        self, principal: str, key: str | None, fingerprint: str, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """``(answer, replayed)``: the stored answer for a retry, else ``action()``'s (then stored)."""
        if key is None:
            return action(), False
        fresh: list[dict[str, Any]] = []

        def as_text() -> str:
            fresh.append(action())
            return json.dumps(fresh[0])

        text, replayed = self.run_text(principal, key, fingerprint, as_text)
        return (json.loads(text) if replayed else fresh[0]), replayed

    def run_text(
        self, principal: str, key: str | None, fingerprint: str, action: Callable[[], str]
    ) -> tuple[str, bool]:
        """:meth:`run` for an answer that is already JSON text (stored and returned as it is)."""
        if key is None:
            return action(), False
        if not _KEY_RE.match(key):
            raise InvalidRequest("an Idempotency-Key is 1 to 200 visible ASCII characters")
        with self._lock(principal, key):
            row = self._db.one(
                "SELECT request_hash, response FROM idempotency WHERE principal = ? AND key = ?",
                (principal, key),
            )
            if row is not None:
                if row["request_hash"] != fingerprint:
                    raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
                return str(row["response"]), True
            answer = action()
            self._db.execute(
                "INSERT INTO idempotency (principal, key, request_hash, response, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (principal, key, fingerprint, answer, datetime.now(UTC).isoformat()),
            )
            return answer, False
