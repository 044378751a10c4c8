"""Idempotency keys: replay, conflict, concurrency; the rate limiter."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from safesynth.gateway.api.limits import RateLimiter
from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import IdempotencyConflict, InvalidRequest, RateLimited
from safesynth.gateway.service.idempotency import IdempotencyStore, request_hash


def test_replay_and_conflict(tmp_path: Path) -> None:
    store = IdempotencyStore(StateDB(tmp_path / "s.sqlite"))
    calls: list[int] = []

    def action() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    h = request_hash("a", 1)
    assert store.run("p", "k1", h, action) == ({"n": 1}, False)
    assert store.run("p", "k1", h, action) == ({"n": 1}, True)
    assert store.run("q", "k1", h, action) == ({"n": 2}, False)  # keys are per principal
    with pytest.raises(IdempotencyConflict) as err:
        store.run("p", "k1", request_hash("a", 2), action)
    assert err.value.code == "idempotency_key_reused"
    with pytest.raises(InvalidRequest):
        store.run("p", "bad key with spaces", h, action)
    assert store.run("p", None, h, action)[1] is False


def test_concurrent_same_key_runs_once(tmp_path: Path) -> None:
    store = IdempotencyStore(StateDB(tmp_path / "s.sqlite"))
    count = 0
    lock = threading.Lock()

    def action() -> dict[str, int]:
        nonlocal count
        with lock:
            count += 1
        return {"n": 1}

    threads = [threading.Thread(target=store.run, args=("p", "same", "h", action)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count == 1


def test_failed_action_is_not_stored(tmp_path: Path) -> None:
    store = IdempotencyStore(StateDB(tmp_path / "s.sqlite"))

    def fail() -> dict[str, int]:
        raise InvalidRequest("no")

    with pytest.raises(InvalidRequest):
        store.run("p", "k", "h", fail)
    assert store.run("p", "k", "h", lambda: {"ok": 1}) == ({"ok": 1}, False)


def test_rate_limiter_bucket() -> None:
    limiter = RateLimiter(rate=0.001, burst=3)
    for _ in range(3):
        limiter.hit("t")
    with pytest.raises(RateLimited) as err:
        limiter.hit("t")
    assert err.value.extra["retry_after"] > 0
    limiter.hit("other")  # buckets are per key


def test_old_keys_expire(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s.sqlite")
    store = IdempotencyStore(db)
    store.run("p", "old", "h", lambda: {"n": 1})
    db.execute("UPDATE idempotency SET created_at = '2000-01-01T00:00:00+00:00' WHERE key = 'old'")
    store.run("p", "new", "h", lambda: {"n": 2})
    assert store.expire(24.0) == 1
    assert store.run("p", "old", "h", lambda: {"n": 3}) == ({"n": 3}, False)  # forgotten: runs again
    assert store.run("p", "new", "h", lambda: {"n": 4}) == ({"n": 2}, True)
