"""``safesynth init``: create the data home (0700), the ledger signing key (0600), the ledger, the state
database and a first admin token (its secret is returned once and never stored)."""

from __future__ import annotations

from dataclasses import dataclass

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import Conflict
from safesynth.gateway.service.files import ensure_private_dir
from safesynth.gateway.service.tokens import Role, TokenRecord, TokenStore
from safesynth.gateway.settings import GatewaySettings, check_permissions
from safesynth.ledger import LedgerStore, Signer

__all__ = ["InitResult", "init_home"]


@dataclass(frozen=True)
class InitResult:
    """What ``init`` made: the admin token (secret shown once) and the key's public half."""

    admin: TokenRecord
    admin_token: str
    public_key: bytes


def init_home(settings: GatewaySettings, *, admin_name: str = "admin") -> InitResult:
    """Initialize ``settings.home``; Conflict if it already holds a ledger or key."""
    home = settings.home
    if settings.signing_key_path.exists() or settings.ledger_path.exists() or settings.state_path.exists():
        raise Conflict(f"{home} is already initialized (found a ledger, key or state file)")
    ensure_private_dir(home)
    ensure_private_dir(settings.datasets_dir)
    ensure_private_dir(settings.releases_dir)
    check_permissions(settings)
    signer = Signer.generate()
    signer.save(settings.signing_key_path)
    settings.signing_key_path.chmod(0o600)
    signer.save_public(settings.public_key_path)
    store = LedgerStore.create(settings.ledger_path, signer, origin=settings.ledger_origin)
    db = StateDB(settings.state_path)
    settings.state_path.chmod(0o600)
    try:
        record, secret = TokenStore(db).create(name=admin_name, role=Role.ADMIN)
        store.append(
            "token.created/v1",
            {"token": record.id, "name": record.name, "role": record.role.value, "datasets": []},
            actor="local-admin",
        )
    finally:
        db.close()
        close = getattr(store, "close", None)
        if callable(close):
            close()
    return InitResult(admin=record, admin_token=secret, public_key=signer.public_key_bytes())
