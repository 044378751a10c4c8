"""Synthesis jobs end to end on a real uvicorn server: 202 + job, server-sent events, downloads,
idempotent retry (one spend), cancel, and a restart mid-job (the job fails, the spend stays, the
ledger verifies)."""

from __future__ import annotations

import io
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import SCHEMA, csv_bytes, require_dp, verify_zip
from gw_server import init, running, settings_for

require_dp()

# one request everywhere: the tabular plan (slow to compute) is cached per process
SYNTH = {"engine": "tabular", "rows": 20, "epsilon": 1.0, "purpose": "integration test"}


def _register(client: httpx.Client, dataset: str = "d1", n: int = 400) -> None:
    meta = {
        "id": dataset,
        "dataset_schema": json.loads(SCHEMA.model_dump_json()),
        "budget": {"epsilon_total": 10.0, "delta_total": 1e-5},
    }
    response = client.post(
        "/v1/datasets",
        files={"file": ("d.csv", csv_bytes(n), "text/csv")},
        data={"metadata": json.dumps(meta)},
    )
    assert response.status_code == 201, response.text


def _wait(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _spends(client: httpx.Client) -> list[dict[str, Any]]:
    entries = client.get("/v1/ledger/entries", params={"limit": 1000, "kind": "spend/v1"}).json()["entries"]
    return list(entries)


def _check_downloads(client: httpx.Client, release: str, *, rows: int) -> None:
    """The release downloads as Parquet (hashing to its address), CSV (formulas neutralized), JSON."""
    import hashlib

    parquet = client.get(f"/v1/releases/{release}/data", params={"format": "parquet"})
    assert parquet.status_code == 200, parquet.text
    assert hashlib.sha256(parquet.content).hexdigest() == release  # content-addressed
    frame = pd.read_parquet(io.BytesIO(parquet.content))
    assert list(frame.columns) == [c.name for c in SCHEMA.columns] and len(frame) == rows
    csv = client.get(f"/v1/releases/{release}/data", params={"format": "csv"}).text
    assert "\n=" not in csv and ",=" not in csv  # formula cells neutralized
    records = client.get(f"/v1/releases/{release}/data", params={"format": "json"}).json()
    assert len(records) == rows


@pytest.mark.slow
def test_synthesis_job_events_download_and_retry(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home", run_audits=True)
    token = init(settings)
    with (
        running(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        _register(client)
        headers = {"Idempotency-Key": "retry-1"}
        submitted = client.post("/v1/datasets/d1/syntheses", json=SYNTH, headers=headers)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        retried = client.post("/v1/datasets/d1/syntheses", json=SYNTH, headers=headers)
        assert retried.status_code == 202 and retried.json()["id"] == job["id"]
        conflict = client.post(
            "/v1/datasets/d1/syntheses", json={**SYNTH, "purpose": "another purpose"}, headers=headers
        )
        assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_key_reused"
        assert len(_spends(client)) == 1  # the retry never spent twice

        states: list[dict[str, Any]] = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    states.append(json.loads(line[6:]))
        final = states[-1]
        assert final["state"] == "succeeded", final
        progress = [s["progress"] for s in states]
        assert progress == sorted(progress)
        # where the job's time went: the gateway's stages around the engine's, in order
        stages = final["stage_seconds"]
        gateway_before = ["planning", "admission", "queued", "starting", "loading", "engine"]
        assert list(stages)[:6] == gateway_before, stages
        assert list(stages)[-2:] == ["releasing", "auditing"] and {"measure", "sample"} <= set(stages)
        lived = (pd.Timestamp(final["finished_at"]) - pd.Timestamp(final["created_at"])).total_seconds()
        after_admission = sum(v for k, v in stages.items() if k not in ("planning", "admission"))
        assert after_admission == pytest.approx(lived, abs=0.05)
        release = final["release_id"]
        meta = client.get(f"/v1/releases/{release}").json()
        assert meta["rows"] == 20 and meta["spend_seq"] == job["spend_seq"]
        if meta["audit_verdict"] == "FAIL":
            # The audit's stated false-FAIL rate on an honest release (alpha_fail, plus the epsilon
            # bound's 1 - confidence) makes this a rare outcome: the gate withholds the release.
            refused = client.get(f"/v1/releases/{release}/data", params={"format": "parquet"})
            assert refused.status_code == 403 and refused.json()["code"] == "release_withheld"
        else:
            _check_downloads(client, release, rows=20)
        entries = client.get("/v1/ledger/entries", params={"limit": 1000}).json()["entries"]
        kinds = [e["kind"] for e in entries]
        assert kinds.count("release/v1") == 1 and kinds.count("audit/v1") == 1
        audit_entry = next(e for e in entries if e["kind"] == "audit/v1")
        assert audit_entry["payload"]["release"] == release
        audit = client.get(f"/v1/releases/{release}/audit")
        assert audit.status_code == 200, audit.text
        assert audit.json()["verdict"] == meta["audit_verdict"] == audit_entry["payload"]["verdict"]
        assert audit.json()["accountant_epsilon"] == meta["epsilon"]
        quality = client.get(f"/v1/releases/{release}/quality")
        assert quality.status_code == 200 and "tvd_1way_mean" in quality.json()["metrics"], quality.text
        report = json.dumps(audit.json()) + json.dumps(quality.json())
        assert "HYPERLINK" not in report  # aggregates only: no private value in the reports


@pytest.mark.slow
def test_cancel_and_restart_mid_job(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home", job_workers=1)
    token = init(settings)
    headers = {"Authorization": f"Bearer {token}"}
    with running(settings) as url, httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        _register(client, n=2000)
        big = SYNTH
        first = client.post("/v1/datasets/d1/syntheses", json=big).json()
        second = client.post("/v1/datasets/d1/syntheses", json=big).json()
        cancelled = client.post(f"/v1/jobs/{second['id']}/cancel")
        assert cancelled.status_code == 200
        assert _wait(client, second["id"])["state"] == "cancelled"
        third = client.post("/v1/datasets/d1/syntheses", json=big).json()
        spends_before = len(_spends(client))
        assert spends_before == 3  # a cancelled job keeps its spend
    # the server stopped (maybe mid-job); a new gateway on the same home:
    with running(settings) as url, httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for job_id in (first["id"], third["id"]):
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] in ("succeeded", "failed"), job
            if job["state"] == "failed":
                assert job["error"]["code"] in ("gateway_restarted", "gateway_shutdown")
        assert len(_spends(client)) == spends_before
        export = client.get("/v1/ledger/export")
    verify_zip(export.content, settings.public_key_path, tmp_path / "export")


@pytest.mark.slow
def test_long_poll_answers_at_each_change_and_at_once_when_final(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home")
    token = init(settings)
    headers = {"Authorization": f"Bearer {token}"}
    with running(settings) as url, httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        _register(client)
        job = client.post("/v1/datasets/d1/syntheses", json=SYNTH).json()
        seen = [job]
        while seen[-1]["state"] not in ("succeeded", "failed", "cancelled"):
            answer = client.get(f"/v1/jobs/{job['id']}", params={"wait": 30})
            assert answer.status_code == 200, answer.text
            seen.append(answer.json())
            assert len(seen) < 50, "the long poll answered without a change"
        assert seen[-1]["state"] == "succeeded"
        # each answer reports a change (nothing here waits 30 s): a few long polls, not a poll loop
        assert all(a != b for a, b in itertools.pairwise(seen)), seen
        # a final job answers at once, well before its 30 s wait
        final = client.get(f"/v1/jobs/{job['id']}", params={"wait": 30}, timeout=10)
        assert final.json()["state"] == "succeeded"
        too_long = client.get(f"/v1/jobs/{job['id']}", params={"wait": 31})
        assert too_long.status_code == 422
        # until=final: one answer, when the job is final (the stages in between wake nobody)
        other = client.post("/v1/datasets/d1/syntheses", json={**SYNTH, "epsilon": 0.9}).json()
        assert other["state"] in ("queued", "running")
        final_only = client.get(f"/v1/jobs/{other['id']}", params={"wait": 30, "until": "final"})
        assert final_only.status_code == 200 and final_only.json()["state"] == "succeeded"
        assert final_only.json()["stage"] == "done"
        bad = client.get(f"/v1/jobs/{other['id']}", params={"wait": 1, "until": "never"})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
        # the SDK waits with long polls too
        from safesynth.sdk import Client

        with Client(base_url=url, token=token, timeout=60) as sdk:
            submitted = sdk.submit("d1", engine="tabular", rows=20, epsilon=1.0, purpose="integration test")
            assert sdk.jobs.wait(submitted.id, timeout=120).state == "succeeded"
