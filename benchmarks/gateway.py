"""Gateway benchmark: DP statistic requests/s and latency through the SDK on loopback, ledger append
included; and the gateway's overhead on a synthesis job against calling the engine directly.

Reproduce (from the repository root, after ``make test`` created ``.venv``)::

    .venv/bin/python benchmarks/gateway.py            # full run
    .venv/bin/python benchmarks/gateway.py --quick    # fewer requests, no synthesis

The gateway runs as a separate process (``safesynth serve``, uvicorn, one worker) on a free loopback
port with a fresh home; the client is :class:`safesynth.sdk.Client`. Every measured query is a
distinct DP count (a different filter value), so none is a cache hit: each one plans, is admitted by
the privacy filter inside a ledger transaction (BEGIN IMMEDIATE, signed checkpoint), appends its
``spend/v1`` entry, and draws its noise. Goals: >= 300 req/s, p99 < 50 ms; synthesis overhead < 5%.
Results: ``benchmarks/results/gateway.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from safesynth.gateway.service.gateway import GATEWAY_STAGES as SERVICE_STAGES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCHEMA: dict[str, Any] = {
    "columns": [
        {"name": "age", "kind": "numeric", "lower": 18, "upper": 90, "integer": True},
        {"name": "income", "kind": "numeric", "lower": 0, "upper": 200000},
        {"name": "city", "kind": "categorical", "categories": ["Paris", "Lyon", "Nice", "Lille"]},
        {"name": "smoker", "kind": "categorical", "categories": ["yes", "no"]},
    ]
}


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)  # benchmark data, not DP noise
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.gamma(2.0, 20000.0, n), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille"], n),
            "smoker": rng.choice(["yes", "no"], n, p=[0.2, 0.8]),
        }
    )


NOTES = [
    "- What one DP statistic costs. Every answer is durable in the ledger first: a `BEGIN IMMEDIATE`",
    "  transaction with `synchronous=FULL` (an fsync at COMMIT) plus the ledger's fork-guard side file",
    "  (write, fsync, rename), and a signed checkpoint per entry. In the in-process sequential run that",
    "  waiting is the `waiting` figure above, so one client in sequence is I/O-bound.",
    "- Concurrent requests share that I/O: the ledger group-commits (one transaction, one fsync for every",
    "  append queued meanwhile), so with 4+ clients the limit becomes CPU. The server is one Python process",
    "  (GIL): it answers at most 1000 / (server CPU ms per request) requests/s, and the client's CPU comes",
    "  from the same 2 cores.",
    "- Where the CPU went down this session (same-moment before/after runs; per-call timings of the changed",
    "  code): the SDK's sync client sends plain-http requests over its own pooled socket transport behind",
    "  httpx's transport API, with requests built from cached URLs and headers (client CPU per request",
    "  about 2 ms -> 0.5-1 ms); on the server, the reported GDP epsilon in pure math (60-120 -> 16 us),",
    "  the answer serialized once for the cache, the idempotency record and the response, token rows",
    "  reused while SQLite's `data_version` is unchanged, cheaper ledger entry building, a `SimpleQueue`",
    "  hand-off to the fast path's worker threads (`ThreadHandoff`) instead of `run_in_executor`: server",
    "  CPU per request about 4 -> 3 ms at the same moment.",
    "- `POST /v1/datasets/{id}/queries` is served by a fast path in front of FastAPI's middleware stack",
    "  (plain ASGI messages, its own body limit and worker threads; same auth, limits, validation and",
    "  problems as the documented route, checked by a parity test) on uvicorn with httptools+uvloop.",
    "- The shared host's single-core speed changes within minutes (the speed probe): CPU per request and",
    "  req/s move with it, so rows of one run are comparable, runs at different moments less so.",
    "- Synthesis jobs: the SDK waits with one long poll (`GET /v1/jobs/{id}?wait=S&until=final` answers",
    "  when the job is final), so no polling delay is added and the job's stages wake no request.",
    "- Where a job's extra time goes: the attribution table reads each gateway job's own",
    "  `Job.stage_seconds`. The gateway's part is a fixed cost of about 7-8 ms (the spend transaction",
    "  before the 202, about 3 ms with two fsyncs; the stored `running` state; the `release/v1` entry and",
    "  the final state, about 2-3 ms; HTTP and the client, about 3-4 ms: the request's way in and the",
    "  final answer's way out, as the 202 and the long poll's request travel while the job runs) plus the",
    "  release's Parquet encoding and durable write, which grows with the table (about 5 ms for",
    "  20,000 x 4, 20-25 ms for 200,000 x 4 or 32,561 x 15). Against the engine's part this is 10 % of a",
    "  0.16 s job, 7 % of a 0.5 s job and 1.5 % of Adult's 2.6 s job: the 5 % goal holds for jobs whose",
    "  engine part is above about 0.3 s (0.7 s for 200,000-row outputs), not for shorter ones. Every piece",
    "  is a durability step of the design (spend durable before noise, release durable and hashed before",
    "  the ledger names it, entry durable before the job says succeeded).",
    "- The paired wall-time comparison is the same measurement seen through the host's drift: the same",
    "  plan takes 75 ms or 150 ms a few minutes apart, so the two sides run in alternating order and the",
    "  median of the paired differences is shown beside the difference of the medians; for sub-second",
    "  jobs the percentage moves by several points between runs, and for the multi-second Adult job the",
    "  drift (hundreds of ms) is larger than the gateway's part (tens of ms).",
    "- `safesynth serve` imports what a first job needs at start-up.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SAFESYNTH_HOME": str(home),
        "SAFESYNTH_RATE_LIMIT_PER_SECOND": "100000",
        "SAFESYNTH_RATE_LIMIT_BURST": "100000",
        "SAFESYNTH_RUN_AUDITS": "false",
    }
    exe = Path(sys.executable).parent / "safesynth"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        "the gateway did not start: " + (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
    )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _speed_probe() -> float:
    """Seconds for a fixed pure-Python loop (10 million additions): this machine's single-core speed
    at the moment (on a shared host it varies; compare runs by it)."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - start, 3)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench_queries(client: Any, n: int, workers: int, offset: int, server_pid: int) -> dict[str, Any]:
    """``n`` distinct DP counts with ``workers`` concurrent callers; CPU per request of both sides."""

    def one(i: int) -> float:
        start = time.perf_counter()
        client.query(
            "bench",
            "count",
            epsilon=0.001,
            purpose="benchmark",
            filters=[("income", "ge", float(offset + i))],
        )
        return time.perf_counter() - start

    load_before = _load()
    server0, client0 = _process_cpu_seconds(server_pid), _own_cpu_seconds()
    start = time.perf_counter()
    if workers == 1:
        latencies = [one(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            latencies = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start
    server_cpu = _process_cpu_seconds(server_pid) - server0
    client_cpu = _own_cpu_seconds() - client0
    ms = [x * 1000 for x in latencies]
    return {
        "requests": n,
        "concurrency": workers,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(n / elapsed, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / n, 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / n, 2),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "latency_ms": {
            "p50": round(_percentile(ms, 50), 2),
            "p90": round(_percentile(ms, 90), 2),
            "p99": round(_percentile(ms, 99), 2),
            "mean": round(statistics.fmean(ms), 2),
        },
    }


def bench_in_process(base: Path, n: int, workers: int) -> dict[str, Any]:
    """The service layer without HTTP on a fresh home: ``n`` distinct DP counts through
    ``Gateway.query`` one at a time (wall vs this thread's CPU: the rest is waiting, mostly the
    ledger's fsyncs), then ``n`` more from ``workers`` threads."""
    from safesynth.gateway.service.gateway import Gateway
    from safesynth.gateway.service.home import init_home
    from safesynth.gateway.settings import load_settings
    from safesynth.sdk import models as wire

    settings = load_settings(home=base / "inproc", run_audits=False)
    token = init_home(settings).admin_token
    gateway = Gateway(settings)
    try:
        admin = gateway.authenticate(token)
        buffer = io.BytesIO()
        _table(5000).to_csv(buffer, index=False)
        gateway.register_dataset(
            admin,
            wire.DatasetCreate.model_validate(
                {
                    "id": "bench",
                    "dataset_schema": SCHEMA,
                    "budget": {"epsilon_total": 1000.0, "delta_total": 1e-5},
                }
            ),
            upload=buffer.getvalue(),
            filename="b.csv",
        )

        def one(i: int) -> tuple[float, float]:
            body = wire.QueryRequest.model_validate(
                {
                    "kind": "count",
                    "epsilon": 0.001,
                    "purpose": "benchmark",
                    "filters": [{"column": "income", "op": "ge", "value": float(i)}],
                }
            )
            start, cpu = time.perf_counter(), time.thread_time()
            gateway.query(admin, "bench", body)
            return time.perf_counter() - start, time.thread_time() - cpu

        one(-1)
        sequential = [one(i) for i in range(n)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            latencies = [wall for wall, _ in pool.map(one, range(n, 2 * n))]
        elapsed = time.perf_counter() - start
    finally:
        gateway.close()
    ms = [x * 1000 for x in latencies]
    wall = [w * 1000 for w, _ in sequential]
    cpu = [c * 1000 for _, c in sequential]
    return {
        "requests": n,
        "sequential": {
            "wall_ms_mean": round(statistics.fmean(wall), 2),
            "cpu_ms_mean": round(statistics.fmean(cpu), 2),
            "waiting_ms_mean": round(statistics.fmean(wall) - statistics.fmean(cpu), 2),
            "requests_per_second": round(1000 / statistics.fmean(wall), 1),
        },
        "threads": workers,
        "requests_per_second": round(n / elapsed, 1),
        "latency_ms": {"p50": round(_percentile(ms, 50), 2), "p99": round(_percentile(ms, 99), 2)},
    }


def _bench_health(url: str, n: int = 300) -> dict[str, float]:
    """Latency of GET /healthz (no auth, no storage): the HTTP stack and the machine's load alone."""
    with httpx.Client(base_url=url) as raw:
        raw.get("/healthz")
        ms = []
        for _ in range(n):
            start = time.perf_counter()
            raw.get("/healthz")
            ms.append((time.perf_counter() - start) * 1000)
    return {"p50": round(_percentile(ms, 50), 2), "p99": round(_percentile(ms, 99), 2)}


#: Synthesis jobs per side (direct, gateway) by default, alternating; medians are reported.
REPEATS = 7

#: The gateway's own stages of a job (``Job.stage_seconds``) but ``planning``, which is counted as the
#: engine's (the direct side plans too); every other stage is the engine's.
GATEWAY_STAGES = tuple(s for s in SERVICE_STAGES if s != "planning")


def bench_synthesis(
    client: Any,
    frame: pd.DataFrame,
    rows: int,
    dataset: str = "bench",
    schema: Any = None,
    repeats: int = REPEATS,
    *,
    via_job: Callable[[str, int, float], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Wall time of a synthesis job through the gateway vs the engine's plan+run called directly.

    ``via_job(dataset, rows, epsilon)``, if given, runs the gateway's side instead of ``client``
    (the in-process comparison) and returns the job's ``stage_seconds``.

    Two views of the overhead: the paired wall-time comparison (the engine in this process against
    the job through the gateway, alternating), and the attribution within each gateway job from its
    ``stage_seconds``: the job's wall time minus its engine part (planning and the engine's own
    stages). The second compares the engine with itself inside one job, so it is free of the shared
    host's speed drift between the two sides; it cannot see an engine made slower by the gateway
    around it, which the first would."""
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines import get_engine
    from safesynth.gateway.engines.base import EngineContext, SynthesisRequest
    from safesynth.sdk.schema import DatasetSchema

    schema = schema if schema is not None else DatasetSchema.model_validate(SCHEMA)
    engine = get_engine("tabular")
    from safesynth.gateway.service.release_encoding import encode_release

    direct: list[float] = []
    via: list[float] = []
    encode: list[float] = []
    attributed: list[tuple[float, float]] = []  # (gateway seconds, engine seconds) within each job
    by_stage: dict[str, list[float]] = {}

    def run_direct(epsilon: float) -> None:
        start = time.perf_counter()
        plan = engine.plan(schema, SynthesisRequest(engine="tabular", epsilon=epsilon, delta=1e-6, rows=rows))
        output = engine.run(plan, schema, frame, EngineContext(rng=RandomSource.secure()))
        direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        # What the release store does first: encode with the engine's hint, hash.
        hashlib.sha256(encode_release(output.table, output.coded_columns)).hexdigest()
        encode.append(time.perf_counter() - start)

    def run_via(epsilon: float) -> None:
        start = time.perf_counter()
        if via_job is not None:
            stages = via_job(dataset, rows, epsilon)
        else:
            submitted = client.submit(
                dataset, engine="tabular", rows=rows, epsilon=epsilon, delta=1e-6, purpose="benchmark"
            )
            job = client.jobs.wait(submitted.id)  # long polls: answered when the job is final
            assert job.state == "succeeded", job
            stages = dict(job.stage_seconds)
        wall = time.perf_counter() - start
        via.append(wall)
        # The same job's own timings: the engine's part (its plan and run) and the gateway's stages.
        engine_part = sum(v for k, v in stages.items() if k not in GATEWAY_STAGES)
        attributed.append((wall - engine_part, engine_part))
        for name in GATEWAY_STAGES:
            by_stage.setdefault(name, []).append(stages.get(name, 0.0))
        by_stage.setdefault("outside the job (HTTP, client)", []).append(wall - sum(stages.values()))

    for i in range(repeats):
        epsilon = 1.0 + 0.01 * i  # a fresh plan each time on both sides (the gateway caches plans)
        # Alternate which side goes first, so that drifts of the shared host's speed cancel in pairs.
        for side in (run_direct, run_via) if i % 2 == 0 else (run_via, run_direct):
            side(epsilon)
    d, v = statistics.median(direct), statistics.median(via)
    paired = statistics.median(100 * (b - a) / a for a, b in zip(direct, via, strict=True))
    paired_ms = statistics.median(1000 * (b - a) for a, b in zip(direct, via, strict=True))
    return {
        "dataset": dataset,
        "table_rows": len(frame),
        "columns": len(frame.columns),
        "rows": rows,
        "engine_direct_seconds_median": round(d, 3),
        "via_gateway_seconds_median": round(v, 3),
        "overhead_percent": round(100 * (v - d) / d, 1),
        "paired_overhead_percent_median": round(paired, 1),
        "paired_overhead_ms_median": round(paired_ms, 1),
        "repeats": repeats,
        "release_encoding_seconds_median": round(statistics.median(encode), 3),
        "attributed_gateway_ms_median": round(1000 * statistics.median(g for g, _ in attributed), 1),
        "attributed_overhead_percent_median": round(statistics.median(100 * g / e for g, e in attributed), 1),
        "engine_in_gateway_seconds_median": round(statistics.median(e for _, e in attributed), 3),
        "gateway_stage_ms_median": {
            name: round(1000 * statistics.median(values), 2) for name, values in by_stage.items()
        },
        "note": "gateway time includes queueing, the spend transaction, Parquet storage of the release, "
        "the release/v1 entry and the client's long poll of the job; both sides synthesize from the same "
        "table (registered without holdout) and plan afresh each time",
    }


def bench_synthesis_in_process(base: Path, repeats: int) -> dict[str, Any]:
    """The 5,000 -> 20,000-row job through the service layer without HTTP (``Gateway.submit_synthesis``
    and the job manager's wait, same admission, release store and ledger) against the engine directly:
    what the service itself adds, apart from HTTP and the second process."""
    from safesynth.gateway.service.gateway import Gateway
    from safesynth.gateway.service.home import init_home
    from safesynth.gateway.settings import load_settings
    from safesynth.sdk import models as wire

    settings = load_settings(home=base / "inproc-synthesis", run_audits=False)
    token = init_home(settings).admin_token
    gateway = Gateway(settings)
    frame = _table(5000)
    try:
        admin = gateway.authenticate(token)
        buffer = io.BytesIO()
        frame.to_csv(buffer, index=False)
        budget = {"epsilon_total": 1000.0, "delta_total": 1e-5}
        create = {"id": "bench", "dataset_schema": SCHEMA, "budget": budget, "holdout_fraction": 0.0}
        gateway.register_dataset(
            admin, wire.DatasetCreate.model_validate(create), upload=buffer.getvalue(), filename="b.csv"
        )

        def via_job(dataset: str, rows: int, epsilon: float) -> dict[str, float]:
            request = {"engine": "tabular", "rows": rows, "epsilon": epsilon, "delta": 1e-6, "purpose": "b"}
            job = gateway.submit_synthesis(admin, dataset, wire.SynthesisRequest.model_validate(request))
            record = gateway.jobs.get(job.id)
            while not record.done:
                record = gateway.jobs.wait_change(job.id, record.version, 60)
            assert record.state == "succeeded", record
            return dict(record.stage_seconds)

        result = bench_synthesis(None, frame, 20_000, repeats=repeats, via_job=via_job)
    finally:
        gateway.close()
    result["dataset"] = "bench, service in-process (no HTTP)"
    return result


def _register(client: Any, name: str, frame: pd.DataFrame, schema: dict[str, Any]) -> None:
    """Register ``frame`` as CSV with a large budget and no holdout (engines see the whole table, as
    in the direct run)."""
    buffer = io.BytesIO()
    frame.to_csv(buffer, index=False)
    client.datasets.register(
        name,
        schema=schema,
        epsilon_total=1000.0,
        delta_total=1e-5,
        data=buffer.getvalue(),
        holdout_fraction=0.0,
    )


def _bench_syntheses(client: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Three jobs: the registered 5,000 rows -> 20,000; 50,000 -> 200,000; and the tabular
    benchmark's workload (UCI Adult's train split with its public schema, as many rows out)."""
    large = _table(50_000)
    _register(client, "bench-large", large, SCHEMA)
    os.environ.setdefault("SAFESYNTH_DATA", str(ROOT / "tests" / "data"))
    import tabular  # benchmarks/tabular.py: the same data and public schema as the tabular benchmark

    train, test = tabular.load_adult()
    adult_schema = tabular.adult_schema(train, test)
    _register(client, "adult", train, adult_schema.model_dump(mode="json"))
    return [
        bench_synthesis(client, frame, 20_000, repeats=21),
        bench_synthesis(client, large, 200_000, "bench-large", repeats=11),
        bench_synthesis(client, train, len(train), "adult", schema=adult_schema, repeats=11),
    ]


def render(result: dict[str, Any], out: Path = RESULTS) -> None:
    """Write ``<out>/gateway.md`` from a result (``--render`` re-renders the stored JSON)."""
    runs = result["dp_statistics"]
    health = result["healthz_latency_ms"]
    in_process = result["service_in_process"]
    synthesis = result["synthesis_overhead"]
    lines = [
        "# Gateway benchmark",
        "",
        f"Machine: {result['machine']['platform']}, Python {result['machine']['python']}, "
        f"{result['machine']['cpus']} CPUs ({result['machine']['note']}; load averages below; the "
        "benchmark ran under the shared benchmark lock).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "DP statistics: distinct DP counts through the SDK (`Client.query`) over loopback to `safesynth "
        "serve` (one uvicorn process); every one is planned, admitted by the privacy filter inside a "
        "ledger transaction, appended as a signed `spend/v1` entry (durable: synchronous=FULL) and "
        "answered. CPU columns: process CPU time per request of the server and of the client.",
        "",
        "| clients | requests | req/s | p50 ms | p99 ms | server CPU ms/req | client CPU ms/req | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs.values():
        lat = run["latency_ms"]
        lines.append(
            f"| {run['concurrency']} | {run['requests']} | {run['requests_per_second']} | {lat['p50']} | "
            f"{lat['p99']} | {run.get('server_cpu_ms_per_request', '-')} | "
            f"{run.get('client_cpu_ms_per_request', '-')} | {run.get('load_average_before', ['-'])[0]} |"
        )
    seq = in_process["sequential"]
    probe = result.get("speed_probe_seconds")
    lines += [
        "",
        *(
            [
                f"Machine speed probe (a fixed pure-Python loop of 1e7 additions, lower is faster): "
                f"{probe['before']} s before the table's runs, {probe['after']} s after. On this shared "
                "host single-core speed changes within minutes even when the machine is otherwise idle, "
                "and CPU time per request moves with it: compare runs by this probe.",
                "",
            ]
            if probe
            else []
        ),
        f"Cached repeats (identical query, no spend): {result['cached_repeat_requests_per_second']} req/s.",
        f"Calibration: GET /healthz (no auth, no storage) p50 {health['p50']} ms, p99 {health['p99']} ms: "
        "the HTTP stack and the machine's load alone.",
        "",
        f"Service layer in-process (no HTTP), {in_process['requests']} distinct DP counts one at a time: "
        f"{seq['wall_ms_mean']} ms each, of which {seq['cpu_ms_mean']} ms CPU and "
        f"{seq['waiting_ms_mean']} ms "
        f"waiting (the ledger's fsyncs) = {seq['requests_per_second']} req/s; from {in_process['threads']} "
        f"threads: {in_process['requests_per_second']} req/s, p50 {in_process['latency_ms']['p50']} ms, "
        f"p99 {in_process['latency_ms']['p99']} ms (concurrent appends are group-committed by the ledger).",
        "",
    ]
    if synthesis:
        lines += [
            "Synthesis jobs (tabular, epsilon 1): the engine's plan + run called "
            "directly against the same job through the gateway and the SDK "
            "(`client.submit` + `client.jobs.wait`), one after the other in alternating order, "
            "`repeats` pairs each; medians.",
            "",
            "| data set | table rows x columns | synthetic rows | repeats | engine directly s | through the "
            "gateway s | overhead (of the medians) | median of paired overheads | paired overhead ms | "
            "of which Parquet encoding of the release s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        jobs = [
            *synthesis,
            *([result["synthesis_in_process"]] if result.get("synthesis_in_process") else []),
        ]
        for job in jobs:
            extra = job["via_gateway_seconds_median"] - job["engine_direct_seconds_median"]
            lines.append(
                f"| {job.get('dataset', 'bench')} | "
                f"{job.get('table_rows', 5000)} x {job.get('columns', 4)} | "
                f"{job['rows']} | {job.get('repeats', REPEATS)} | {job['engine_direct_seconds_median']} | "
                f"{job['via_gateway_seconds_median']} | {job['overhead_percent']}% (+{extra:.3f} s) | "
                f"{job.get('paired_overhead_percent_median', '-')}% | "
                f"{job.get('paired_overhead_ms_median', '-')} | "
                f"{job.get('release_encoding_seconds_median', '-')} |"
            )
        lines += ["", f"{synthesis[0]['note']}.", ""]
        attributed = [j for j in jobs if "attributed_gateway_ms_median" in j]
        if attributed:
            names = list(attributed[0]["gateway_stage_ms_median"])
            lines += [
                "The same gateway jobs attributed from their own `Job.stage_seconds` (the engine compared "
                "with itself inside each job, so the host's drift between the two sides cancels): the "
                "engine's part is planning and the engine's stages; the gateway's part is the rest of "
                "the job's wall time as the client saw it. Medians in ms.",
                "",
                "| data set | engine part s | gateway part ms | gateway part / engine part | "
                + " | ".join(names)
                + " |",
                "|---|---|---|---|" + "---|" * len(names),
            ]
            for job in attributed:
                stages = job["gateway_stage_ms_median"]
                lines.append(
                    f"| {job.get('dataset', 'bench')} | {job['engine_in_gateway_seconds_median']} | "
                    f"{job['attributed_gateway_ms_median']} | {job['attributed_overhead_percent_median']}% | "
                    + " | ".join(str(stages.get(name, "-")) for name in names)
                    + " |"
                )
            lines.append("")
    lines.append(
        "Goals: >= 300 req/s, p99 < 50 ms, synthesis overhead < 5%. Reproduce: "
        "`flock /tmp/safesynth-bench.lock .venv/bin/python benchmarks/gateway.py --quick` "
        "(add `--requests N`; without `--quick` the synthesis overhead is measured too)."
    )
    notes = result.get("notes")
    if notes:
        lines += ["", "Notes.", "", *notes]
    (out / "gateway.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests, no synthesis benchmark")
    parser.add_argument("--requests", type=int, default=None, help="requests per run (2000; quick: 300)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for gateway.json and gateway.md")
    parser.add_argument("--render", action="store_true", help="only re-render the .md from the stored .json")
    args = parser.parse_args()
    if args.render:
        render(json.loads((args.out / "gateway.json").read_text()), args.out)
        return
    n = args.requests or (300 if args.quick else 2000)

    from safesynth.sdk import Client

    with tempfile.TemporaryDirectory(prefix="safesynth-bench-") as tmp:
        home = Path(tmp) / "home"
        init = subprocess.run(
            [str(Path(sys.executable).parent / "safesynth"), "init", "--json"],
            env={**os.environ, "SAFESYNTH_HOME": str(home)},
            check=True,
            capture_output=True,
        )
        token = json.loads(init.stdout)["admin_token"]
        port = _free_port()
        proc = _start(home, port)
        try:
            frame = _table(5000)
            with Client(base_url=f"http://127.0.0.1:{port}", token=token, timeout=120) as client:
                _register(client, "bench", frame, SCHEMA)
                client.query("bench", "count", epsilon=0.001, purpose="warm-up")
                health = _bench_health(f"http://127.0.0.1:{port}")
                probe_before = _speed_probe()
                runs = {
                    f"clients_{workers}": bench_queries(client, n, workers, 10 * n * workers, proc.pid)
                    for workers in (1, 4, 6, 8, 16, 32)
                }
                probe_after = _speed_probe()
                cached_start = time.perf_counter()
                for _ in range(200):
                    client.query("bench", "count", epsilon=0.001, purpose="cached")
                cached_rps = 200 / (time.perf_counter() - cached_start)
                synthesis = None if args.quick else _bench_syntheses(client, frame)
                ledger_size = client.ledger.entries(limit=1).size
        finally:
            proc.terminate()
            proc.wait(30)
        in_process = bench_in_process(Path(tmp), n, 8)
        synthesis_in_process = None if args.quick else bench_synthesis_in_process(Path(tmp), 21)

    result = {
        "benchmark": "gateway",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "the host is shared: see the speed probe",
        },
        "versions": {
            p: version(p)
            for p in ("safesynth", "fastapi", "uvicorn", "httptools", "uvloop", "httpx", "pydantic")
        },
        "speed_probe_seconds": {"before": probe_before, "after": probe_after},
        "dp_statistics": runs,
        "cached_repeat_requests_per_second": round(cached_rps, 1),
        "healthz_latency_ms": health,
        "service_in_process": in_process,
        "ledger_entries_after": ledger_size,
        "synthesis_overhead": synthesis,
        "synthesis_in_process": synthesis_in_process,
        "notes": NOTES,
        "goals": {"requests_per_second": 300, "p99_ms": 50, "synthesis_overhead_percent": 5},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    render(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
