"""The asynchronous SafeSynth client (the twin of :mod:`safesynth.sdk.client`).

from safesynth.sdk import Client

async with AsyncClient(base_url="http://127.0.0.1:8765", token="...") as client:   # or SAFESYNTH_URL / _TOKEN
    release = await client.synthesize(dataset="reviews", engine="tabular", rows=1000, epsilon=1.0,
                                purpose="test fixtures", progress=True)
    df = await release.to_pandas()
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import hashlib
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import httpx
from pydantic import BaseModel

from safesynth.sdk import _calls as calls
from safesynth.sdk import routes
from safesynth.sdk._dispatch import RequestFactory, asend, build_call, gateway_transport
from safesynth.sdk._http import (
    RETRY_STATUSES,
    ClientConfig,
    backoff_seconds,
    decode,
    error_from_response,
    is_retryable_request,
    new_idempotency_key,
    resolve_config,
    retry_after_seconds,
)
from safesynth.sdk._sse import aiter_sse_jobs
from safesynth.sdk.client import (
    AUDIT_TIMEOUT,
    LONG_POLL_SECONDS,
    _canary_request,
    _external_call,
    _timed,
    _with_timeout,
)
from safesynth.sdk.errors import ConnectionFailed, InvalidResponse, JobFailed, WaitTimeout
from safesynth.sdk.models import (
    CANARY_AUDIT,
    DATASET_CANARY_AUDIT_PLAN,
    DATASET_CANARY_AUDITS,
    AuditSummary,
    Budget,
    CanaryAuditResult,
    Checkpoint,
    ConsistencyProof,
    DatasetInfo,
    ExternalAudit,
    InclusionProof,
    Job,
    LedgerEntries,
    LedgerEntry,
    PlanResponse,
    QualitySummary,
    QueryResult,
    ReleaseFormat,
    ServiceInfo,
    TokenCreated,
    TokenInfo,
)
from safesynth.sdk.progress import ProgressArg, progress_callback
from safesynth.sdk.release import AsyncReleaseHandle
from safesynth.sdk.schema import DatasetSchema

__all__ = ["AsyncClient"]

M = TypeVar("M", bound=BaseModel)


class AsyncClient:
    """A client of one gateway. Keyword-only; every argument may come from the environment.

    ``base_url``: argument, else ``SAFESYNTH_URL``, else ``http://127.0.0.1:8765``. ``token``:
    argument, else ``SAFESYNTH_TOKEN``. ``timeout``: seconds per request (finite; 30 s by default).
    ``max_retries``: retries of idempotent calls (GETs, and POSTs sent with an Idempotency-Key, which
    the gateway deduplicates) on connection errors and 429/502/503/504. A token is never sent over
    plain http to a non-loopback host unless ``allow_insecure=True``. ``verify``: TLS verification (True,
    or an ``ssl.SSLContext`` trusting a private CA). ``transport`` (tests, or to opt out of the SDK's own
    plain-http transport) is used as given.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        allow_insecure: bool = False,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config: ClientConfig = resolve_config(
            base_url=base_url,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            allow_insecure=allow_insecure,
        )
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )
        self._requests = RequestFactory(self._http)
        #: The transport httpx would use for the gateway (None: send through ``self._http``).
        self._transport = gateway_transport(self._http, self.config.base_url)
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.releases = Releases(self)
        self.ledger = Ledger(self)
        self.tokens = Tokens(self)
        self.audits = Audits(self)

    # ------------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.config.base_url!r})"

    # ------------------------------------------------------------------------------------ transport
    def _build(self, call: calls.Call[Any], key: str | None) -> httpx.Request:
        return build_call(self._http, self._requests, call, key)

    async def _dispatch(self, request: httpx.Request, stream: bool) -> httpx.Response:
        if self._transport is None:
            return await self._http.send(request, stream=stream)
        return await asend(self._http, self._transport, request, stream=stream)

    async def _send(self, build: Callable[[], httpx.Request], *, stream: bool = False) -> httpx.Response:
        """Send with retries: connection failures always; other failures only when idempotent."""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            request = build()
            last = attempt == attempts - 1
            try:
                response = await self._dispatch(request, stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing reached the gateway
                if last:
                    raise ConnectionFailed(f"cannot reach {self.config.base_url}: {exc}") from exc
                await self._sleep(backoff_seconds(attempt))
                continue
            except httpx.TransportError as exc:
                if last or not is_retryable_request(request):
                    raise ConnectionFailed(f"{request.method} {request.url.path} failed: {exc!r}") from exc
                await self._sleep(backoff_seconds(attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last and is_retryable_request(request):
                delay = backoff_seconds(attempt, retry_after_seconds(response))
                await response.aclose()
                await self._sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, call: calls.Call[M], *, idempotency_key: str | None = None) -> M:
        key = idempotency_key or (new_idempotency_key() if call.creates else None)
        response = await self._send(lambda: self._build(call, key))
        return decode(response, call.answer)

    async def _get_bytes(
        self, path: str, params: Mapping[str, str | int | float], *, accept: str = "*/*"
    ) -> bytes:
        response = await self._send(
            lambda: self._http.build_request("GET", path, params=params, headers={"Accept": accept})
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.content

    async def _download(
        self,
        path: str,
        params: Mapping[str, str | int | float],
        target: str | Path,
        *,
        expected_sha256: str | None = None,
    ) -> Path:
        """Stream a GET to ``target`` atomically (temp file + rename); checks Repr-Digest when sent."""
        target = Path(target)
        request = lambda: self._http.build_request("GET", path, params=params, headers={"Accept": "*/*"})  # noqa: E731
        response = await self._send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            digest = hashlib.sha256()
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".safesynth-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        out.write(chunk)
                _check_digest(response, digest.hexdigest())
                _check_content_address(expected_sha256, digest.hexdigest())
                Path(tmp).replace(target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"download of {path} failed: {exc!r}") from exc
        finally:
            await response.aclose()
        return target

    # ------------------------------------------------------------------------------------ top level
    async def info(self) -> ServiceInfo:
        """The gateway's version, ledger origin and public key."""
        return await self._run(calls.info())

    async def health(self) -> bool:
        """True when the gateway answers its liveness probe."""
        try:
            response = await self._send(lambda: self._http.build_request("GET", routes.HEALTH))
        except ConnectionFailed:
            return False
        return response.status_code == 200

    async def budget(self, dataset: str) -> Budget:
        """The dataset's budget: total, spent (by the accountant), remaining, history."""
        return await self._run(calls.budget(dataset))

    async def plan(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        rows: int | None = None,
        delta: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> PlanResponse:
        """The privacy events and accountant cost of a synthesis, and whether it would be admitted.

        Spends nothing. ``epsilon`` is the target the engine plans for.
        """
        call = calls.plan_synthesis(
            dataset, engine=engine, rows=rows, epsilon=epsilon, delta=delta, purpose=purpose, options=options
        )
        return await self._run(call)

    async def submit(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        rows: int | None = None,
        delta: float | None = None,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a synthesis job and return it at once (``202``). The spend is recorded on admission.

        A retry with the same ``idempotency_key`` returns the same job and never spends twice.
        """
        call = calls.submit_synthesis(
            dataset, engine=engine, rows=rows, epsilon=epsilon, delta=delta, purpose=purpose, options=options
        )
        return await self._run(call, idempotency_key=idempotency_key)

    @overload
    async def synthesize(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = ...,
        rows: int | None = ...,
        delta: float | None = ...,
        options: Mapping[str, Any] | None = ...,
        wait: Literal[True] = ...,
        progress: ProgressArg = ...,
        timeout: float | None = ...,
        idempotency_key: str | None = ...,
    ) -> AsyncReleaseHandle: ...

    @overload
    async def synthesize(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = ...,
        rows: int | None = ...,
        delta: float | None = ...,
        options: Mapping[str, Any] | None = ...,
        wait: Literal[False],
        progress: ProgressArg = ...,
        timeout: float | None = ...,
        idempotency_key: str | None = ...,
    ) -> Job: ...

    async def synthesize(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        rows: int | None = None,
        delta: float | None = None,
        options: Mapping[str, Any] | None = None,
        wait: bool = True,
        progress: ProgressArg = False,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncReleaseHandle | Job:
        """Ask for a synthetic release of ``dataset``; wait for it and return a :class:`AsyncReleaseHandle`.

        ``epsilon`` is the target the engine plans for; the gateway's accountant computes the charge
        (``release.epsilon``). ``progress=True`` draws a bar on stderr; a callable gets each Job.
        ``wait=False`` returns the queued :class:`Job` instead. Raises :class:`BudgetExhausted` when
        the budget would not admit it (nothing spent), :class:`JobFailed` when the job fails.
        """
        job = await self.submit(
            dataset,
            engine=engine,
            rows=rows,
            epsilon=epsilon,
            delta=delta,
            purpose=purpose,
            options=options,
            idempotency_key=idempotency_key,
        )
        if not wait:
            return job
        final = await self.jobs.wait(job.id, progress=progress, timeout=timeout)
        if final.release_id is None:
            raise InvalidResponse(f"job {final.id} succeeded without a release id")
        return await self.releases.get(final.release_id)

    async def query(
        self,
        dataset: str,
        kind: str,
        column: str | None = None,
        *,
        epsilon: float,
        purpose: str,
        delta: float | None = None,
        filters: Iterable[calls.FilterArg] = (),
        bounds: Sequence[float] | None = None,
        bins: Sequence[float] | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> QueryResult:
        """A DP statistic (count, sum, mean, histogram, quantiles) charged to the dataset's budget.

        ``filters``: ``(column, op, value)`` tuples with op in eq/ne/lt/le/gt/ge/in/not_in. An
        identical repeated query returns the cached answer at no cost (``result.cached``).
        """
        body = calls.query_body(
            kind,
            column,
            epsilon=epsilon,
            purpose=purpose,
            delta=delta,
            filters=filters,
            bounds=bounds,
            bins=bins,
            quantiles=quantiles,
        )
        return await self._run(calls.query(dataset, body))

    async def plan_query(
        self,
        dataset: str,
        kind: str,
        column: str | None = None,
        *,
        epsilon: float,
        purpose: str,
        delta: float | None = None,
        filters: Iterable[calls.FilterArg] = (),
        bounds: Sequence[float] | None = None,
        bins: Sequence[float] | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> PlanResponse:
        """The cost of a DP statistic without running it (spends nothing)."""
        body = calls.query_body(
            kind,
            column,
            epsilon=epsilon,
            purpose=purpose,
            delta=delta,
            filters=filters,
            bounds=bounds,
            bins=bins,
            quantiles=quantiles,
        )
        return await self._run(calls.plan_query(dataset, body))


def _check_digest(response: httpx.Response, sha256_hex: str) -> None:
    """Compare an RFC 9530 ``Repr-Digest: sha-256=:<base64>:`` header (when sent) with the bytes."""
    import base64

    header = response.headers.get("Repr-Digest") or response.headers.get("Content-Digest")
    if not header:
        return
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "sha-256" and value.startswith(":") and value.endswith(":"):
            expected = base64.b64decode(value.strip(":")).hex()
            if expected != sha256_hex:
                raise InvalidResponse(
                    f"download digest mismatch: got sha256 {sha256_hex}, header says {expected}"
                )


def _check_content_address(expected: str | None, sha256_hex: str) -> None:
    """A Parquet release is stored content-addressed: its bytes must hash to its id."""
    if expected is not None and expected != sha256_hex:
        raise InvalidResponse(
            f"release content does not match its address: expected {expected}, got {sha256_hex}"
        )


class _Namespace:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class Datasets(_Namespace):
    """``client.datasets``: list, describe, register."""

    async def list(self) -> builtins.list[DatasetInfo]:
        """The datasets this token may see."""
        return list((await self._client._run(calls.list_datasets())).datasets)

    async def get(self, dataset: str) -> DatasetInfo:
        """One dataset's public description (schema, row-count bucket, budget)."""
        return await self._client._run(calls.get_dataset(dataset))

    async def budget(self, dataset: str) -> Budget:
        """Same as ``client.budget(dataset)``."""
        return await self._client._run(calls.budget(dataset))

    async def register(
        self,
        dataset: str,
        *,
        schema: DatasetSchema | Mapping[str, Any],
        epsilon_total: float,
        delta_total: float = 1e-6,
        data: calls.DataSource | None = None,
        server_path: str | None = None,
        description: str = "",
        format: str | None = None,
        holdout_fraction: float = 0.2,
        idempotency_key: str | None = None,
    ) -> DatasetInfo:
        """Register a dataset (admin): upload ``data`` (path, bytes or binary file) or name a
        ``server_path`` under the gateway's allowed root; with its public schema and budget."""
        call = calls.register_dataset(
            dataset,
            schema=schema,
            epsilon_total=epsilon_total,
            delta_total=delta_total,
            data=data,
            server_path=server_path,
            description=description,
            format=format,
            holdout_fraction=holdout_fraction,
        )
        return await self._client._run(call, idempotency_key=idempotency_key)


class Jobs(_Namespace):
    """``client.jobs``: get, list, cancel, wait, events."""

    async def get(self, job_id: str) -> Job:
        """A job's current state."""
        return await self._client._run(calls.get_job(job_id))

    async def list(self, *, dataset: str | None = None, state: str | None = None) -> builtins.list[Job]:
        """The caller's jobs (optionally of one dataset or state)."""
        return list((await self._client._run(calls.list_jobs(dataset, state))).jobs)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job. Its spend stays recorded once admitted (noise may have been drawn)."""
        return await self._client._run(calls.cancel_job(job_id))

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        progress: ProgressArg = False,
        poll_interval: float = 1.0,
    ) -> Job:
        """Wait until the job is final; return it when it succeeded, raise :class:`JobFailed` otherwise.

        Long polls, so the result is seen at once: without ``progress`` the gateway answers only when
        the job is final (one request for the whole wait, unless it is longer than a long poll); with
        it, at each change of the job, so ``progress`` sees every stage. Against a gateway that answers
        at once instead, it polls, at most every ``poll_interval`` seconds. ``timeout`` (seconds, None =
        no limit) raises :class:`WaitTimeout`; the job keeps running.
        """
        report = progress_callback(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.1, poll_interval)
        until = "change" if report is not None else "final"
        # With a progress report the job's first state is shown at once; without, the first long poll
        # answers at once when the job is already final.
        job: Job | None = await self.get(job_id) if report is not None else None
        while True:
            if job is not None:
                if report is not None:
                    report(job)
                if job.done:
                    return _final(job)
            now = time.monotonic()
            if job is not None and deadline is not None and now >= deadline:
                raise WaitTimeout(f"job {job_id} still {job.state} after {timeout} s")
            window = (
                LONG_POLL_SECONDS if deadline is None else max(0.0, min(LONG_POLL_SECONDS, deadline - now))
            )
            call = calls.get_job(job_id, round(window, 3), until)
            response = await self._client._send(
                _timed(functools.partial(self._client._build, call, None), window + 15.0)
            )
            previous, job = job, decode(response, Job)
            if job == previous and time.monotonic() - now < window / 2:  # no long poll: poll
                await self._client._sleep(delay)
                delay = min(poll_interval, delay * 2)

    async def events(self, job_id: str) -> AsyncIterator[Job]:
        """Live job states from the gateway's server-sent events, until the job is final."""
        path = routes.path(routes.JOB_EVENTS, job=job_id)
        request = lambda: self._client._http.build_request(  # noqa: E731
            "GET", path, headers={"Accept": "text/event-stream"}, timeout=httpx.Timeout(60.0, connect=5.0)
        )
        response = await self._client._send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            async for job in aiter_sse_jobs(response.aiter_lines()):
                yield job
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"event stream of job {job_id} broke: {exc!r}") from exc
        finally:
            await response.aclose()


def _final(job: Job) -> Job:
    if job.state == "succeeded":
        return job
    reason = f": {job.error.code}: {job.error.message}" if job.error else ""
    raise JobFailed(f"job {job.id} {job.state}{reason}", job=job)


class Releases(_Namespace):
    """``client.releases``: metadata, data, audit, quality."""

    async def get(self, release_id: str) -> AsyncReleaseHandle:
        """A handle on a release (``.to_pandas()``, ``.to_csv(path)``, ``.audit()``, ``.quality()``)."""
        return AsyncReleaseHandle(await self._client._run(calls.get_release(release_id)), self)

    async def list(self, *, dataset: str | None = None) -> builtins.list[AsyncReleaseHandle]:
        """Releases this token may see."""
        page = await self._client._run(calls.list_releases(dataset))
        return [AsyncReleaseHandle(r, self) for r in page.releases]

    async def content(self, release_id: str, *, format: ReleaseFormat = "csv") -> bytes:
        """The release's data in ``format`` (csv, parquet or json)."""
        path, params = calls.release_data_path(release_id, format)
        data = await self._client._get_bytes(path, params)
        if format == "parquet":
            _check_content_address(release_id, hashlib.sha256(data).hexdigest())
        return data

    async def download(self, release_id: str, path: str | Path, *, format: ReleaseFormat = "csv") -> Path:
        """Stream the release's data to ``path`` (atomically)."""
        url, params = calls.release_data_path(release_id, format)
        expected = release_id if format == "parquet" else None
        return await self._client._download(url, params, path, expected_sha256=expected)

    async def audit(self, release_id: str) -> AuditSummary:
        """The audit of a release (aggregates only)."""
        return await self._client._run(calls.release_audit(release_id))

    async def quality(self, release_id: str) -> QualitySummary:
        """The quality report of a release."""
        return await self._client._run(calls.release_quality(release_id))


class Ledger(_Namespace):
    """``client.ledger``: entries, checkpoint, proofs, export (auditor or admin)."""

    async def entries(
        self, *, start: int = 0, limit: int | None = None, kind: str | None = None
    ) -> LedgerEntries:
        """One page of entries from ``start``; ``next_seq`` on the page tells where the next begins."""
        return await self._client._run(calls.ledger_entries(start, limit, kind))

    async def iter_entries(self, *, start: int = 0, kind: str | None = None) -> AsyncIterator[LedgerEntry]:
        """Every entry from ``start``, page by page."""
        cursor: int | None = start
        while cursor is not None:
            page = await self.entries(start=cursor, kind=kind)
            for entry in page.entries:
                yield entry
            if page.next_seq is not None and page.next_seq <= cursor:
                raise InvalidResponse("ledger paging did not advance")
            cursor = page.next_seq

    async def checkpoint(self) -> Checkpoint:
        """The latest signed checkpoint."""
        return await self._client._run(calls.checkpoint())

    async def proof(self, seq: int, *, tree_size: int | None = None) -> InclusionProof:
        """An inclusion proof of entry ``seq`` (in the latest tree, or of ``tree_size``)."""
        return await self._client._run(calls.proof(seq, tree_size))

    async def consistency(self, old: int, new: int) -> ConsistencyProof:
        """A consistency proof between tree sizes ``old`` and ``new``."""
        return await self._client._run(calls.consistency(old, new))

    async def public_key(self) -> bytes:
        """The ledger's public key file (to verify an export offline)."""
        return await self._client._get_bytes(routes.LEDGER_PUBLIC_KEY, {})

    async def export(self, path: str | Path) -> Path:
        """Download the export bundle (a zip archive) to ``path``."""
        return await self._client._download(routes.LEDGER_EXPORT, {}, path)


class Tokens(_Namespace):
    """``client.tokens``: create, list, revoke (admin)."""

    async def create(
        self,
        name: str,
        *,
        role: str,
        datasets: Iterable[str] = (),
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> TokenCreated:
        """A new bearer token (its secret appears only in this answer)."""
        return await self._client._run(
            calls.create_token(name, role, datasets, expires_at), idempotency_key=idempotency_key
        )

    async def list(self) -> builtins.list[TokenInfo]:
        """All tokens (never their secrets)."""
        return list((await self._client._run(calls.list_tokens())).tokens)

    async def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token; it stops working at once."""
        return await self._client._run(calls.revoke_token(token_id))


class Audits(_Namespace):
    """``client.audits``: audit an external table; canary audits (an audit-only, charged engine run)."""

    async def external(
        self,
        dataset: str,
        data: calls.DataSource | None = None,
        *,
        purpose: str,
        server_path: str | None = None,
        format: Literal["csv", "parquet"] | None = None,
        claimed_epsilon: float | None = None,
        claimed_delta: float = 0.0,
        timeout: float = AUDIT_TIMEOUT,
        idempotency_key: str | None = None,
    ) -> ExternalAudit:
        """Audit a table made by another tool against ``dataset`` (see ``Client.audits.external``)."""
        call = _external_call(dataset, data, server_path, purpose, format, claimed_epsilon, claimed_delta)
        key = idempotency_key or new_idempotency_key()
        response = await self._client._send(lambda: _with_timeout(self._client._build(call, key), timeout))
        return decode(response, ExternalAudit)

    async def plan_canary(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        delta: float | None = None,
        rows: int | None = None,
        options: Mapping[str, Any] | None = None,
        n_canaries: int = 500,
    ) -> PlanResponse:
        """The canary run's privacy cost and whether the budget admits it (spends nothing)."""
        body = _canary_request(
            epsilon=epsilon,
            purpose=purpose,
            engine=engine,
            delta=delta,
            rows=rows,
            options=options,
            n_canaries=n_canaries,
        )
        path = routes.path(DATASET_CANARY_AUDIT_PLAN, dataset=dataset)
        return await self._client._run(calls.Call("POST", path, PlanResponse, body=body))

    async def submit_canary(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        delta: float | None = None,
        rows: int | None = None,
        options: Mapping[str, Any] | None = None,
        n_canaries: int = 500,
        idempotency_key: str | None = None,
    ) -> Job:
        """Charge (like a synthesis) and queue a canary run; returns its job (kind ``canary-audit``)."""
        body = _canary_request(
            epsilon=epsilon,
            purpose=purpose,
            engine=engine,
            delta=delta,
            rows=rows,
            options=options,
            n_canaries=n_canaries,
        )
        path = routes.path(DATASET_CANARY_AUDITS, dataset=dataset)
        call = calls.Call("POST", path, Job, body=body, creates=True)
        return await self._client._run(call, idempotency_key=idempotency_key)

    async def canary_result(self, job_id: str) -> CanaryAuditResult:
        """A finished canary audit's aggregates (NotFound until the job has succeeded)."""
        path = routes.path(CANARY_AUDIT, job=job_id)
        return await self._client._run(calls.Call("GET", path, CanaryAuditResult))

    async def canary(
        self,
        dataset: str,
        *,
        epsilon: float,
        purpose: str,
        engine: str = "tabular",
        delta: float | None = None,
        rows: int | None = None,
        options: Mapping[str, Any] | None = None,
        n_canaries: int = 500,
        timeout: float | None = None,
        progress: ProgressArg = False,
    ) -> CanaryAuditResult:
        """Submit a canary audit, wait for it, return its result (:class:`JobFailed` if the run failed)."""
        job = await self.submit_canary(
            dataset,
            epsilon=epsilon,
            purpose=purpose,
            engine=engine,
            delta=delta,
            rows=rows,
            options=options,
            n_canaries=n_canaries,
        )
        await self._client.jobs.wait(job.id, timeout=timeout, progress=progress)
        return await self.canary_result(job.id)
