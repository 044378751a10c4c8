"""The remote CLI commands (a thin layer over the SDK) against the scripted fake gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from sdk_fakes import SHA, FakeGateway, job, problem, release

import safesynth.sdk
from safesynth.gateway.cli import main
from safesynth.gateway.cli.client import parse_filter

CSV = b"a,b\n1,x\n"


@pytest.fixture
def gw(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    real = safesynth.sdk.Client

    class FakeClient(real):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs, transport=httpx.MockTransport(gateway))
            self._sleep = lambda _s: None

    monkeypatch.setattr(safesynth.sdk, "Client", FakeClient)
    monkeypatch.setenv("SAFESYNTH_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("SAFESYNTH_TOKEN", "env-token-" + "x" * 30)
    return gateway


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_synth_waits_downloads_and_prints_json(gw: FakeGateway, tmp_path: Path) -> None:
    gw.json("POST", "/v1/datasets/ds/syntheses", job(), status=202)
    gw.json("GET", "/v1/jobs/job-1", job("succeeded", 1.0, release_id=SHA))
    gw.json("GET", f"/v1/releases/{SHA}", release())
    gw.on("GET", f"/v1/releases/{SHA}/data", httpx.Response(200, content=CSV))
    out = tmp_path / "r.csv"
    result = run(
        "synth", "ds", "--rows", "5", "--epsilon", "1", "--purpose", "p", "--out", str(out), "--json", "-q"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == SHA and data["path"] == str(out)
    assert out.read_bytes() == CSV
    post = gw.sent("POST", "/v1/datasets/ds/syntheses")[0]
    assert post.headers["Authorization"] == "Bearer env-token-" + "x" * 30
    assert gw.body(post)["rows"] == 5


def test_budget_exhausted_exit_status_and_message(gw: FakeGateway) -> None:
    gw.on(
        "POST", "/v1/datasets/ds/syntheses", problem(409, "budget_exhausted", "over", epsilon_remaining=0.2)
    )
    result = run("synth", "ds", "--epsilon", "1", "--purpose", "p")
    assert result.exit_code == 3
    assert "error [budget_exhausted]: over" in result.stderr
    assert "epsilon remaining: 0.2" in result.stderr
    result = run("synth", "ds", "--epsilon", "1", "--purpose", "p", "--json")
    assert json.loads(result.stderr)["error"]["code"] == "budget_exhausted"


def test_forbidden_is_exit_1(gw: FakeGateway) -> None:
    gw.on("GET", "/v1/datasets/ds/budget", problem(403, "forbidden", "no grant"))
    result = run("budget", "ds")
    assert result.exit_code == 1
    assert "error [forbidden]: no grant" in result.stderr


def test_budget_human_output(gw: FakeGateway) -> None:
    gw.json(
        "GET",
        "/v1/datasets/ds/budget",
        {
            "dataset": "ds",
            "epsilon_total": 3,
            "delta_total": 1e-6,
            "epsilon_spent": 1,
            "delta_spent": 0,
            "epsilon_remaining": 2,
            "delta_remaining": 1e-6,
            "history": [
                {
                    "seq": 4,
                    "kind": "spend",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "actor": "ana",
                    "purpose": "fixtures",
                    "epsilon": 1,
                    "delta": 0,
                }
            ],
        },
    )
    result = run("budget", "ds")
    assert result.exit_code == 0
    assert "epsilon: 1 spent of 3, 2 left" in result.stdout
    assert "#4" in result.stdout and "fixtures" in result.stdout


def test_query_parses_filters_and_bins(gw: FakeGateway) -> None:
    answer = {"dataset": "ds", "kind": "histogram", "column": "age", "epsilon": 0.5, "delta": 0}
    answer["histogram"] = [{"label": "[0, 50)", "lower": 0, "upper": 50, "count": 12.5}]
    gw.json("POST", "/v1/datasets/ds/queries", answer)
    result = run(
        "query", "ds", "histogram", "age", "--epsilon", "0.5", "--purpose", "p",
        "--bins", "0,50,100", "--filter", "sex in F,M", "--filter", "age >= 18",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[0, 50): 12.5" in result.stdout
    body = gw.body(gw.requests[0])
    assert body["bins"] == [0.0, 50.0, 100.0]
    assert body["filters"] == [
        {"column": "sex", "op": "in", "value": ["F", "M"]},
        {"column": "age", "op": "ge", "value": 18},
    ]


def test_parse_filter() -> None:
    assert parse_filter("age >= 18") == ("age", "ge", 18)
    assert parse_filter("name == Ann Lee") == ("name", "eq", "Ann Lee")
    assert parse_filter("flag eq true") == ("flag", "eq", True)
    with pytest.raises(click.BadParameter):
        parse_filter("age ~ 3")


def test_plan_and_bad_option(gw: FakeGateway) -> None:
    gw.json(
        "POST",
        "/v1/datasets/ds/syntheses/plan",
        {
            "dataset": "ds",
            "engine": "tabular",
            "epsilon": 0.98,
            "delta": 1e-7,
            "method": "rdp",
            "admitted": False,
        },
    )
    result = run("plan", "ds", "--epsilon", "1", "--purpose", "p", "--option", "max_marginals=3")
    assert result.exit_code == 0, result.output
    assert "admitted now: NO" in result.stdout
    assert gw.body(gw.requests[0])["options"] == {"max_marginals": 3}
    result = CliRunner().invoke(main, ["plan", "ds", "--epsilon", "1", "--purpose", "p", "--option", "bad"])
    assert result.exit_code == 2
    assert len(gw.requests) == 1


def test_jobs_and_audit(gw: FakeGateway) -> None:
    gw.json("GET", "/v1/jobs", {"jobs": [job("running", 0.5)]})
    gw.json("POST", "/v1/jobs/job-1/cancel", job("cancelled", 0.5))
    audit = {
        "release_id": SHA,
        "verdict": "pass",
        "attacks": [{"name": "dcr", "auc": 0.51, "tpr_at_fpr": [{"fpr": 0.01, "tpr": 0.012}]}],
        "accountant_epsilon": 1.0,
        "empirical_epsilon_lower_bound": 0.0,
    }
    gw.json("GET", f"/v1/releases/{SHA}/audit", audit)
    assert "running" in run("jobs", "list").stdout
    timed = {**job("succeeded", 1.0), "stage_seconds": {"planning": 0.07, "releasing": 0.0082}}
    gw.json("GET", "/v1/jobs/job-1", timed)
    shown = run("jobs", "show", "job-1").stdout.splitlines()
    assert "succeeded" in shown[0] and shown[1:] == [
        "  planning         0.070 s",
        "  releasing        0.008 s",
    ]
    assert "cancelled" in run("jobs", "cancel", "job-1").stdout
    result = run("audit", SHA)
    assert result.exit_code == 0
    assert "pass" in result.stdout and "AUC 0.510" in result.stdout
    assert json.loads(run("audit", SHA, "--json").stdout)["audit"]["verdict"] == "pass"


def test_remote_commands_import_nothing_heavy() -> None:
    code = (
        "import sys\nfrom safesynth.gateway.cli import main\n"
        "for cmd in ('synth', 'query', 'budget', 'plan', 'jobs', 'release', 'audit'):\n"
        "    try:\n        main([cmd, '--help'])\n    except SystemExit:\n        pass\n"
        "print('HEAVY=' + ','.join(m for m in ('numpy','pandas','llama_cpp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_release_download_and_jobs_wait(gw: FakeGateway, tmp_path: Path) -> None:
    gw.json("GET", f"/v1/releases/{SHA}", release(audit_verdict="pass"))
    gw.on("GET", f"/v1/releases/{SHA}/data", httpx.Response(200, content=CSV))
    gw.json("GET", "/v1/jobs/job-1", job("failed", 0.2, error={"code": "engine_error", "message": "boom"}))
    out = tmp_path / "x.csv"
    result = run("release", SHA, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "audit verdict: pass" in result.stdout and out.read_bytes() == CSV
    result = run("jobs", "wait", "job-1", "-q")
    assert result.exit_code == 1
    assert "error [job_failed]" in result.stderr and "engine_error" in result.stderr


def test_cleartext_token_to_remote_host_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["budget", "ds", "--url", "http://gateway.example.com", "--token", "t" * 40]
    )
    assert result.exit_code == 1
    assert "error [configuration]" in result.stderr
