"""Tokens: 256-bit secrets, only hashes stored, roles and grants, revocation, uniform failures."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import Forbidden, InvalidRequest, NotAuthorized, NotFound
from safesynth.gateway.service.tokens import Role, TokenStore


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(StateDB(tmp_path / "state.sqlite"))


def test_secret_is_256_bit_and_only_hash_stored(store: TokenStore, tmp_path: Path) -> None:
    record, secret = store.create(name="a", role="analyst", datasets=["d1"])
    body = secret.split("_", 2)[2]
    assert len(body) == 43  # 32 bytes urlsafe base64 without padding
    raw = sqlite3.connect(tmp_path / "state.sqlite").execute("SELECT * FROM tokens").fetchall()
    flat = repr(raw)
    assert secret not in flat and body not in flat
    stored = raw[0][3]
    assert stored == hashlib.sha256(secret.encode()).digest()
    principal = store.authenticate(secret)
    assert principal.role is Role.ANALYST and principal.datasets == frozenset({"d1"})
    assert principal.actor == f"token:{record.id}"


@pytest.mark.parametrize(
    "presented",
    [None, "", "garbage", "ssk_0123456789abcdef_" + "A" * 43, "Bearer x"],
)
def test_bad_tokens_are_not_authorized(store: TokenStore, presented: str | None) -> None:
    store.create(name="a", role="admin")
    with pytest.raises(NotAuthorized) as err:
        store.authenticate(presented)
    assert err.value.code == "not_authorized"


def test_tampered_secret_with_valid_id_fails(store: TokenStore) -> None:
    _, secret = store.create(name="a", role="admin")
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    with pytest.raises(NotAuthorized):
        store.authenticate(tampered)


def test_revoked_and_expired_tokens_fail(store: TokenStore) -> None:
    record, secret = store.create(name="a", role="auditor")
    store.authenticate(secret)
    store.revoke(record.id)
    with pytest.raises(NotAuthorized):
        store.authenticate(secret)
    assert store.get(record.id).revoked
    past = datetime.now(UTC) - timedelta(seconds=1)
    _, expired = store.create(name="b", role="auditor", expires_at=past)
    with pytest.raises(NotAuthorized):
        store.authenticate(expired)


def test_grants_only_for_analysts_and_roles_checked(store: TokenStore) -> None:
    with pytest.raises(InvalidRequest):
        store.create(name="a", role="admin", datasets=["d"])
    with pytest.raises(InvalidRequest):
        store.create(name="a", role="root")
    with pytest.raises(InvalidRequest):
        store.create(name="a", role="analyst", datasets=["../etc"])
    with pytest.raises(NotFound):
        store.revoke("nope")


def test_principal_authorization_helpers(store: TokenStore) -> None:
    _, secret = store.create(name="a", role="analyst", datasets=["d1"])
    principal = store.authenticate(secret)
    assert principal.can_see("d1") and not principal.can_see("d2")
    with pytest.raises(Forbidden):
        principal.require_dataset("d2")
    with pytest.raises(Forbidden):
        principal.require_admin()
    _, audit = store.create(name="b", role="auditor")
    assert store.authenticate(audit).can_see("anything")


def test_revocation_by_another_process_takes_effect_on_the_next_request(tmp_path: Path) -> None:
    """Authentication remembers rows it read; a revocation committed by another connection (the
    local CLI on the same home) or an UPDATE by hand must still refuse the very next request."""
    server = TokenStore(StateDB(tmp_path / "state.sqlite"))
    _, first = server.create(name="a", role="analyst", datasets=["d1"])
    record, second = server.create(name="b", role="auditor")
    for _ in range(3):  # the rows are now in memory
        server.authenticate(first)
        server.authenticate(second)
    cli = TokenStore(StateDB(tmp_path / "state.sqlite"))  # another connection, like the local CLI
    cli.revoke(record.id)
    with pytest.raises(NotAuthorized):
        server.authenticate(second)
    assert server.authenticate(first).role is Role.ANALYST
    raw = sqlite3.connect(tmp_path / "state.sqlite")
    with raw:
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        raw.execute("UPDATE tokens SET expires_at = ?", (past,))
    raw.close()
    with pytest.raises(NotAuthorized):
        server.authenticate(first)


def test_own_revocation_and_expiry_with_remembered_rows(store: TokenStore) -> None:
    record, secret = store.create(name="a", role="admin", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert store.authenticate(secret).role is Role.ADMIN
    assert store.authenticate(secret).role is Role.ADMIN  # from memory
    store.revoke(record.id)
    with pytest.raises(NotAuthorized):
        store.authenticate(secret)
