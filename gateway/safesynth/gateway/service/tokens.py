"""Bearer tokens and principals: 256-bit random secrets, stored only as SHA-256 hashes.

A token reads ``ssk_<id>_<secret>``: ``id`` (64 random bits, hex) names the row, ``secret`` holds
256 random bits (``secrets.token_urlsafe(32)``). The table stores ``sha256(token)``; authentication
looks the row up by ``id`` and compares the hashes with :func:`hmac.compare_digest` (constant time).
A malformed, unknown, expired or revoked token is :class:`~safesynth.gateway.service.errors.NotAuthorized`
with the same message, so the answer does not reveal which.

Authentication keeps the rows it read in memory: a row is reused only while nothing can have changed
it, i.e. while this store wrote no token and SQLite's ``data_version`` says no other connection (the
local CLI revoking a token, another process) committed anything since. Revocation and expiry take
effect on the very next request, exactly as without the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import Forbidden, InvalidRequest, NotAuthorized, NotFound

__all__ = ["Principal", "Role", "TokenRecord", "TokenStore", "hash_token"]

_TOKEN_RE = re.compile(r"^ssk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DUMMY_HASH = hashlib.sha256(b"safesynth-dummy").digest()


class Role(StrEnum):
    """What a token may do."""

    ADMIN = "admin"  # everything: tokens, datasets, requests, ledger
    ANALYST = "analyst"  # plan, synthesize, query, download: granted datasets only
    AUDITOR = "auditor"  # read: datasets, budgets, jobs, releases' audits, the ledger


def hash_token(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes (the only form stored)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a token id, its name and role, and (analysts) its dataset grants."""

    token_id: str
    name: str
    role: Role
    datasets: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How the ledger names this caller."""
        return f"token:{self.token_id}"

    def require(self, *roles: Role) -> None:
        """Forbidden unless the role is one of ``roles``."""
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"this needs the role {allowed}; the token has role {self.role.value}")

    def require_admin(self) -> None:
        """Forbidden unless the role is admin."""
        self.require(Role.ADMIN)

    def can_see(self, dataset: str) -> bool:
        """Whether this caller may see ``dataset`` (admins and auditors: all; analysts: grants)."""
        return self.role is not Role.ANALYST or dataset in self.datasets

    def require_dataset(self, dataset: str) -> None:
        """Forbidden unless this caller may see ``dataset``."""
        if not self.can_see(dataset):
            raise Forbidden(f"the token has no grant for dataset {dataset!r}")


@dataclass(frozen=True)
class TokenRecord:
    """A token as stored (never the secret)."""

    id: str
    name: str
    role: Role
    datasets: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        """Whether the token was revoked."""
        return self.revoked_at is not None


def _failure() -> NotAuthorized:
    """The one answer to every authentication failure (it does not say which)."""
    return NotAuthorized("a valid bearer token is required (missing, unknown, expired or revoked)")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class TokenStore:
    """Create, list, revoke and authenticate tokens in the state database."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        # token id -> (stored hash, record): rows read by authenticate, valid for one (data_version,
        # generation); the generation moves on each write of this store (create, revoke).
        self._rows: dict[str, tuple[bytes, TokenRecord]] = {}
        self._rows_at: tuple[int, int] | None = None
        self._generation = 0
        self._rows_lock = threading.Lock()

    def _forget_rows(self) -> None:
        with self._rows_lock:
            self._generation += 1
            self._rows.clear()
            self._rows_at = None

    def create(
        self,
        *,
        name: str,
        role: Role | str,
        datasets: Iterable[str] = (),
        expires_at: datetime | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token: its record and the secret (shown once; only its hash is kept)."""
        try:
            role = Role(role)
        except ValueError:
            raise InvalidRequest(f"unknown role {role!r}; one of admin, analyst, auditor") from None
        grants = tuple(sorted(set(datasets)))
        for dataset in grants:
            if not _DATASET_RE.match(dataset):
                raise InvalidRequest(f"invalid dataset id {dataset!r} in grants")
        if grants and role is not Role.ANALYST:
            raise InvalidRequest("dataset grants apply to analysts only (admins and auditors see all)")
        if not name or len(name) > 200 or any(ord(ch) < 32 for ch in name):
            raise InvalidRequest("a token name is 1 to 200 printable characters")
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        token_id = secrets.token_hex(8)
        secret = f"ssk_{token_id}_{secrets.token_urlsafe(32)}"
        created = _now()
        self._forget_rows()
        self._db.execute(
            "INSERT INTO tokens (id, name, role, hash, datasets, created_at, expires_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                token_id,
                name,
                role.value,
                hash_token(secret),
                json.dumps(list(grants)),
                created.isoformat(),
                None if expires_at is None else expires_at.isoformat(),
            ),
        )
        return TokenRecord(token_id, name, role, grants, created, expires_at, None), secret

    def get(self, token_id: str) -> TokenRecord:
        """The record of ``token_id``; NotFound if there is none."""
        row = self._db.one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return self._record(row)

    def list(self) -> list[TokenRecord]:
        """Every token, oldest first."""
        return [self._record(row) for row in self._db.query("SELECT * FROM tokens ORDER BY created_at, id")]

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke ``token_id`` (idempotent); NotFound if there is none."""
        try:
            self._db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_now().isoformat(), token_id),
            )
        finally:  # after the write: no reader keeps (or caches) the row as it was
            self._forget_rows()
        return self.get(token_id)

    def count_admins(self) -> int:
        """How many unrevoked admin tokens exist."""
        row = self._db.one("SELECT COUNT(*) AS n FROM tokens WHERE role = 'admin' AND revoked_at IS NULL")
        return 0 if row is None else int(row["n"])

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a presented token; NotAuthorized (same message) for every failure."""
        if not token:
            raise _failure()
        match = _TOKEN_RE.match(token)
        found = self._lookup(match.group(1)) if match else None
        stored = found[0] if found is not None else _DUMMY_HASH
        equal = hmac.compare_digest(hash_token(token), stored)
        if found is None or not equal:
            raise _failure()
        record = found[1]
        if record.revoked or (record.expires_at is not None and record.expires_at <= _now()):
            raise _failure()
        return Principal(record.id, record.name, record.role, frozenset(record.datasets))

    def _lookup(self, token_id: str) -> tuple[bytes, TokenRecord] | None:
        """(stored hash, record) of ``token_id``, from memory while nothing can have changed it."""
        at = (self._db.data_version(), 0)
        with self._rows_lock:
            at = (at[0], self._generation)
            if self._rows_at != at:
                self._rows.clear()
                self._rows_at = at
            hit = self._rows.get(token_id)
        if hit is not None:
            return hit
        row = self._db.one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        if row is None:
            return None  # unknown ids are not remembered
        found = (bytes(row["hash"]), self._record(row))
        with self._rows_lock:
            if self._rows_at == at and len(self._rows) < 10_000:  # nothing was written meanwhile
                self._rows[token_id] = found
        return found

    @staticmethod
    def _record(row: sqlite3.Row) -> TokenRecord:
        get = row.__getitem__
        return TokenRecord(
            id=get("id"),
            name=get("name"),
            role=Role(get("role")),
            datasets=tuple(json.loads(get("datasets"))),
            created_at=datetime.fromisoformat(get("created_at")),
            expires_at=_dt(get("expires_at")),
            revoked_at=_dt(get("revoked_at")),
        )
