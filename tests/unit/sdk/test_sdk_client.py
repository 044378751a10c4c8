"""The sync and async clients against a scripted fake gateway (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sdk_fakes import SHA, FakeGateway, job, problem, release

from safesynth.sdk import (
    AsyncClient,
    BudgetExhausted,
    Client,
    ConfigurationError,
    ConnectionFailed,
    InvalidRequest,
    InvalidResponse,
    JobFailed,
    ServerError,
    WaitTimeout,
    routes,
)
from safesynth.sdk._sse import iter_sse_jobs
from safesynth.sdk.models import Job
from safesynth.sdk.progress import StderrProgress
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

URL = "http://127.0.0.1:8765"
TOKEN = "tok-" + "a" * 40
CSV = b"a,b\n1,x\n2,y\n"


def make_client(gw: FakeGateway, **kwargs: object) -> Client:
    client = Client(base_url=URL, token=TOKEN, transport=httpx.MockTransport(gw), **kwargs)  # type: ignore[arg-type]
    client._sleep = lambda _seconds: None
    return client


def synthesis_gateway() -> FakeGateway:
    gw = FakeGateway()
    gw.json("POST", "/v1/datasets/ds/syntheses", job("queued"), status=202)
    gw.on(
        "GET",
        "/v1/jobs/job-1",
        [
            httpx.Response(200, json=job("running", 0.3, eta_seconds=4)),
            httpx.Response(200, json=job("running", 0.7, eta_seconds=1)),
            httpx.Response(200, json=job("succeeded", 1.0, release_id=SHA)),
        ],
    )
    gw.json("GET", f"/v1/releases/{SHA}", release())
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(CSV).digest()).decode() + ":"
    gw.on(
        "GET",
        f"/v1/releases/{SHA}/data",
        lambda r: httpx.Response(
            200, content=CSV, headers={"Repr-Digest": digest, "Content-Type": "text/csv"}
        ),
    )
    return gw


# ------------------------------------------------------------------------------------------ configuration


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESYNTH_URL", "http://localhost:9999/")
    monkeypatch.setenv("SAFESYNTH_TOKEN", TOKEN)
    with Client() as client:
        assert client.config.base_url == "http://localhost:9999"
        assert client.config.token == TOKEN
        assert TOKEN not in repr(client.config)
    with Client(base_url="http://127.0.0.1:1", token="other-token") as client:
        assert client.config.token == "other-token"


def test_default_url_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFESYNTH_URL", raising=False)
    monkeypatch.delenv("SAFESYNTH_TOKEN", raising=False)
    monkeypatch.delenv("SAFESYNTH_TIMEOUT", raising=False)
    with Client() as client:
        assert client.config.base_url == "http://127.0.0.1:8765"
        assert client.config.token is None
        assert client.config.timeout.read == 30.0  # finite by default


def test_token_never_sent_in_clear_text_to_remote_hosts() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        Client(base_url="http://gateway.example.com", token=TOKEN)
    Client(base_url="https://gateway.example.com", token=TOKEN).close()
    Client(base_url="http://gateway.example.com", token=TOKEN, allow_insecure=True).close()
    Client(base_url="http://[::1]:8765", token=TOKEN).close()


@pytest.mark.parametrize(
    "url", ["ftp://x", "127.0.0.1:8765", "http://u:p@127.0.0.1", "http://127.0.0.1/?q=1"]
)
def test_bad_urls_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Client(base_url=url, token=None)


def test_timeout_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESYNTH_TIMEOUT", "90")
    with Client(base_url=URL) as client:
        assert client.config.timeout.read == 90.0
    with Client(base_url=URL, timeout=7) as client:
        assert client.config.timeout.read == 7.0
    monkeypatch.setenv("SAFESYNTH_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError):
        Client(base_url=URL)


def test_bad_token_and_timeouts_refused() -> None:
    with pytest.raises(ConfigurationError):
        Client(base_url=URL, token="a b")
    with pytest.raises(ConfigurationError):
        Client(base_url=URL, timeout=0)
    with pytest.raises(ConfigurationError):
        Client(base_url=URL, timeout=float("inf"))
    with pytest.raises(ConfigurationError):
        Client(base_url=URL, max_retries=-1)


# ------------------------------------------------------------------------------------------ synthesis


def test_synthesize_waits_and_downloads(tmp_path: Path) -> None:
    gw = synthesis_gateway()
    seen: list[Job] = []
    with make_client(gw) as client:
        handle = client.synthesize("ds", epsilon=1.0, rows=2, purpose="tests", progress=seen.append)
        assert handle.id == SHA and handle.rows == 2 and handle.epsilon == 0.9
        out = handle.to_csv(tmp_path / "out" / "r.csv")
        assert out.read_bytes() == CSV
        assert handle.content() == CSV
    post = gw.sent("POST", "/v1/datasets/ds/syntheses")[0]
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(post.headers[routes.IDEMPOTENCY_HEADER]) == 32
    assert gw.body(post) == {
        "engine": "tabular",
        "rows": 2,
        "epsilon": 1.0,
        "delta": None,
        "purpose": "tests",
        "options": {},
    }
    assert [j.progress for j in seen] == [0.3, 0.7, 1.0]
    assert gw.sent("GET", f"/v1/releases/{SHA}/data")[0].url.params["format"] == "csv"


def test_wait_without_progress_long_polls_until_final() -> None:
    gw = synthesis_gateway()
    with make_client(gw) as client:
        done = client.jobs.wait("job-1", timeout=60)
    assert done.state == "succeeded"
    polls = gw.sent("GET", "/v1/jobs/job-1")
    # no first plain read: every request is a long poll that asks for the final state only
    assert [p.url.params["until"] for p in polls] == ["final"] * 3
    assert all(0 < float(p.url.params["wait"]) <= 20 for p in polls)


def test_wait_with_progress_long_polls_each_change() -> None:
    gw = synthesis_gateway()
    seen: list[Job] = []
    with make_client(gw) as client:
        client.jobs.wait("job-1", progress=seen.append)
    polls = gw.sent("GET", "/v1/jobs/job-1")
    assert "wait" not in polls[0].url.params  # the first state is shown at once
    assert [p.url.params["until"] for p in polls[1:]] == ["change"] * 2
    assert [j.progress for j in seen] == [0.3, 0.7, 1.0]


def test_to_pandas_parses_the_release() -> None:
    gw = synthesis_gateway()
    with make_client(gw) as client:
        frame = client.releases.get(SHA).to_pandas(format="csv")
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1, 2]
    records = b'[{"a":1,"b":"x"},{"a":2,"b":"y"}]'
    gw.on("GET", f"/v1/releases/{SHA}/data", httpx.Response(200, content=records))
    with make_client(gw) as client:
        frame = client.releases.get(SHA).to_pandas(format="json")
    assert frame["b"].tolist() == ["x", "y"]


def test_download_digest_mismatch_is_refused(tmp_path: Path) -> None:
    gw = synthesis_gateway()
    bad = "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":"
    gw.on(
        "GET",
        f"/v1/releases/{SHA}/data",
        lambda r: httpx.Response(200, content=CSV, headers={"Repr-Digest": bad}),
    )
    target = tmp_path / "r.csv"
    with make_client(gw) as client, pytest.raises(InvalidResponse, match="digest"):
        client.releases.download(SHA, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too


def test_wait_false_returns_the_job() -> None:
    gw = synthesis_gateway()
    with make_client(gw) as client:
        queued = client.synthesize("ds", epsilon=1.0, purpose="p", wait=False)
    assert isinstance(queued, Job) and queued.state == "queued"
    assert not gw.sent("GET", "/v1/jobs/job-1")


def test_failed_job_raises_job_failed() -> None:
    gw = synthesis_gateway()
    failed = job("failed", 0.4, error={"code": "engine_error", "message": "boom"}, spend_seq=4)
    gw.json("GET", "/v1/jobs/job-1", failed)
    with make_client(gw) as client, pytest.raises(JobFailed, match="engine_error") as info:
        client.synthesize("ds", epsilon=1.0, purpose="p")
    assert info.value.job.spend_seq == 4
    assert info.value.code == "job_failed"


def test_wait_timeout() -> None:
    gw = synthesis_gateway()
    gw.json("GET", "/v1/jobs/job-1", job("running", 0.1))
    with make_client(gw) as client, pytest.raises(WaitTimeout):
        client.jobs.wait("job-1", timeout=0.0)


def test_budget_exhausted_is_typed() -> None:
    gw = FakeGateway()
    gw.on("POST", "/v1/datasets/ds/syntheses", problem(409, "budget_exhausted", epsilon_remaining=0.1))
    with make_client(gw) as client, pytest.raises(BudgetExhausted) as info:
        client.synthesize("ds", epsilon=1.0, purpose="p")
    assert info.value.epsilon_remaining == 0.1
    assert len(gw.requests) == 1  # a refusal is not retried


def test_bad_arguments_fail_locally_without_a_request() -> None:
    gw = FakeGateway()
    with make_client(gw) as client:
        with pytest.raises(InvalidRequest, match="epsilon"):
            client.synthesize("ds", epsilon=-1, purpose="p")
        with pytest.raises(InvalidRequest):
            client.query("ds", "median", "age", epsilon=1, purpose="p")
        with pytest.raises(InvalidRequest):
            client.query("ds", "count", epsilon=1, purpose="p", filters=[("age", "eq")])  # type: ignore[list-item]
        with pytest.raises(InvalidRequest):
            client.datasets.register("ds", schema={"columns": []}, epsilon_total=1, data=CSV)
        with pytest.raises(InvalidRequest, match="exactly one"):
            client.datasets.register("ds", schema={"columns": []}, epsilon_total=1)
    assert gw.requests == []


def test_invalid_response_is_reported() -> None:
    gw = FakeGateway()
    gw.json("GET", "/v1/datasets/ds/budget", {"dataset": "ds", "unexpected": True})
    with make_client(gw) as client, pytest.raises(InvalidResponse, match="Budget"):
        client.budget("ds")


# ------------------------------------------------------------------------------------------ retries


def test_get_is_retried_on_503_then_succeeds() -> None:
    gw = FakeGateway()
    ok = httpx.Response(200, json={"datasets": []})
    gw.on("GET", "/v1/datasets", [problem(503, "unavailable"), problem(503, "unavailable"), ok])
    with make_client(gw) as client:
        assert client.datasets.list() == []
    assert len(gw.requests) == 3


def test_creating_post_retried_with_the_same_idempotency_key() -> None:
    gw = FakeGateway()
    gw.on("POST", "/v1/datasets/ds/syntheses", [problem(503, "unavailable"), httpx.Response(202, json=job())])
    with make_client(gw) as client:
        client.submit("ds", epsilon=1.0, purpose="p", idempotency_key="my-key-1")
    keys = [r.headers[routes.IDEMPOTENCY_HEADER] for r in gw.requests]
    assert keys == ["my-key-1", "my-key-1"]


def test_plan_post_is_not_retried() -> None:
    gw = FakeGateway()
    gw.on("POST", "/v1/datasets/ds/syntheses/plan", problem(503, "unavailable"))
    with make_client(gw) as client, pytest.raises(ServerError):
        client.plan("ds", epsilon=1.0, purpose="p")
    assert len(gw.requests) == 1
    assert routes.IDEMPOTENCY_HEADER not in gw.requests[0].headers


def test_retries_are_bounded() -> None:
    gw = FakeGateway()
    gw.on("GET", "/v1/datasets", problem(503, "unavailable"))
    with make_client(gw, max_retries=2) as client, pytest.raises(ServerError):
        client.datasets.list()
    assert len(gw.requests) == 3


def test_connection_refused_becomes_connection_failed() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    client = Client(base_url=URL, token=TOKEN, transport=httpx.MockTransport(refuse), max_retries=1)
    client._sleep = lambda _s: None
    with client:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            client.budget("ds")
        assert len(calls) == 2
        assert client.health() is False


def test_read_error_on_non_idempotent_post_is_not_retried() -> None:
    calls = []

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadError("reset", request=request)

    client = Client(base_url=URL, token=TOKEN, transport=httpx.MockTransport(broken))
    client._sleep = lambda _s: None
    with client, pytest.raises(ConnectionFailed):
        client.plan("ds", epsilon=1, purpose="p")
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------ other calls


def test_register_uploads_multipart(tmp_path: Path) -> None:
    gw = FakeGateway()
    info = {
        "id": "ds",
        "dataset_schema": {"columns": [{"name": "a", "kind": "numeric"}]},
        "budget": {"epsilon_total": 3, "delta_total": 1e-6},
        "row_count_bucket": "1-99",
        "registered_at": "2026-01-01T00:00:00Z",
    }
    gw.json("POST", "/v1/datasets", info, status=201)
    data = tmp_path / "d.csv"
    data.write_bytes(CSV)
    schema = DatasetSchema(columns=(ColumnSpec(name="a", kind=ColumnKind.NUMERIC),))
    with make_client(gw) as client:
        got = client.datasets.register("ds", schema=schema, epsilon_total=3, data=data)
        client.datasets.register("ds", schema=schema, epsilon_total=3, data=io.BytesIO(CSV))
        client.datasets.register("ds", schema=schema, epsilon_total=3, server_path="/srv/data/d.parquet")
    assert got.row_count_bucket == "1-99"
    upload, from_file, by_path = gw.requests
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="metadata"' in upload.content and b'filename="d.csv"' in upload.content
    assert CSV in upload.content and CSV in from_file.content
    assert gw.body(by_path)["path"] == "/srv/data/d.parquet"
    assert gw.body(by_path)["budget"] == {"epsilon_total": 3.0, "delta_total": 1e-6}


def test_query_sends_filters_and_reads_result() -> None:
    gw = FakeGateway()
    result = {
        "dataset": "ds",
        "kind": "mean",
        "column": "age",
        "value": 41.5,
        "epsilon": 0.5,
        "delta": 0,
        "cached": True,
    }
    gw.json("POST", "/v1/datasets/ds/queries", result)
    with make_client(gw) as client:
        got = client.query(
            "ds", "mean", "age", epsilon=0.5, purpose="p", bounds=(0, 120), filters=[("sex", "eq", "F")]
        )
    assert got.value == 41.5 and got.cached
    body = gw.body(gw.requests[0])
    assert body["filters"] == [{"column": "sex", "op": "eq", "value": "F"}]
    assert body["bounds"] == [0.0, 120.0]


def test_ledger_paging_and_tokens() -> None:
    gw = FakeGateway()

    def entries(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["start"])
        entry = {
            "seq": start,
            "kind": "spend/v1",
            "payload": {},
            "timestamp": "2026-01-01T00:00:00Z",
            "actor": "a",
        }
        return httpx.Response(
            200, json={"entries": [entry], "size": 3, "next_seq": start + 1 if start < 2 else None}
        )

    gw.on("GET", "/v1/ledger/entries", entries)
    info = {
        "id": "t1",
        "name": "ana",
        "role": "analyst",
        "datasets": ["ds"],
        "created_at": "2026-01-01T00:00:00Z",
    }
    gw.json("POST", "/v1/tokens", {"info": info, "token": "x" * 43}, status=201)
    gw.json("POST", "/v1/tokens/t1/revoke", {**info, "revoked": True})
    with make_client(gw) as client:
        assert [e.seq for e in client.ledger.iter_entries()] == [0, 1, 2]
        created = client.tokens.create("ana", role="analyst", datasets=["ds"])
        assert created.token == "x" * 43
        assert client.tokens.revoke("t1").revoked
        with pytest.raises(InvalidRequest):
            client.tokens.create("ana", role="root")


def test_job_events_from_sse() -> None:
    gw = FakeGateway()
    stream = "".join(
        f"event: job\ndata: {json.dumps(j)}\n\n"
        for j in (job("running", 0.5), job("succeeded", 1.0, release_id=SHA))
    )
    gw.on(
        "GET",
        "/v1/jobs/job-1/events",
        lambda r: httpx.Response(
            200, text=": keepalive\n\n" + stream, headers={"Content-Type": "text/event-stream"}
        ),
    )
    with make_client(gw) as client:
        states = [j.state for j in client.jobs.events("job-1")]
    assert states == ["running", "succeeded"]


def test_progress_bar_renders() -> None:
    out = io.StringIO()
    bar = StderrProgress(out, width=10)
    bar(Job.model_validate(job("running", 0.5, eta_seconds=3)))
    bar(Job.model_validate(job("succeeded", 1.0)))
    text = out.getvalue()
    assert "[#####.....]  50%  running  eta 3s" in text
    assert text.endswith("succeeded\n")


# ------------------------------------------------------------------------------------------ async


def test_async_client_synthesizes(tmp_path: Path) -> None:
    gw = synthesis_gateway()

    async def nosleep(_seconds: float) -> None:
        return None

    async def run() -> tuple[str, bytes, list[float]]:
        seen: list[float] = []
        async with AsyncClient(base_url=URL, token=TOKEN, transport=httpx.MockTransport(gw)) as client:
            client._sleep = nosleep
            handle = await client.synthesize(
                "ds", epsilon=1.0, purpose="p", progress=lambda j: seen.append(j.progress)
            )
            path = await handle.to_csv(tmp_path / "a.csv")
            return handle.id, path.read_bytes(), seen

    release_id, data, seen = asyncio.run(run())
    assert release_id == SHA and data == CSV and seen == [0.3, 0.7, 1.0]


def test_async_wait_without_progress_long_polls_until_final() -> None:
    gw = synthesis_gateway()

    async def nosleep(_seconds: float) -> None:
        return None

    async def run() -> Job:
        async with AsyncClient(base_url=URL, token=TOKEN, transport=httpx.MockTransport(gw)) as client:
            client._sleep = nosleep
            return await client.jobs.wait("job-1")

    assert asyncio.run(run()).state == "succeeded"
    assert [p.url.params["until"] for p in gw.sent("GET", "/v1/jobs/job-1")] == ["final"] * 3


def test_async_client_maps_errors() -> None:
    gw = FakeGateway()
    gw.on("POST", "/v1/datasets/ds/syntheses", problem(409, "budget_exhausted", epsilon_remaining=0.0))

    async def run() -> None:
        async with AsyncClient(base_url=URL, token=TOKEN, transport=httpx.MockTransport(gw)) as client:
            await client.synthesize("ds", epsilon=1.0, purpose="p")

    with pytest.raises(BudgetExhausted):
        asyncio.run(run())


def test_parquet_download_is_checked_against_the_content_address(tmp_path: Path) -> None:
    payload = b"PAR1 pretend parquet"
    good = hashlib.sha256(payload).hexdigest()
    gw = FakeGateway()
    gw.on("GET", f"/v1/releases/{good}/data", lambda r: httpx.Response(200, content=payload))
    gw.on("GET", f"/v1/releases/{SHA}/data", lambda r: httpx.Response(200, content=payload))
    with make_client(gw) as client:
        assert client.releases.content(good, format="parquet") == payload
        assert (
            client.releases.download(good, tmp_path / "ok.parquet", format="parquet").read_bytes() == payload
        )
        with pytest.raises(InvalidResponse, match="address"):
            client.releases.content(SHA, format="parquet")
        with pytest.raises(InvalidResponse, match="address"):
            client.releases.download(SHA, tmp_path / "bad.parquet", format="parquet")
    assert not (tmp_path / "bad.parquet").exists()


_states = st.lists(st.sampled_from(["queued", "running", "succeeded", "failed"]), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(states=_states, keepalives=st.lists(st.booleans(), min_size=8, max_size=8), crlf=st.booleans())
def test_sse_parser_yields_jobs_until_the_first_final_one(
    states: list[str], keepalives: list[bool], crlf: bool
) -> None:
    lines: list[str] = []
    for state, keepalive in zip(states, keepalives, strict=False):
        if keepalive:
            lines += [": keep-alive", ""]
        payload = json.dumps(job(state, 0.5))
        lines += ["event: job", f"data: {payload}", ""]
    if crlf:
        lines = [line + "\r\n" for line in lines]
    got = [j.state for j in iter_sse_jobs(lines)]
    final = next((i for i, s in enumerate(states) if s in ("succeeded", "failed")), len(states) - 1)
    assert got == states[: final + 1]
