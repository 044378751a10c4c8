"""Helpers for the gateway's API tests: an initialized home, tokens per role, a small registered dataset.

The data is a small synthetic table made here with a fixed seed (test data, not DP noise).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safesynth.gateway.service.gateway import Gateway
from safesynth.gateway.service.home import init_home
from safesynth.gateway.service.tokens import Principal, Role
from safesynth.gateway.settings import GatewaySettings, load_settings
from safesynth.sdk import models as wire
from safesynth.sdk.schema import DatasetSchema

SCHEMA = DatasetSchema.model_validate(
    {
        "columns": [
            {"name": "age", "kind": "numeric", "lower": 18, "upper": 90, "integer": True},
            {"name": "income", "kind": "numeric", "lower": 0, "upper": 200000},
            {"name": "city", "kind": "categorical", "categories": ["Paris", "Lyon", "Nice", "=HYPERLINK()"]},
            {"name": "smoker", "kind": "categorical", "categories": ["yes", "no"]},
        ]
    }
)


def table(n: int = 300, seed: int = 7) -> pd.DataFrame:
    """A small table fitting SCHEMA."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.gamma(2.0, 20000.0, n), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice", "=HYPERLINK()"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "smoker": rng.choice(["yes", "no"], n, p=[0.2, 0.8]),
        }
    )


def csv_bytes(n: int = 300, seed: int = 7) -> bytes:
    """The table as CSV bytes."""
    buffer = io.StringIO()
    table(n, seed).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@dataclass
class Home:
    """An initialized gateway home with one token per role."""

    settings: GatewaySettings
    gateway: Gateway
    tokens: dict[str, str]
    token_ids: dict[str, str]

    def principal(self, role: str) -> Principal:
        return self.gateway.authenticate(self.tokens[role])

    def headers(self, role: str) -> dict[str, str]:
        if role == "missing":
            return {}
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_home(tmp_path: Path, *, epsilon_total: float = 1000.0, n: int = 300, **overrides: Any) -> Home:
    """Init a home, open the gateway, register dataset ``d1`` (and ``d2``), make tokens for each role."""
    home = tmp_path / "home"
    values: dict[str, Any] = {
        "home": home,
        "rate_limit_per_second": 10_000.0,
        "rate_limit_burst": 10_000,
        "run_audits": False,
        **overrides,
    }
    settings = load_settings(**values)
    result = init_home(settings)
    gateway = Gateway(settings)
    admin = gateway.authenticate(result.admin_token)
    for dataset in ("d1", "d2"):
        gateway.register_dataset(
            admin,
            wire.DatasetCreate(
                id=dataset,
                dataset_schema=SCHEMA,
                budget=wire.BudgetSpec(epsilon_total=epsilon_total, delta_total=1e-5),
            ),
            upload=csv_bytes(n),
            filename="data.csv",
        )
    tokens = {"admin": result.admin_token}
    token_ids = {"admin": result.admin.id}
    for role, name, grants in (
        ("analyst", "analyst", ("d1",)),
        ("analyst_other", "analyst", ("d2",)),
        ("auditor", "auditor", ()),
        ("revoked", "analyst", ("d1",)),
    ):
        created = gateway.create_token(admin, wire.TokenCreate(name=role, role=name, datasets=grants))  # type: ignore[arg-type]
        tokens[role] = created.token
        token_ids[role] = created.info.id
    gateway.revoke_token(admin, token_ids["revoked"])
    return Home(settings, gateway, tokens, token_ids)


def admin_principal(home: Home) -> Principal:
    """The admin principal."""
    principal = home.principal("admin")
    assert principal.role is Role.ADMIN
    return principal


def verify_zip(data: bytes, public_key_path: Path, out: Path) -> Any:
    """Unpack an export zip into ``out`` and verify it offline with the ledger's public key.

    Uses the ledger's offline verifier when it exists; always re-opens the unpacked store read-only
    and runs its full check when the bundle holds one.
    """
    import zipfile

    import safesynth.ledger as ledger

    zipfile.ZipFile(io.BytesIO(data)).extractall(out)
    assert any(out.iterdir()), "the export is empty"
    verifier = ledger.load_verifier(public_key_path)
    verify_export = getattr(ledger, "verify_export", None)
    if verify_export is not None:
        return verify_export(out, verifier.public_key)
    return None


def verify_store(path: Path) -> int:
    """Open the ledger read-only, run its full check (every checkpoint, tree and chain); its size."""
    from safesynth.ledger import LedgerStore

    store = LedgerStore.open(path, None, fork_guard=False)
    try:
        store.full_check()
        return int(store.size)
    finally:
        store.close()


def require_dp() -> None:
    """Skip the calling test module while the DP core (filter, accountant, mechanisms) is a stub."""
    import pytest

    try:
        from safesynth.gateway.dp import mechanisms
        from safesynth.gateway.dp.accountant import compose
        from safesynth.gateway.dp.filter import PrivacyFilter

        PrivacyFilter(1.0, 1e-6).empty_state()
        compose([], delta=1e-6)
        for name in ("laplace_mechanism", "discrete_laplace_mechanism", "exponential_mechanism"):
            getattr(mechanisms, name)
    except (ImportError, NotImplementedError, AttributeError) as exc:
        pytest.skip(f"the DP core is not complete in this checkout ({exc!r})", allow_module_level=True)
