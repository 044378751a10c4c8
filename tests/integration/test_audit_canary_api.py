"""Canary audits through a real loopback gateway and the SDK.

The DP run is the real tabular engine; the positive control is a deliberately broken engine (it plans
like the tabular engine, then returns its input verbatim): a fake for testing the code around engines.
The honest run's bound holds with 95% confidence, so its test could fail by chance with probability at
most 5% over seeds; the designs are seeded here (the fixture fixes secrets.randbits), the engine's DP
noise is not (the gateway always uses its secure source).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import Home, make_home, require_dp
from gw_server import running

from safesynth.gateway import engines
from safesynth.gateway.engines.base import EngineContext, EngineOutput, Plan
from safesynth.gateway.engines.tabular.engine import TabularEngine
from safesynth.sdk import Client
from safesynth.sdk.errors import SafeSynthError
from safesynth.sdk.schema import DatasetSchema

require_dp()


class VerbatimEngine(TabularEngine):
    """Charges what the tabular engine plans, then returns the private input itself."""

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        return EngineOutput(table=data.reset_index(drop=True).copy(), report={})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    # Seed the audit designs (drawn from secrets.randbits, the OS CSPRNG, in production) so that the
    # statistical assertions are deterministic; tokens and salts still come from the CSPRNG.
    monkeypatch.setattr(secrets, "randbits", lambda bits: 20251123 % (1 << bits))
    return make_home(tmp_path, n=1500, epsilon_total=10.0)


def test_honest_canary_audit_is_charged_committed_and_not_released(home: Home) -> None:
    with (
        running(home.settings, gateway=home.gateway) as url,
        Client(base_url=url, token=home.tokens["analyst"], max_retries=0) as analyst,
    ):
        before = analyst.budget("d1").epsilon_spent
        plan = analyst.audits.plan_canary("d1", epsilon=1.0, purpose="check the engine", n_canaries=200)
        result = analyst.audits.canary("d1", epsilon=1.0, purpose="check the engine", n_canaries=200)
        after = analyst.budget("d1").epsilon_spent
        releases = analyst.releases.list(dataset="d1")
        job = analyst.jobs.get(result.job_id)
        with (
            Client(base_url=url, token=home.tokens["analyst_other"], max_retries=0) as stranger,
            pytest.raises(SafeSynthError) as other,
        ):
            stranger.audits.canary_result(result.job_id)
    entries = [(e.kind, dict(e.payload)) for e in home.gateway.ledger.entries(start_seq=0)]
    assert plan.admitted and plan.epsilon <= 1.0 + 1e-9
    assert job.epsilon == pytest.approx(plan.epsilon) and after > before  # charged like a synthesis
    assert releases == [] and job.release_id is None and job.kind == "canary-audit"
    assert other.value.status in (403, 404)
    assert result.empirical_epsilon_lower_bound < result.accountant_epsilon
    assert result.verdict == "PASS" and result.n_canaries == 200 and not result.released
    kinds = [k for k, _ in entries]
    spend = next(
        i for i, (k, p) in enumerate(entries) if k == "spend/v1" and p["request_kind"] == "canary-audit"
    )
    design = next(
        i for i, (k, p) in enumerate(entries) if k == "audit.design/v1" and p.get("scope") == "canary"
    )
    audit = next(i for i, (k, p) in enumerate(entries) if k == "audit/v1" and p.get("scope") == "canary")
    assert spend < design < audit and "release/v1" not in kinds[spend:]
    assert entries[spend][1]["released"] is False
    assert entries[design][1]["commitment"]["digest"] == result.design_commitment  # type: ignore[index]
    assert "cnry" not in repr(entries)  # no canary identity in the ledger


def test_verbatim_engine_is_caught_and_auditors_cannot_spend(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(engines.ENGINES, "tabular", f"{__name__}:VerbatimEngine")
    with running(home.settings, gateway=home.gateway) as url:
        with Client(base_url=url, token=home.tokens["admin"], max_retries=0) as admin:
            result = admin.audits.canary("d1", epsilon=1.0, purpose="positive control", n_canaries=1000)
        with (
            Client(base_url=url, token=home.tokens["auditor"], max_retries=0) as auditor,
            pytest.raises(SafeSynthError) as refused,
        ):
            auditor.audits.submit_canary("d1", epsilon=1.0, purpose="no")
    assert result.verdict == "FAIL" and result.rule == "dp-claim-refuted"
    assert result.empirical_epsilon_lower_bound > 3.0 > result.accountant_epsilon
    assert result.auc > 0.99
    assert refused.value.status == 403
