"""External-table audits through a real loopback gateway and the SDK: roles, ledger, quota, labels."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import Home, make_home, require_dp, table
from gw_server import running

from safesynth.gateway.service import external_audit
from safesynth.sdk import AsyncClient, Client
from safesynth.sdk.errors import SafeSynthError
from safesynth.sdk.models import ExternalAudit, PlanResponse

require_dp()

N = 2000  # rows of the registered datasets d1 and d2 (gw_fixtures.table(N, seed=7))


def _csv(seed: int, n: int = 600, *, copy_of_registered: bool = False) -> bytes:
    frame = table(N, 7).sample(n, random_state=seed) if copy_of_registered else table(n, seed)
    buffer = io.StringIO()
    frame.assign(tool_score=0.5).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    # Seed the audit designs (drawn from secrets.randbits, the OS CSPRNG, in production) so that the
    # statistical assertions are deterministic; tokens and salts still come from the CSPRNG.
    monkeypatch.setattr(secrets, "randbits", lambda bits: 20251123 % (1 << bits))
    return make_home(tmp_path, n=N)


def _ledger_audits(client: Client) -> list[dict[str, object]]:
    entries = client.ledger.entries(kind="audit/v1", limit=1000).entries
    return [dict(e.payload) for e in entries if e.payload.get("scope") == "external"]


def test_external_audit_roles_ledger_and_labels(home: Home) -> None:
    with running(home.settings, gateway=home.gateway) as url:
        with Client(base_url=url, token=home.tokens["auditor"], max_retries=0) as auditor:
            copied = auditor.audits.external(
                "d1", _csv(1, copy_of_registered=True), purpose="check vendor output", format="csv"
            )
            fresh = auditor.audits.external("d1", _csv(99), purpose="check vendor output", format="csv")
            audits = _ledger_audits(auditor)
        with (
            Client(base_url=url, token=home.tokens["analyst"], max_retries=0) as analyst,
            pytest.raises(SafeSynthError) as refused,
        ):
            analyst.audits.external("d1", _csv(3), purpose="probe", format="csv")
        with (
            Client(base_url=url, token=home.tokens["auditor"], max_retries=0) as auditor,
            pytest.raises(SafeSynthError) as path_refused,
        ):
            auditor.audits.external("d1", server_path="/etc/hosts", purpose="x")
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    assert path_refused.value.status == 403
    # verbatim rows of the registered table: flagged whatever the other tool was trained on
    assert copied.verdict == "FAIL" and copied.rule == "verbatim-copies"
    assert copied.audit.metrics["copy_share"] == 1.0
    # a fresh sample: never PASS for an external table, and the caveats say why
    assert fresh.verdict == "INCONCLUSIVE" and fresh.rule == "external-no-signal"
    assert fresh.scope == "external-table/v1" and any("holdout" in c for c in fresh.caveats)
    assert fresh.ignored_columns == ("tool_score",)
    assert fresh.audit.release_id == fresh.table_sha256 and fresh.rows == 600
    assert fresh.audit.attacks and fresh.requested_by == f"token:{home.token_ids['auditor']}"
    # recorded (who, why, what) before being returned; aggregates only
    assert [a["table_sha256"] for a in audits] == [copied.table_sha256, fresh.table_sha256]
    assert audits[1]["requester"] == fresh.requested_by and audits[1]["purpose"] == "check vendor output"
    text = json.dumps(audits)
    design = home.gateway.datasets.design("d1")
    assert "".join("1" if m else "0" for m in design.membership) not in text
    assert fresh.audit_seq > copied.audit_seq


def test_external_audit_quota_and_bad_tables(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(external_audit, "DEFAULT_EXTERNAL_AUDITS_PER_DAY", 1)
    with (
        running(home.settings, gateway=home.gateway) as url,
        Client(base_url=url, token=home.tokens["admin"], max_retries=0) as admin,
    ):
        first = admin.audits.external("d2", _csv(5, n=300), purpose="quota", format="csv")
        with pytest.raises(SafeSynthError) as quota:
            admin.audits.external("d2", _csv(6, n=300), purpose="quota", format="csv")
        with pytest.raises(SafeSynthError) as missing:
            admin.audits.external("d1", b"age,income\n30,100\n31,200\n", purpose="bad", format="csv")
        with pytest.raises(SafeSynthError) as tiny:
            admin.audits.external("d1", _csv(7, n=3), purpose="tiny", format="csv")
        with pytest.raises(SafeSynthError) as garbage:
            admin.audits.external("d1", b"\x00\x01not parquet", purpose="bad", format="parquet")
        audits = _ledger_audits(admin)
    assert first.audits_left_today == 0
    assert quota.value.status == 429 and quota.value.code == "rate_limited"
    assert missing.value.status == 422 and "missing" in str(missing.value)
    assert tiny.value.status == 422 and garbage.value.status == 422
    assert len(audits) == 1  # refused requests disclose nothing and record no audit


def test_async_client_audits(home: Home) -> None:
    async def run(url: str) -> tuple[ExternalAudit, PlanResponse]:
        async with AsyncClient(base_url=url, token=home.tokens["admin"], max_retries=0) as client:
            audit = await client.audits.external(
                "d1", _csv(1, copy_of_registered=True), purpose="async", format="csv"
            )
            plan = await client.audits.plan_canary("d1", epsilon=0.5, purpose="async plan", n_canaries=50)
            return audit, plan

    with running(home.settings, gateway=home.gateway) as url:
        audit, plan = asyncio.run(run(url))
    assert audit.verdict == "FAIL" and audit.scope == "external-table/v1"
    assert plan.admitted is True and 0 < plan.epsilon <= 0.5 + 1e-9
    assert plan.engine == "canary-audit:tabular"
