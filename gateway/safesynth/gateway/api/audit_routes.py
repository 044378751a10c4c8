"""HTTP routes of the audits that are not a release's: external tables and canary audits.

* ``POST /v1/datasets/{dataset}/audits``: audit a table made by another tool (admin, auditor).
  ``application/json`` (an ExternalAuditRequest with a server-side ``path``; admin) or
  ``multipart/form-data`` (``metadata`` = ExternalAuditRequest JSON, ``file`` = CSV or Parquet).
* ``POST /v1/datasets/{dataset}/canary-audits/plan``: the canary run's cost (spends nothing).
* ``POST /v1/datasets/{dataset}/canary-audits``: charge and queue a canary run (202 with the job).
* ``GET /v1/canary-audits/{job}``: the canary audit's aggregates once the job has succeeded.

The service logic lives in :mod:`safesynth.gateway.service.external_audit`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from safesynth.gateway.api.deps import CurrentPrincipal, GatewayDep, IdempotencyKey
from safesynth.gateway.api.routes import invalid_request, read_upload_form
from safesynth.gateway.service import external_audit as svc
from safesynth.gateway.service.errors import UnsupportedMediaType
from safesynth.gateway.service.idempotency import request_hash
from safesynth.gateway.service.tokens import Role
from safesynth.sdk import models as wire

__all__ = ["audit_router"]

audit_router = APIRouter()
_PROBLEM = {"model": wire.Problem, "description": "An RFC 9457 problem (application/problem+json)"}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 404, 409, 413, 415, 422, 429)}

_EXTERNAL_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": wire.ExternalAuditRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["metadata", "file"],
                    "properties": {
                        "metadata": {"type": "string", "description": "ExternalAuditRequest as JSON"},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@audit_router.post(
    wire.DATASET_EXTERNAL_AUDITS,
    response_model=wire.ExternalAudit,
    tags=["audits"],
    responses=_ERRORS,
    openapi_extra=_EXTERNAL_DOC,
)
async def external_audit(
    dataset: str,
    request: Request,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> wire.ExternalAudit:
    """Audit a table made by another tool against this dataset (admin, auditor; recorded in the ledger).

    The answer is computed from private rows and is not differentially private: it holds the same
    aggregates as a release audit, labelled ``external-table/v1``, with what they mean and their caveats.
    """
    principal.require(Role.ADMIN, Role.AUDITOR)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: bytes | None = None
    filename: str | None = None
    if content_type == "application/json":
        try:
            body = wire.ExternalAuditRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise invalid_request(exc, "body") from None
    elif content_type == "multipart/form-data":
        body, upload, filename = await read_upload_form(
            request, wire.ExternalAuditRequest, gateway.settings.max_upload_bytes, "ExternalAuditRequest"
        )
    else:
        raise UnsupportedMediaType("send application/json (server-side path) or multipart/form-data (upload)")
    fingerprint = request_hash(
        "external-audit",
        dataset,
        body.model_dump(mode="json"),
        None if upload is None else hashlib.sha256(upload).hexdigest(),
    )

    def run() -> dict[str, Any]:
        answer = svc.audit_external_table(gateway, principal, dataset, body, upload=upload, filename=filename)
        return answer.model_dump(mode="json")

    answer, _ = await run_in_threadpool(
        gateway.idempotency.run, principal.token_id, idempotency_key, fingerprint, run
    )
    return wire.ExternalAudit.model_validate(answer)


@audit_router.post(
    wire.DATASET_CANARY_AUDIT_PLAN, response_model=wire.PlanResponse, tags=["audits"], responses=_ERRORS
)
def plan_canary_audit(
    dataset: str, body: wire.CanaryAuditRequest, gateway: GatewayDep, principal: CurrentPrincipal
) -> wire.PlanResponse:
    """The canary run's privacy cost (the engine's plan) and whether the budget admits it. Spends nothing."""
    return svc.plan_canary_audit(gateway, principal, dataset, body)


@audit_router.post(
    wire.DATASET_CANARY_AUDITS, response_model=wire.Job, status_code=202, tags=["audits"], responses=_ERRORS
)
def submit_canary_audit(
    dataset: str,
    body: wire.CanaryAuditRequest,
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> wire.Job:
    """Charge (like a synthesis) and queue an audit-only canary run; its output is never released."""
    return svc.submit_canary_audit(gateway, principal, dataset, body, idempotency_key=idempotency_key)


@audit_router.get(
    wire.CANARY_AUDIT, response_model=wire.CanaryAuditResult, tags=["audits"], responses=_ERRORS
)
def canary_audit(job: str, gateway: GatewayDep, principal: CurrentPrincipal) -> wire.CanaryAuditResult:
    """A finished canary audit's aggregates: the one-run epsilon lower bound and the accountant's epsilon."""
    return svc.canary_audit_result(gateway, principal, job)
