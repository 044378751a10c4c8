"""Service operations of the audit work that the release flow does not cover (functions of a Gateway).

**External-table audits** (``audit_external_table``): a table made by another tool, audited against a
registered dataset's private rows. The answer is computed from private data and is *not* differentially
private, like a release audit; unlike one, the caller chooses the input, so repeated crafted tables
could probe whether chosen records are in the dataset. Hence:

* only **admin and auditor** tokens may ask (analysts may not, even with a grant); a server-side
  ``path`` is admin only;
* each answer is **recorded in the ledger before it is returned** (``audit/v1``, ``scope: external``:
  the caller, the purpose, the table's SHA-256 and row count, and the same aggregates as a release
  audit: never per-record scores or membership labels);
* a **quota** per dataset: at most ``external_audits_per_day`` (setting; default 20) answers in any 24
  hours, counted from the ledger inside the append transaction (so concurrent requests cannot exceed
  it), and one external audit at a time per gateway process (CPU).

**Canary audits** (``plan_canary_audit``, ``submit_canary_audit``, ``canary_audit_result``): an
audit-only engine run on the training rows plus canaries (see :mod:`safesynth.gateway.audit.canaries`).
It reads private data, so it is charged through the same admission as a synthesis (``spend/v1`` with
``request_kind: canary-audit`` and ``released: false``); the canary design's commitment is in the
ledger (``audit.design/v1``, ``scope: canary``) before the engine runs; the engine's output is never
stored or released; the result (``audit/v1``, ``scope: canary``) is post-processing of that DP output.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safesynth.gateway.service.audit_wire import membership_wire, num
from safesynth.gateway.service.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from safesynth.gateway.service.files import ensure_private_dir, write_private
from safesynth.gateway.service.jobs import JobManager, JobRecord
from safesynth.gateway.service.ledger_io import ledger_safe
from safesynth.gateway.service.tables import format_for, read_table
from safesynth.gateway.service.tokens import Principal, Role
from safesynth.sdk import models as wire
from safesynth.sdk.schema import ColumnKind, DatasetSchema

if TYPE_CHECKING:
    import pandas as pd

    from safesynth.gateway.audit.canaries import CanaryAuditReport
    from safesynth.gateway.engines.base import Plan
    from safesynth.gateway.service.datasets import DatasetRecord
    from safesynth.gateway.service.gateway import Gateway
    from safesynth.gateway.service.jobs import JobHandle

__all__ = [
    "AUDIT",
    "CANARY_JOB_KIND",
    "DEFAULT_EXTERNAL_AUDITS_PER_DAY",
    "DESIGN",
    "MIN_EXTERNAL_ROWS",
    "audit_external_table",
    "canary_audit_result",
    "external_audits_per_day",
    "plan_canary_audit",
    "submit_canary_audit",
]

AUDIT = "audit/v1"
DESIGN = "audit.design/v1"
CANARY_JOB_KIND = "canary-audit"
DEFAULT_EXTERNAL_AUDITS_PER_DAY = 20
#: Fewer rows than this is refused: the figures would be noise (and a tiny table is a probe).
MIN_EXTERNAL_ROWS = 10
_EXTERNAL_SLOT = threading.Semaphore(1)
_WINDOW = timedelta(hours=24)


def external_audits_per_day(gateway: Gateway) -> int:
    """The per-dataset quota (setting ``external_audits_per_day`` if the settings have it)."""
    value = getattr(gateway.settings, "external_audits_per_day", DEFAULT_EXTERNAL_AUDITS_PER_DAY)
    return max(0, int(value))


def _audit_error(exc: Exception) -> InvalidRequest:
    code = str(getattr(exc, "code", "audit_error"))
    detail = getattr(exc, "detail", {}) or {}
    extra = {
        "audit_code": code,
        **{k: v for k, v in dict(detail).items() if k in ("missing", "extra", "role")},
    }
    return InvalidRequest(f"{code}: {getattr(exc, 'message', str(exc))}", extra=ledger_safe(extra))


def _external_schema(schema: DatasetSchema) -> DatasetSchema:
    """The schema without identifier columns (an external table need not have them): for reading only."""
    columns = tuple(c for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER)
    if not columns:
        raise InvalidRequest("the dataset has only identifier columns: nothing to audit")
    return DatasetSchema(columns=columns)


def _count_recent(view: Any, dataset: str, start_seq: int, now: datetime) -> int:
    since = now - _WINDOW
    count = 0
    for entry in view.entries(start_seq=start_seq, kinds=[AUDIT]):
        payload = entry.payload
        if payload.get("dataset") != dataset or payload.get("scope") != "external":
            continue
        stamp = datetime.fromisoformat(str(entry.timestamp).replace("Z", "+00:00"))
        if stamp >= since:
            count += 1
    return count


def audit_external_table(
    gateway: Gateway,
    principal: Principal,
    dataset: str,
    body: wire.ExternalAuditRequest,
    *,
    upload: bytes | None = None,
    filename: str | None = None,
) -> wire.ExternalAudit:
    """Audit an external table against ``dataset`` (admin, auditor); recorded, then returned."""
    principal.require(Role.ADMIN, Role.AUDITOR)
    principal.require_dataset(dataset)
    record = gateway.datasets.get(dataset)
    if (upload is None) == (body.path is None):
        raise InvalidRequest("give exactly one of an uploaded file or a server-side 'path'")
    source: Path | bytes
    if upload is not None:
        if len(upload) > gateway.settings.max_upload_bytes:
            raise PayloadTooLarge(f"the upload is larger than {gateway.settings.max_upload_bytes} bytes")
        fmt = format_for(filename or "upload", body.format)
        source = upload
    else:
        if principal.role is not Role.ADMIN:
            raise Forbidden("a server-side path is for admins; upload the table instead")
        assert body.path is not None
        source = gateway.datasets.resolve_server_path(body.path)
        fmt = format_for(source.name, body.format)
    design = gateway.datasets.design(record.id)
    if design is None:
        raise InvalidRequest(
            f"dataset {dataset!r} was registered without an audit split (holdout_fraction 0): "
            "there is nothing to compare an external table with"
        )
    limit = external_audits_per_day(gateway)
    start_seq = record.registered_seq
    if _count_recent(gateway.ledger.store, record.id, start_seq, datetime.now(UTC)) >= limit:
        raise RateLimited(f"dataset {dataset!r} has had its {limit} external audits in the last 24 hours")
    if not _EXTERNAL_SLOT.acquire(blocking=False):
        raise RateLimited("an external audit is already running on this gateway", extra={"retry_after": 5})
    try:
        raw = source if isinstance(source, bytes) else source.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        table = _read_external(gateway, source, fmt, record.schema)
        known = {c.name for c in record.schema.columns}
        ignored = [c for c in _column_names(raw, fmt) if c not in known][:1000]
        report_json, ledger_json, verdict, rule, reason = _run_external(gateway, record, table, body)
    finally:
        _EXTERNAL_SLOT.release()

    def check(view: Any) -> None:
        if _count_recent(view, record.id, start_seq, datetime.now(UTC)) >= limit:
            raise RateLimited(f"dataset {dataset!r} has had its {limit} external audits in the last 24 hours")

    entry = gateway.ledger.append(
        AUDIT,
        {
            "dataset": record.id,
            "scope": "external",
            "requester": principal.actor,
            "role": principal.role.value,
            "purpose": body.purpose,
            "table_sha256": digest,
            "rows": len(table),
            "ignored_columns": len(ignored),
            "verdict": verdict,
            "report": ledger_safe(ledger_json),
        },
        actor=principal.actor,
        check=check,
    )
    used = _count_recent(gateway.ledger.store, record.id, start_seq, datetime.now(UTC))
    return wire.ExternalAudit(
        dataset=record.id,
        table_sha256=digest,
        rows=len(table),
        verdict=verdict,
        rule=rule[:200],
        reason=reason[:4000],
        audit=_summary(report_json, digest, entry.seq),
        ignored_columns=tuple(c[:128] for c in ignored),
        meaningful=tuple(str(t)[:4000] for t in report_json.get("meaningful", [])[:16]),
        caveats=tuple(str(t)[:4000] for t in report_json.get("caveats", [])[:16]),
        requested_by=principal.actor[:200],
        audit_seq=entry.seq,
        audits_left_today=max(0, limit - used),
    )


def _column_names(raw: bytes, fmt: Any) -> list[str]:
    """The header of an uploaded table (to list the columns the audit ignores); [] if unreadable."""
    import csv
    import io

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return [str(n) for n in pq.ParquetFile(io.BytesIO(raw)).schema_arrow.names]
        first = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        return [str(n) for n in next(csv.reader([first]), [])]
    except Exception:  # the table was read already; this is only a listing
        return []


def _read_external(gateway: Gateway, source: Path | bytes, fmt: Any, schema: DatasetSchema) -> pd.DataFrame:
    try:
        table = read_table(
            source,
            fmt,
            _external_schema(schema),
            max_rows=min(gateway.settings.max_dataset_rows, gateway.settings.max_synthetic_rows),
            max_field_chars=gateway.settings.max_field_chars,
        )
    except InvalidRequest as exc:
        raise InvalidRequest(f"the external table: {exc.message}", extra=exc.extra) from None
    if len(table) < MIN_EXTERNAL_ROWS:
        raise InvalidRequest(f"an external table needs at least {MIN_EXTERNAL_ROWS} rows")
    return table


def _run_external(
    gateway: Gateway, record: DatasetRecord, table: pd.DataFrame, body: wire.ExternalAuditRequest
) -> tuple[dict[str, Any], dict[str, Any], str, str, str]:
    from safesynth.gateway.audit.errors import AuditError
    from safesynth.gateway.audit.external import run_external_audit

    design = gateway.datasets.design(record.id)
    try:
        report = run_external_audit(
            train=gateway.datasets.load(record.id, "train"),
            holdout=gateway.datasets.load(record.id, "holdout"),
            external=table,
            schema=record.schema,
            design=design,
            claimed_epsilon=body.claimed_epsilon,
            claimed_delta=float(body.claimed_delta),
        )
    except AuditError as exc:
        raise _audit_error(exc) from None
    report_json = _json_ready(report.to_json())
    return report_json, report.to_ledger_json(), str(report.verdict), report.rule, report.reason


def _json_ready(value: Any) -> Any:
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item"):
        return _json_ready(value.item())
    return value


def _summary(report: dict[str, Any], digest: str, seq: int) -> wire.AuditSummary:
    """The release-audit aggregates of the membership part, plus the copy check's figures."""
    audit = dict(report.get("membership") or {})
    attacks, lower, metrics = membership_wire(audit)
    copies = report.get("copy_check") or {}
    metrics["copy_share"] = num(copies.get("copy_share"))
    metrics["natural_duplicate_share"] = num(copies.get("natural_duplicate_share"))
    metrics["copy_p"] = num(copies.get("fisher_p"))
    near = report.get("near_copy_check") or {}
    metrics["near_copy_share"] = num(near.get("near_share"))
    metrics["natural_near_share"] = num(near.get("natural_share"))
    metrics["near_copy_p"] = num(near.get("fisher_p"))
    metrics["external_combined_p"] = num(report.get("combined_p"))
    return wire.AuditSummary(
        release_id=digest,
        verdict=str(report.get("verdict", "unknown"))[:200],
        attacks=attacks,
        empirical_epsilon_lower_bound=lower,
        accountant_epsilon=report.get("claimed_epsilon"),
        accountant_delta=None,
        metrics=metrics,
        audit_seq=seq,
        design_commitment=str(audit.get("design_commitment", ""))[:200] or None,
    )


# ==================================================================================== canary audits
def _canary_dir(gateway: Gateway) -> Path:
    return ensure_private_dir(Path(gateway.settings.home) / "canary-audits")


def _canary_plan(gateway: Gateway, record: DatasetRecord, body: wire.CanaryAuditRequest) -> Plan:
    # The Gateway's planner: limits, plan cache and engine-error mapping, from public inputs only.
    plan: Plan = gateway._plan_synthesis(record, body.synthesis())
    return plan


def plan_canary_audit(
    gateway: Gateway, principal: Principal, dataset: str, body: wire.CanaryAuditRequest
) -> wire.PlanResponse:
    """The canary run's cost (the engine's plan) and whether the budget admits it. Spends nothing."""
    principal.require(Role.ADMIN, Role.ANALYST)
    principal.require_dataset(dataset)
    record = gateway.datasets.get(dataset)
    plan = _canary_plan(gateway, record, body)
    plan_json = _json_ready(plan.to_json())
    return gateway._plan_response(record, f"canary-audit:{body.engine}", body.rows, plan_json, plan.events)


def submit_canary_audit(
    gateway: Gateway,
    principal: Principal,
    dataset: str,
    body: wire.CanaryAuditRequest,
    *,
    idempotency_key: str | None = None,
) -> wire.Job:
    """Charge the canary run, commit its design to the ledger, and queue it (202 with the job)."""
    from safesynth.gateway.service.idempotency import request_hash

    principal.require(Role.ADMIN, Role.ANALYST)
    principal.require_dataset(dataset)
    record = gateway.datasets.get(dataset)
    fingerprint = request_hash("canary-audit", dataset, body.model_dump(mode="json"))

    def action() -> dict[str, Any]:
        from safesynth.gateway.audit.canaries import make_canary_design

        plan = _canary_plan(gateway, record, body)
        design = make_canary_design(record.schema, body.n_canaries)
        gateway.jobs.reserve(principal.token_id)
        try:
            job_id = JobManager.new_id()
            receipt = gateway.admission.admit(
                dataset=record.id,
                epsilon_total=record.epsilon_total,
                delta_total=record.delta_total,
                events=plan.events,
                delta=float(plan.cost.delta),
                cost=plan.cost,
                actor=principal.actor,
                details={
                    "requester": principal.actor,
                    "purpose": body.purpose,
                    "request_kind": CANARY_JOB_KIND,
                    "engine": body.engine,
                    "job": job_id,
                    "released": False,
                    "parameters": ledger_safe(plan.request.to_json()),
                },
            )
            # Commit the canaries and coins before the engine runs (the private part stays 0600 here).
            write_private(
                _canary_dir(gateway) / f"{job_id}.design.json", json.dumps(design.to_private_json()).encode()
            )
            design_entry = gateway.ledger.append(
                DESIGN,
                {
                    "dataset": record.id,
                    "scope": "canary",
                    "job": job_id,
                    "spend_seq": receipt.seq,
                    **design.to_ledger_json(),
                },
                actor=principal.actor,
            )
        except BaseException:
            gateway.jobs.release_reservation(principal.token_id)
            raise
        job = JobRecord(
            id=job_id,
            dataset=record.id,
            principal=principal.token_id,
            kind=CANARY_JOB_KIND,
            engine=body.engine,
            state="queued",
            stage="queued",
            spend_seq=receipt.seq,
            epsilon=receipt.epsilon,
            delta=receipt.delta,
        )

        def work(handle: JobHandle) -> None:
            _run_canary(gateway, handle, record, plan, design, receipt.seq, design_entry.seq)

        gateway.jobs.submit(job, work)
        return {"job": job_id}

    answer, _ = gateway.idempotency.run(principal.token_id, idempotency_key, fingerprint, action)
    return gateway.job_wire(gateway.jobs.get(str(answer["job"])), principal)


def _run_canary(
    gateway: Gateway,
    handle: JobHandle,
    record: DatasetRecord,
    plan: Plan,
    design: Any,
    spend_seq: int,
    design_seq: int,
) -> None:
    from safesynth.gateway.audit.canaries import run_canary_audit
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines import get_engine
    from safesynth.gateway.engines.base import EngineContext

    handle.progress("loading", 0.01)
    data = gateway.datasets.load(record.id, "train")
    needs_runner = plan.engine == "text" or any(c.kind is ColumnKind.TEXT for c in record.schema.columns)
    runner = gateway.runner() if needs_runner else None
    handle.check()
    ctx = EngineContext(
        rng=RandomSource.secure(),
        runner=runner,
        progress=lambda stage, fraction: handle.progress(f"canary run: {stage}", 0.02 + 0.9 * fraction),
        cancelled=handle.cancelled,
    )
    report: CanaryAuditReport = run_canary_audit(
        get_engine(plan.engine), plan, record.schema, data, design, ctx
    )
    handle.check()
    handle.progress("recording", 0.95)
    entry = gateway.ledger.append(
        AUDIT,
        {
            "dataset": record.id,
            "scope": "canary",
            "job": handle.job_id,
            "engine": plan.engine,
            "spend_seq": spend_seq,
            "design_seq": design_seq,
            "released": False,
            "verdict": str(report.verdict),
            "report": ledger_safe(report.to_ledger_json()),
        },
        actor="gateway",
    )
    bound = report.epsilon_bound
    result = wire.CanaryAuditResult(
        job_id=handle.job_id,
        dataset=record.id,
        engine=plan.engine,
        verdict=str(report.verdict),
        rule=report.rule,
        reason=report.reason[:4000],
        n_canaries=report.n_canaries,
        n_included=report.n_included,
        auc=min(1.0, max(0.0, report.auc)),
        tpr_at_fpr_1pct=report.tpr_at_fpr_1pct,
        tpr_at_fpr_10pct=report.tpr_at_fpr_10pct,
        empirical_epsilon_lower_bound=max(0.0, bound.value),
        confidence=bound.confidence,
        method=bound.method[:200],
        accountant_epsilon=report.accountant_epsilon,
        accountant_delta=report.delta,
        synthetic_rows=report.synthetic_rows,
        spend_seq=spend_seq,
        design_seq=design_seq,
        audit_seq=entry.seq,
        design_commitment=report.design_commitment,
        runtime_seconds=report.runtime_seconds,
        notes=tuple(n[:4000] for n in report.notes[:64]),
    )
    write_private(_canary_dir(gateway) / f"{handle.job_id}.json", result.model_dump_json().encode())


def canary_audit_result(gateway: Gateway, principal: Principal, job_id: str) -> wire.CanaryAuditResult:
    """A finished canary audit's result (admin, auditor; analysts: their own jobs)."""
    record = gateway.job_record(principal, job_id)  # NotFound for another analyst's job
    if record.kind != CANARY_JOB_KIND:
        raise NotFound(f"job {job_id!r} is not a canary audit")
    path = _canary_dir(gateway) / f"{record.id}.json"
    if record.state != "succeeded" or not path.exists():
        raise NotFound(f"canary audit {job_id!r} has no result (job state: {record.state})")
    return wire.CanaryAuditResult.model_validate_json(path.read_bytes())
