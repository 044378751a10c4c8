"""The HTTP routes: thin adapters from requests to :class:`~safesynth.gateway.service.gateway.Gateway`.

Paths come from :mod:`safesynth.sdk.routes` (shared with the SDK); bodies are the SDK's wire models.
Blocking service calls run in FastAPI's thread pool (plain ``def`` endpoints).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from safesynth.gateway.api.deps import CurrentPrincipal, GatewayDep, IdempotencyKey
from safesynth.gateway.service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from safesynth.gateway.service.idempotency import request_hash
from safesynth.gateway.service.releases import MEDIA_TYPES
from safesynth.sdk import models as wire
from safesynth.sdk import routes as r

#: The longest long poll of ``GET /v1/jobs/{id}?wait=``: short enough for proxies and client timeouts.
MAX_JOB_WAIT_SECONDS = 30.0

__all__ = ["MAX_JOB_WAIT_SECONDS", "invalid_request", "read_upload_form", "router"]

router = APIRouter()
PROBLEM = {"model": wire.Problem, "description": "An RFC 9457 problem (application/problem+json)"}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: PROBLEM for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


def invalid_request(exc: ValidationError, where: str) -> InvalidRequest:
    """A pydantic validation error as a typed ``InvalidRequest`` naming ``where`` and the fields."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    errors = [
        {"loc": [where, *[str(p) for p in e.get("loc", ())]], "msg": str(e.get("msg", ""))[:300]}
        for e in exc.errors()[:50]
    ]
    return InvalidRequest(f"{where}.{loc}: {first.get('msg')}", extra={"errors": errors})


M = TypeVar("M", bound=BaseModel)


async def read_upload_form(request: Request, model: type[M], limit: int, what: str) -> tuple[M, bytes, str]:
    """A multipart form with a ``metadata`` field (``model`` as JSON) and one ``file`` part of at most
    ``limit`` bytes: (metadata, file bytes, file name). ``what`` names the metadata in errors."""
    form = await request.form(max_files=1, max_fields=4)
    try:
        metadata, file = form.get("metadata"), form.get("file")
        if not isinstance(metadata, str):
            raise InvalidRequest(f"the multipart form needs a 'metadata' field with the {what} JSON")
        if file is None or isinstance(file, str):
            raise InvalidRequest("the multipart form needs a 'file' part (CSV or Parquet)")
        try:
            body = model.model_validate_json(metadata)
        except ValidationError as exc:
            raise invalid_request(exc, "metadata") from None
        upload = await file.read(limit + 1)
        if len(upload) > limit:
            raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
        return body, upload, file.filename or "upload"
    finally:
        await form.close()


# ------------------------------------------------------------------------------------------ service
@router.get(r.HEALTH, tags=["service"], summary="Liveness (no authentication)")
async def health() -> dict[str, str]:
    """``{"status": "ok"}``."""
    return {"status": "ok"}


@router.get(r.INFO, response_model=wire.ServiceInfo, tags=["service"], responses=ERRORS)
def info(gateway: GatewayDep, principal: CurrentPrincipal) -> wire.ServiceInfo:
    """Version, ledger origin and the ledger's public key."""
    return gateway.info()


# ------------------------------------------------------------------------------------------ tokens
@router.post(r.TOKENS, response_model=wire.TokenCreated, status_code=201, tags=["tokens"], responses=ERRORS)
def create_token(
    body: wire.TokenCreate,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> wire.TokenCreated:
    """Create a token (admin). The secret is in this answer only."""
    principal.require_admin()
    answer, _ = gateway.idempotency.run(
        principal.token_id,
        idempotency_key,
        request_hash("token", body.model_dump(mode="json")),
        lambda: gateway.create_token(principal, body).model_dump(mode="json"),
    )
    return wire.TokenCreated.model_validate(answer)


@router.get(r.TOKENS, response_model=wire.TokenList, tags=["tokens"], responses=ERRORS)
def list_tokens(gateway: GatewayDep, principal: CurrentPrincipal) -> wire.TokenList:
    """Every token, without secrets (admin)."""
    return gateway.list_tokens(principal)


@router.get(r.TOKEN, response_model=wire.TokenInfo, tags=["tokens"], responses=ERRORS)
def get_token(token: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.TokenInfo:
    """One token, without its secret (admin)."""
    return gateway.get_token(principal, token)


@router.post(r.TOKEN_REVOKE, response_model=wire.TokenInfo, tags=["tokens"], responses=ERRORS)
def revoke_token(token: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.TokenInfo:
    """Revoke a token (admin); idempotent."""
    return gateway.revoke_token(principal, token)


# ------------------------------------------------------------------------------------------ datasets
_REGISTER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DatasetCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["metadata", "file"],
                    "properties": {
                        "metadata": {"type": "string", "description": "DatasetCreate as JSON"},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@router.post(
    r.DATASETS,
    response_model=wire.DatasetInfo,
    status_code=201,
    tags=["datasets"],
    responses=ERRORS,
    openapi_extra=_REGISTER_DOC,
)
async def register_dataset(
    request: Request, gateway: GatewayDep, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> wire.DatasetInfo:
    """Register a dataset (admin): JSON with a server-side ``path``, or multipart ``metadata`` + ``file``."""
    principal.require_admin()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: bytes | None = None
    filename: str | None = None
    if content_type == "application/json":
        raw = await request.body()
        try:
            body = wire.DatasetCreate.model_validate_json(raw)
        except ValidationError as exc:
            raise invalid_request(exc, "body") from None
    elif content_type == "multipart/form-data":
        body, upload, filename = await read_upload_form(
            request, wire.DatasetCreate, gateway.settings.max_upload_bytes, "DatasetCreate"
        )
    else:
        raise UnsupportedMediaType("send application/json (server-side path) or multipart/form-data (upload)")
    fingerprint = request_hash(
        "dataset",
        body.model_dump(mode="json"),
        None if upload is None else hashlib.sha256(upload).hexdigest(),
    )

    def run() -> dict[str, Any]:
        return gateway.register_dataset(principal, body, upload=upload, filename=filename).model_dump(
            mode="json"
        )

    answer, _ = await run_in_threadpool(
        gateway.idempotency.run, principal.token_id, idempotency_key, fingerprint, run
    )
    return wire.DatasetInfo.model_validate(answer)


@router.get(r.DATASETS, response_model=wire.DatasetList, tags=["datasets"], responses=ERRORS)
def list_datasets(gateway: GatewayDep, principal: CurrentPrincipal) -> wire.DatasetList:
    """The datasets this token may see: schema, row-count bucket, budget."""
    return gateway.list_datasets(principal)


@router.get(r.DATASET, response_model=wire.DatasetInfo, tags=["datasets"], responses=ERRORS)
def get_dataset(dataset: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.DatasetInfo:
    """One dataset's public description."""
    return gateway.get_dataset(principal, dataset)


@router.get(r.DATASET_BUDGET, response_model=wire.Budget, tags=["datasets"], responses=ERRORS)
def get_budget(dataset: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.Budget:
    """Total, spent and remaining budget, and the history of spends and refusals."""
    return gateway.budget(principal, dataset)


# ------------------------------------------------------------------------------------------ synthesis
@router.post(r.DATASET_SYNTHESIS_PLAN, response_model=wire.PlanResponse, tags=["synthesis"], responses=ERRORS)
def plan_synthesis(
    dataset: str, body: wire.SynthesisRequest, gateway: GatewayDep, principal: CurrentPrincipal
) -> wire.PlanResponse:
    """The plan's privacy events and cost, and whether the budget admits it now. Spends nothing."""
    return gateway.plan_synthesis(principal, dataset, body)


@router.post(
    r.DATASET_SYNTHESES, response_model=wire.Job, status_code=202, tags=["synthesis"], responses=ERRORS
)
def submit_synthesis(
    dataset: str,
    body: wire.SynthesisRequest,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> wire.Job:
    """Spend (if admitted) and start a synthesis job: 202 with the job."""
    return gateway.submit_synthesis(principal, dataset, body, idempotency_key=idempotency_key)


# ------------------------------------------------------------------------------------------ queries
@router.post(r.DATASET_QUERY_PLAN, response_model=wire.PlanResponse, tags=["queries"], responses=ERRORS)
def plan_query(
    dataset: str, body: wire.QueryRequest, gateway: GatewayDep, principal: CurrentPrincipal
) -> wire.PlanResponse:
    """The privacy events and cost of a DP statistic. Spends nothing."""
    return gateway.plan_query(principal, dataset, body)


@router.post(r.DATASET_QUERIES, response_model=wire.QueryResult, tags=["queries"], responses=ERRORS)
def run_query(
    dataset: str,
    body: wire.QueryRequest,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A DP statistic (count, sum, mean, histogram, quantiles), charged to the dataset's budget."""
    # The service already built the answer from a validated QueryResult: send its JSON text as is
    # (the response model documents it) instead of validating and serializing it a second time.
    answer = gateway.query_text(principal, dataset, body, idempotency_key=idempotency_key)
    return Response(content=answer, media_type="application/json")


# ------------------------------------------------------------------------------------------ jobs
@router.get(r.JOBS, response_model=wire.JobList, tags=["jobs"], responses=ERRORS)
def list_jobs(
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    dataset: Annotated[str | None, Query(max_length=128)] = None,
    state: Annotated[wire.JobState | None, Query()] = None,
) -> wire.JobList:
    """Jobs, newest first (analysts see their own)."""
    return gateway.list_jobs(principal, dataset=dataset, state=state)


@router.get(r.JOB, response_model=wire.Job, tags=["jobs"], responses=ERRORS)
async def get_job(
    job: str,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_JOB_WAIT_SECONDS,
            description="Long poll: answer as soon as the job changes (state, stage, progress) or is "
            "final, or after this many seconds; 0 answers at once.",
        ),
    ] = 0.0,
    until: Annotated[
        Literal["change", "final"],
        Query(
            description="With `wait`: `change` (default) answers at the job's next change, `final` only "
            "once the job is final (one request for a script that needs only the outcome).",
        ),
    ] = "change",
) -> wire.Job:
    """A job's state, stage, progress and ETA (optionally after waiting for its next change, or until
    it is final)."""
    record = await run_in_threadpool(gateway.job_record, principal, job)  # visibility first
    if wait > 0 and not record.done:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        changed = asyncio.Event()

        def wake() -> None:  # called under the job manager's lock, after the change
            if until == "change" or gateway.jobs.get(job).done:
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = gateway.jobs.subscribe(job, wake)
        try:
            while True:
                changed.clear()
                current = gateway.jobs.get(job)  # after subscribing: no change can be missed
                if current.done or (until == "change" and current.version != record.version):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=remaining)
        finally:
            unsubscribe()
    return await run_in_threadpool(gateway.get_job, principal, job)


@router.post(r.JOB_CANCEL, response_model=wire.Job, tags=["jobs"], responses=ERRORS)
def cancel_job(job: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.Job:
    """Cancel a job; its spend stays recorded."""
    return gateway.cancel_job(principal, job)


@router.get(
    r.JOB_EVENTS,
    tags=["jobs"],
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "job events"}},
    response_class=StreamingResponse,
)
async def job_events(
    job: str, request: Request, gateway: GatewayDep, principal: CurrentPrincipal
) -> StreamingResponse:
    """Server-sent events: ``event: job`` with the Job as data at every change, until it is final."""
    record = await run_in_threadpool(gateway.job_record, principal, job)

    async def stream() -> AsyncIterator[bytes]:
        version = -1
        idle = 0.0
        current = record
        while True:
            if current.version != version:
                version = current.version
                data = gateway.job_wire(current, principal).model_dump_json()
                yield f"event: job\ndata: {data}\n\n".encode()
                idle = 0.0
                if current.done:
                    return
            await asyncio.sleep(0.2)
            idle += 0.2
            if idle >= 15.0:
                yield b": keep-alive\n\n"
                idle = 0.0
            if await request.is_disconnected():
                return
            current = gateway.jobs.get(job)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ------------------------------------------------------------------------------------------ releases
@router.get(r.RELEASES, response_model=wire.ReleaseList, tags=["releases"], responses=ERRORS)
def list_releases(
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    dataset: Annotated[str | None, Query(max_length=128)] = None,
) -> wire.ReleaseList:
    """Releases this token may see."""
    return gateway.list_releases(principal, dataset=dataset)


@router.get(r.RELEASE, response_model=wire.Release, tags=["releases"], responses=ERRORS)
def get_release(release: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.Release:
    """A release's metadata (content-addressed by sha256)."""
    return gateway.get_release(principal, release)


@router.get(
    r.RELEASE_DATA,
    tags=["releases"],
    responses={**ERRORS, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the table"}},
    response_class=Response,
)
def release_data(
    release: str,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    format: Annotated[Literal["csv", "parquet", "json"], Query()] = "csv",
) -> Response:
    """The synthetic table as CSV (formula cells neutralized), Parquet or JSON."""
    data = gateway.release_data(principal, release, format)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{release[:16]}.{format}"',
            "Repr-Digest": f"sha-256=:{digest}:",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(r.RELEASE_AUDIT, response_model=wire.AuditSummary, tags=["releases"], responses=ERRORS)
def release_audit(release: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.AuditSummary:
    """The release audit's aggregates."""
    return gateway.release_audit(principal, release)


@router.get(r.RELEASE_QUALITY, response_model=wire.QualitySummary, tags=["releases"], responses=ERRORS)
def release_quality(release: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.QualitySummary:
    """The release's quality report."""
    return gateway.release_quality(principal, release)


# ------------------------------------------------------------------------------------------ ledger
@router.get(r.LEDGER_ENTRIES, response_model=wire.LedgerEntries, tags=["ledger"], responses=ERRORS)
def ledger_entries(
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[str | None, Query(max_length=100)] = None,
) -> wire.LedgerEntries:
    """A page of ledger entries (admin, auditor)."""
    return gateway.ledger_entries(principal, start=start, limit=limit, kind=kind)


@router.get(r.LEDGER_ENTRY, response_model=wire.LedgerEntry, tags=["ledger"], responses=ERRORS)
def ledger_entry(seq: int, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.LedgerEntry:
    """One ledger entry."""
    return gateway.ledger_entry(principal, seq)


@router.get(r.LEDGER_CHECKPOINT, response_model=wire.Checkpoint, tags=["ledger"], responses=ERRORS)
def ledger_checkpoint(gateway: GatewayDep, principal: CurrentPrincipal) -> wire.Checkpoint:
    """The latest signed checkpoint."""
    return gateway.checkpoint(principal)


@router.get(r.LEDGER_PROOF, response_model=wire.InclusionProof, tags=["ledger"], responses=ERRORS)
def ledger_proof(
    seq: int,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    tree_size: Annotated[int | None, Query(ge=1)] = None,
) -> wire.InclusionProof:
    """RFC 6962 inclusion proof of an entry."""
    return gateway.inclusion_proof(principal, seq, tree_size)


@router.get(r.LEDGER_CONSISTENCY, response_model=wire.ConsistencyProof, tags=["ledger"], responses=ERRORS)
def ledger_consistency(
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    old: Annotated[int, Query(ge=0)],
    new: Annotated[int, Query(ge=0)],
) -> wire.ConsistencyProof:
    """RFC 6962 consistency proof between two tree sizes."""
    return gateway.consistency_proof(principal, old, new)


@router.get(
    r.LEDGER_EXPORT,
    tags=["ledger"],
    responses={**ERRORS, 200: {"content": {"application/zip": {}}, "description": "the export bundle"}},
    response_class=Response,
)
def ledger_export(gateway: GatewayDep, principal: CurrentPrincipal) -> Response:
    """The export bundle (zip) for offline verification."""
    data = gateway.export_ledger(principal)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="safesynth-ledger-export.zip"'},
    )


@router.get(r.LEDGER_PUBLIC_KEY, tags=["ledger"], response_class=PlainTextResponse, responses=ERRORS)
def ledger_public_key(gateway: GatewayDep, principal: CurrentPrincipal) -> PlainTextResponse:
    """The ledger's public (verifier) key."""
    return PlainTextResponse(gateway.public_key_text())
