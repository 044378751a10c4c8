"""``safesynth audit --release-file`` and ``safesynth audit --canaries`` against a real loopback gateway."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import Home, make_home, require_dp, table
from gw_server import running

from safesynth.gateway.cli import client as cli_client
from safesynth.gateway.cli import main

require_dp()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    # Seed the audit designs (drawn from secrets.randbits, the OS CSPRNG, in production) so that the
    # statistical assertions are deterministic; tokens and salts still come from the CSPRNG.
    monkeypatch.setattr(secrets, "randbits", lambda bits: 20251123 % (1 << bits))
    return make_home(tmp_path, n=1500, epsilon_total=10.0)


def _run(url: str, token: str, *args: str) -> Result:
    env = {"SAFESYNTH_URL": url, "SAFESYNTH_TOKEN": token}
    return CliRunner().invoke(main, ["audit", *args], env=env, catch_exceptions=False)


def test_audit_cli_external_and_canary(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copied = tmp_path / "vendor.csv"
    table(1500, 7).iloc[:400].to_csv(copied, index=False)  # rows of the registered table itself
    big = tmp_path / "vendor-big.csv"
    table(4000, 8).to_csv(big, index=False)  # over the (lowered) limit: sent as Parquet
    monkeypatch.setattr(cli_client, "_CONVERT_ABOVE", 64 * 1024)
    with running(home.settings, gateway=home.gateway) as url:
        ext = _run(
            url,
            home.tokens["auditor"],
            "--release-file",
            str(copied),
            "--dataset",
            "d1",
            "--purpose",
            "vendor check",
            "--json",
        )
        human = _run(
            url,
            home.tokens["admin"],
            "--release-file",
            str(big),
            "--dataset",
            "d1",
            "--purpose",
            "vendor check",
        )
        plan = _run(
            url,
            home.tokens["analyst"],
            "--canaries",
            "--dataset",
            "d1",
            "--epsilon",
            "0.5",
            "--purpose",
            "engine check",
            "--dry-run",
            "--json",
        )
        canary = _run(
            url,
            home.tokens["analyst"],
            "--canaries",
            "--dataset",
            "d1",
            "--epsilon",
            "0.5",
            "--purpose",
            "engine check",
            "--n-canaries",
            "100",
            "-q",
        )
        refused = _run(
            url,
            home.tokens["analyst"],
            "--release-file",
            str(copied),
            "--dataset",
            "d1",
            "--purpose",
            "probe",
        )
        usage = _run(url, home.tokens["admin"], "--release-file", str(copied))
    assert ext.exit_code == 0, ext.output
    data = json.loads(ext.stdout)
    assert data["verdict"] == "FAIL" and data["rule"] == "verbatim-copies"
    assert data["scope"] == "external-table/v1" and data["rows"] == 400
    assert human.exit_code == 0, human.output
    assert "caveats:" in human.stdout and "recorded in the ledger as entry #" in human.stdout
    assert "4000 rows" in human.stdout
    assert cli_client._table_upload(big, None)[1] == "parquet"  # the large CSV went as Parquet
    assert cli_client._table_upload(copied, None)[1] == "csv"
    assert plan.exit_code == 0 and json.loads(plan.stdout)["admitted"] is True
    assert canary.exit_code == 0, canary.output
    assert "empirical epsilon lower bound" in canary.stdout and "not released" in canary.stdout
    assert refused.exit_code == 1 and "forbidden" in refused.output
    assert usage.exit_code == 2 and "--dataset" in usage.output
