"""The service layer: every operation of the gateway, authorized per principal, in wire models.

The HTTP layer (``safesynth.gateway.api``) only adapts requests to these methods. Each method
checks the caller's role and dataset grants first, validates, and only then touches the budget.

Authorization (``A`` admin, ``N`` analyst with a grant for the dataset, ``U`` auditor):
tokens: A; register dataset: A; list/show/budget: A N U; plan, synthesize, query: A N;
jobs: A U (all), N (own); cancel: A, N (own); release metadata, audit, quality: A N U;
release data: A N; ledger: A U.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safesynth.gateway.service.admission import REFUSAL, SPEND, Admission
from safesynth.gateway.service.audit_wire import membership_wire, num
from safesynth.gateway.service.datasets import DatasetRecord, DatasetStore
from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import (
    DataUnavailable,
    InvalidRequest,
    ModelUnavailable,
    NotFound,
    NotInitialized,
    PayloadTooLarge,
    ReleaseWithheld,
)
from safesynth.gateway.service.idempotency import IdempotencyStore, request_hash
from safesynth.gateway.service.jobs import JobHandle, JobManager, JobRecord
from safesynth.gateway.service.ledger_io import LockedLedger, ledger_safe
from safesynth.gateway.service.releases import ReleaseRecord, ReleaseStore
from safesynth.gateway.service.tables import format_for
from safesynth.gateway.service.tokens import Principal, Role, TokenRecord, TokenStore
from safesynth.gateway.settings import GatewaySettings, check_permissions
from safesynth.ledger import Signer
from safesynth.sdk import models as wire
from safesynth.sdk.schema import ColumnKind

if TYPE_CHECKING:
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines.base import Plan
    from safesynth.gateway.llm import Runner
    from safesynth.gateway.service.query_table import QueryTable

__all__ = ["GATEWAY_STAGES", "Gateway"]

#: The stages of a synthesis job that are the gateway's own (``Job.stage_seconds``); from ``engine``
#: until ``releasing`` the stages are the engine's.
GATEWAY_STAGES = ("planning", "admission", "queued", "starting", "loading", "releasing", "auditing")

A, N, U = Role.ADMIN, Role.ANALYST, Role.AUDITOR
TOKEN_CREATED = "token.created/v1"  # noqa: S105 (an entry kind)
TOKEN_REVOKED = "token.revoked/v1"  # noqa: S105 (an entry kind)
RELEASE = "release/v1"
AUDIT = "audit/v1"


#: Engine plans by (engine, public schema, request): a plan depends on public inputs only, so the plan
#: endpoint and the submission that follows it (or a retry) reuse it. Small, process-wide, FIFO.
_PLAN_CACHE: dict[str, Plan] = {}
_PLAN_CACHE_SIZE = 64
_PLAN_LOCK = threading.Lock()
#: Locks that serialize identical DP statistics (one spends, the others read its cached answer).
_QUERY_STRIPES = 4096


def _f(value: Any) -> float:
    return float(value)


class Gateway:
    """One gateway process's service: state, ledger, admission, jobs, queries."""

    def __init__(self, settings: GatewaySettings, *, recover_jobs: bool = True) -> None:
        check_permissions(settings)
        if not settings.state_path.exists() or not settings.signing_key_path.exists():
            raise NotInitialized(f"no initialized home at {settings.home}: run `safesynth init` first")
        self.settings = settings
        self.db = StateDB(settings.state_path)
        signer = Signer.load(settings.signing_key_path)
        self.signer = signer
        self.ledger = LockedLedger.open(settings.ledger_path, signer)
        self.tokens = TokenStore(self.db)
        self.datasets = DatasetStore(settings, self.db, self.ledger)
        self.admission = Admission(self.ledger)
        self.releases = ReleaseStore(settings.releases_dir, self.db)
        self.idempotency = IdempotencyStore(self.db)
        self.idempotency.expire(settings.idempotency_ttl_hours)
        self.jobs = JobManager(
            self.db,
            workers=settings.job_workers,
            queue_size=settings.job_queue_size,
            per_principal=settings.jobs_per_principal,
        )
        # A second process on the same home (the local CLI) must not fail the server's running jobs.
        self.recovered_jobs = self.jobs.recover() if recover_jobs else 0
        self._runner: Runner | None = None
        self._runner_lock = threading.Lock()
        self._query_guard = threading.Lock()
        # Striped: identical queries share a stripe (so only one of them spends), and the number of
        # locks stays fixed however many distinct queries are asked.
        self._query_locks = tuple(threading.Lock() for _ in range(_QUERY_STRIPES))
        self._query_tables: dict[str, QueryTable] = {}
        self._rngs = threading.local()

    def close(self, *, grace_seconds: float = 5.0) -> None:
        """Finish or fail running jobs, then close the stores."""
        self.jobs.shutdown(grace_seconds=grace_seconds)
        self.ledger.close()
        self.db.close()

    # =============================================================================== service
    def info(self) -> wire.ServiceInfo:
        """Version, ledger origin and public key (base64)."""
        import base64

        from safesynth.gateway.engines import engine_names

        return wire.ServiceInfo(
            version=package_version("safesynth"),
            ledger_origin=self.settings.ledger_origin,
            ledger_key_id=self.signer.verifier().key_id.hex(),
            ledger_public_key=base64.b64encode(self.signer.public_key_bytes()).decode(),
            engines=tuple(engine_names()),
        )

    def runner(self) -> Runner:
        """The language model, loaded once on first use."""
        with self._runner_lock:
            if self._runner is None:
                from safesynth.gateway.llm import get_runner

                self._runner = get_runner(self.settings.model_path)
            return self._runner

    # =============================================================================== tokens
    @staticmethod
    def token_info(record: TokenRecord) -> wire.TokenInfo:
        """The wire form of a token (never the secret)."""
        return wire.TokenInfo(
            id=record.id,
            name=record.name[:200],
            role=record.role.value,
            datasets=record.datasets,
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked=record.revoked,
            revoked_at=record.revoked_at,
        )

    def create_token(self, principal: Principal | None, body: wire.TokenCreate) -> wire.TokenCreated:
        """A new token (admin; ``principal`` None for the local CLI). Recorded in the ledger."""
        if principal is not None:
            principal.require(A)
        record, secret = self.tokens.create(
            name=body.name, role=body.role, datasets=body.datasets, expires_at=body.expires_at
        )
        self.ledger.append(
            TOKEN_CREATED,
            {
                "token": record.id,
                "name": record.name,
                "role": record.role.value,
                "datasets": list(record.datasets),
            },
            actor=principal.actor if principal is not None else "local-admin",
        )
        return wire.TokenCreated(info=self.token_info(record), token=secret)

    def list_tokens(self, principal: Principal | None) -> wire.TokenList:
        """Every token (admin)."""
        if principal is not None:
            principal.require(A)
        return wire.TokenList(tokens=tuple(self.token_info(r) for r in self.tokens.list()))

    def get_token(self, principal: Principal | None, token_id: str) -> wire.TokenInfo:
        """One token (admin)."""
        if principal is not None:
            principal.require(A)
        return self.token_info(self.tokens.get(token_id))

    def revoke_token(self, principal: Principal | None, token_id: str) -> wire.TokenInfo:
        """Revoke a token (admin). Recorded in the ledger."""
        if principal is not None:
            principal.require(A)
        before = self.tokens.get(token_id)
        record = self.tokens.revoke(token_id)
        if not before.revoked:
            self.ledger.append(
                TOKEN_REVOKED,
                {"token": record.id},
                actor=principal.actor if principal is not None else "local-admin",
            )
        return self.token_info(record)

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a bearer token (NotAuthorized otherwise)."""
        return self.tokens.authenticate(token)

    # =============================================================================== datasets
    def _dataset_info(self, record: DatasetRecord) -> wire.DatasetInfo:
        status = self.admission.status(record.id, record.epsilon_total, record.delta_total)
        return wire.DatasetInfo(
            id=record.id,
            dataset_schema=record.schema,
            budget=wire.BudgetSpec(epsilon_total=record.epsilon_total, delta_total=record.delta_total),
            description=record.description,
            row_count_bucket=record.row_bucket,
            registered_at=record.registered_at,
            registered_seq=record.registered_seq,
            epsilon_spent=status.epsilon_spent,
            delta_spent=status.delta_spent,
        )

    def register_dataset(
        self,
        principal: Principal | None,
        body: wire.DatasetCreate,
        *,
        upload: bytes | None = None,
        filename: str | None = None,
    ) -> wire.DatasetInfo:
        """Register a dataset from an upload or a server-side path (admin)."""
        if principal is not None:
            principal.require(A)
        if (upload is None) == (body.path is None):
            raise InvalidRequest("give exactly one of an uploaded file or a server-side 'path'")
        if upload is not None:
            if len(upload) > self.settings.max_upload_bytes:
                raise PayloadTooLarge(f"the upload is larger than {self.settings.max_upload_bytes} bytes")
            fmt = format_for(filename or "upload", body.format)
            source: Path | bytes = upload
        else:
            assert body.path is not None
            source = self.datasets.resolve_server_path(body.path)
            fmt = format_for(source.name, body.format)
        record = self.datasets.register(
            dataset=body.id,
            schema=body.dataset_schema,
            epsilon_total=body.budget.epsilon_total,
            delta_total=body.budget.delta_total,
            source=source,
            fmt=fmt,
            actor=principal.actor if principal is not None else "local-admin",
            description=body.description,
            holdout_fraction=body.holdout_fraction,
        )
        return self._dataset_info(record)

    def _visible_dataset(self, principal: Principal, dataset: str) -> DatasetRecord:
        principal.require_dataset(dataset)
        return self.datasets.get(dataset)

    def list_datasets(self, principal: Principal) -> wire.DatasetList:
        """The datasets the caller may see."""
        records = [r for r in self.datasets.list() if principal.can_see(r.id)]
        return wire.DatasetList(datasets=tuple(self._dataset_info(r) for r in records))

    def get_dataset(self, principal: Principal, dataset: str) -> wire.DatasetInfo:
        """One dataset's public description."""
        return self._dataset_info(self._visible_dataset(principal, dataset))

    def budget(self, principal: Principal, dataset: str) -> wire.Budget:
        """Total, spent, remaining, and the spend/refusal history (from the ledger)."""
        record = self._visible_dataset(principal, dataset)
        status = self.admission.status(record.id, record.epsilon_total, record.delta_total)
        history: list[wire.BudgetHistoryItem] = []
        flt = self.admission.filter(record.epsilon_total, record.delta_total)
        state = flt.empty_state()
        from safesynth.gateway.service.admission import spend_events

        for entry in self.ledger.entries(start_seq=record.registered_seq, kinds=[SPEND, REFUSAL]):
            payload = entry.payload
            if payload.get("dataset") != record.id:
                continue
            after: float | None = None
            if entry.kind == SPEND:
                decision = flt.decide(state, spend_events(payload))
                state = decision.new_state
                after = float(decision.epsilon_spent)
            history.append(
                wire.BudgetHistoryItem(
                    seq=entry.seq,
                    kind="spend" if entry.kind == SPEND else "refusal",
                    timestamp=_timestamp(entry.timestamp),
                    actor=str(entry.actor)[:200],
                    purpose=str(payload.get("purpose", ""))[:500],
                    request_kind=str(payload.get("request_kind", ""))[:200],
                    detail=str(payload.get("engine") or payload.get("query_kind") or "")[:200],
                    epsilon=_f(payload.get("epsilon", "0")),
                    delta=_f(payload.get("delta", "0")),
                    epsilon_spent_after=after,
                    job_id=payload.get("job"),
                )
            )
        return wire.Budget(
            dataset=record.id,
            epsilon_total=record.epsilon_total,
            delta_total=record.delta_total,
            epsilon_spent=status.epsilon_spent,
            delta_spent=status.delta_spent,
            epsilon_remaining=status.epsilon_remaining,
            delta_remaining=status.delta_remaining,
            rule=status.rule[:200],
            history=tuple(history),
        )

    # =============================================================================== synthesis
    def _default_delta(self, record: DatasetRecord, delta: float | None) -> float:
        if delta is not None:
            return float(delta)
        return record.delta_total / 10.0

    def _plan_synthesis(self, record: DatasetRecord, body: wire.SynthesisRequest) -> Plan:
        from safesynth.gateway.engines import EngineError, get_engine
        from safesynth.gateway.engines.base import SynthesisRequest

        if body.rows is not None and body.rows > self.settings.max_synthetic_rows:
            raise PayloadTooLarge(f"rows is over this gateway's limit of {self.settings.max_synthetic_rows}")
        delta = self._default_delta(record, body.delta)
        if delta > record.delta_total:
            raise InvalidRequest(f"delta={delta} is above the dataset's delta_total={record.delta_total}")
        key = request_hash(
            "plan",
            body.engine,
            record.schema.model_dump(mode="json"),
            body.epsilon,
            delta,
            body.rows,
            body.options,
        )
        with _PLAN_LOCK:
            cached = _PLAN_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            engine = get_engine(body.engine)
            request = SynthesisRequest(
                engine=body.engine,
                epsilon=body.epsilon,
                delta=delta,
                rows=body.rows,
                options=dict(body.options),
            )
            plan = engine.plan(record.schema, request)
        except EngineError as exc:
            raise InvalidRequest(f"{exc.code}: {exc.message}", extra={"engine_code": exc.code}) from None
        with _PLAN_LOCK:
            _PLAN_CACHE[key] = plan
            while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
                _PLAN_CACHE.pop(next(iter(_PLAN_CACHE)))
        return plan

    def _plan_response(
        self, record: DatasetRecord, engine: str, rows: int | None, plan_json: Mapping[str, Any], events: Any
    ) -> wire.PlanResponse:
        cost = plan_json["cost"]
        admitted, status = self.admission.would_admit(
            record.id, record.epsilon_total, record.delta_total, events
        )
        return wire.PlanResponse(
            dataset=record.id,
            engine=engine,
            rows=rows,
            events=tuple(plan_json["events"]),
            epsilon=_f(cost["epsilon"]),
            delta=_f(cost["delta"]),
            method=str(cost["method"])[:200],
            transcript=tuple(plan_json.get("transcript", ())),
            options=dict(plan_json.get("options", {})),
            admitted=admitted,
            epsilon_remaining=status.epsilon_remaining,
            delta_remaining=status.delta_remaining,
        )

    def plan_synthesis(
        self, principal: Principal, dataset: str, body: wire.SynthesisRequest
    ) -> wire.PlanResponse:
        """The plan and cost of a synthesis, and whether it would be admitted now. Spends nothing."""
        principal.require(A, N)
        record = self._visible_dataset(principal, dataset)
        plan = self._plan_synthesis(record, body)
        return self._plan_response(record, body.engine, body.rows, _json_ready(plan.to_json()), plan.events)

    def submit_synthesis(
        self,
        principal: Principal,
        dataset: str,
        body: wire.SynthesisRequest,
        *,
        idempotency_key: str | None = None,
    ) -> wire.Job:
        """Admit (spend) and queue a synthesis job; a retry with the same key returns the same job."""
        principal.require(A, N)
        record = self._visible_dataset(principal, dataset)
        fingerprint = request_hash("synthesis", dataset, body.model_dump(mode="json"))

        def action() -> dict[str, Any]:
            started = time.perf_counter()
            plan = self._plan_synthesis(record, body)
            planned = time.perf_counter()
            self._check_available(record, plan)
            self.jobs.reserve(principal.token_id)
            try:
                job_id = JobManager.new_id()
                receipt = self.admission.admit(
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
                        "request_kind": "synthesis",
                        "engine": body.engine,
                        "job": job_id,
                        "parameters": ledger_safe(plan.request.to_json()),
                    },
                )
            except BaseException:
                self.jobs.release_reservation(principal.token_id)
                raise
            job = JobRecord(
                id=job_id,
                dataset=record.id,
                principal=principal.token_id,
                kind="synthesis",
                engine=body.engine,
                state="queued",
                stage="queued",
                spend_seq=receipt.seq,
                epsilon=receipt.epsilon,
                delta=receipt.delta,
                stage_seconds=(("planning", planned - started), ("admission", time.perf_counter() - planned)),
            )
            self.jobs.submit(job, lambda handle: self._run_synthesis(handle, record, plan, receipt.seq))
            return {"job": job_id}

        answer, _ = self.idempotency.run(principal.token_id, idempotency_key, fingerprint, action)
        return self.job_wire(self.jobs.get(str(answer["job"])), principal)

    def _train_data(self, record: DatasetRecord) -> Any:
        """The dataset's private train part; :class:`DataUnavailable` if its stored table cannot be read."""
        try:
            return self.datasets.load(record.id, "train")
        except Exception as exc:
            raise DataUnavailable(
                f"the stored table of dataset {record.id!r} cannot be read ({type(exc).__name__}); "
                "nothing was spent"
            ) from exc

    def _check_available(self, record: DatasetRecord, plan: Plan) -> None:
        """Before charging: the data are readable and the model an engine needs loads (a request
        refused here spends nothing). Both are loaded once per process and kept."""
        self._train_data(record)
        if self._needs_runner(record, plan):
            try:
                self.runner()
            except Exception as exc:
                raise ModelUnavailable(
                    f"the language model for engine {plan.engine!r} cannot be loaded ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); nothing was spent"
                ) from exc

    def _needs_runner(self, record: DatasetRecord, plan: Plan) -> bool:
        return plan.engine == "text" or any(c.kind is ColumnKind.TEXT for c in record.schema.columns)

    def _run_synthesis(self, handle: JobHandle, record: DatasetRecord, plan: Plan, spend_seq: int) -> str:
        from safesynth.gateway.dp.rng import RandomSource
        from safesynth.gateway.engines import get_engine
        from safesynth.gateway.engines.base import EngineContext

        handle.progress("loading", 0.01)
        data = self.datasets.load(record.id, "train")
        runner = self.runner() if self._needs_runner(record, plan) else None
        handle.check()
        handle.progress("engine", 0.02)  # from here until "releasing", the time is the engine's
        ctx = EngineContext(
            rng=RandomSource.secure(),
            runner=runner,
            progress=lambda stage, fraction: handle.progress(stage, 0.02 + 0.83 * fraction),
            cancelled=handle.cancelled,
        )
        output = get_engine(plan.engine).run(plan, record.schema, data, ctx)
        handle.check()
        handle.progress("releasing", 0.86)
        release_id, _ = self.releases.write(output.table, output.coded_columns)
        columns = tuple(str(c) for c in output.table.columns)
        entry = self.ledger.append(
            RELEASE,
            {
                "dataset": record.id,
                "job": handle.job_id,
                "sha256": release_id,
                "format": "parquet",
                "rows": len(output.table),
                "columns": list(columns),
                "spend_seq": spend_seq,
                "engine": plan.engine,
            },
            actor="gateway",
        )
        release = ReleaseRecord(
            id=release_id,
            dataset=record.id,
            job_id=handle.job_id,
            engine=plan.engine,
            rows=len(output.table),
            columns=columns,
            spend_seq=spend_seq,
            epsilon=float(plan.cost.epsilon),
            delta=float(plan.cost.delta),
            created=ReleaseStore.now(),
            release_seq=entry.seq,
            report=_json_ready(dict(output.report)),
        )
        self.releases.save(release)
        if self.settings.run_audits:
            handle.progress("auditing", 0.9)
            self._audit_release(release, record, data, output.table)
        return release_id

    def _audit_release(
        self, release: ReleaseRecord, record: DatasetRecord, train: Any, synthetic: Any
    ) -> None:
        """Run the audit suite and the quality report; record the audit's aggregates (``audit/v1``).

        An audit that fails is recorded as such (verdict ``error``); the release stays (its spend was
        charged when the job was admitted).
        """
        from safesynth.gateway.audit import GatePolicy, gate, quality_report, run_audit

        design = self.datasets.design(record.id)
        if design is None:
            return
        holdout = self.datasets.load(record.id, "holdout")
        try:
            report = run_audit(
                train=train,
                holdout=holdout,
                synthetic=synthetic,
                schema=record.schema,
                design=design,
                accountant_epsilon=release.epsilon,
                delta=release.delta,
            )
            audit_json: dict[str, Any] = _json_ready(report.to_json())
            ledger_json: dict[str, Any] = report.to_ledger_json()
            verdict = str(report.verdict)
            decision = gate(report, GatePolicy())
            withheld = None if decision.release else f"{decision.rule}: {decision.reason}"
        except Exception as exc:
            audit_json = {"error": str(getattr(exc, "code", type(exc).__name__)), "message": str(exc)[:500]}
            ledger_json = dict(audit_json)
            verdict = "error"
            withheld = None
        entry = self.ledger.append(
            AUDIT,
            {
                "dataset": record.id,
                "release": release.id,
                "verdict": verdict,
                "report": ledger_safe(ledger_json),
            },
            actor="gateway",
        )
        if withheld is not None:
            # The gate's refusal is in the ledger; the spend stays spent (invariant 2).
            self.ledger.append(
                REFUSAL,
                {
                    "dataset": record.id,
                    "release": release.id,
                    "reason": "audit_gate",
                    "detail": withheld[:500],
                    "spend_seq": release.spend_seq,
                },
                actor="gateway",
            )
            self.releases.update(release.id, withheld_reason=withheld)
        quality_json: dict[str, Any]
        try:
            quality_json = _json_ready(quality_report(train, holdout, synthetic, record.schema).to_json())
        except Exception as exc:
            quality_json = {"error": str(getattr(exc, "code", type(exc).__name__)), "message": str(exc)[:500]}
        self.releases.update(
            release.id, audit=audit_json, audit_verdict=verdict, audit_seq=entry.seq, quality=quality_json
        )

    # =============================================================================== jobs
    @staticmethod
    def job_wire(record: JobRecord, principal: Principal) -> wire.Job:
        """The wire form of a job, as ``principal`` may see it: the stage timings only for admins and
        auditors (an engine's time grows with the private table, so analysts get none; the job's
        timestamps they see anyway)."""
        error = None
        if record.error_code is not None and record.state != "succeeded":
            error = wire.JobError(code=record.error_code[:200], message=(record.error_message or "")[:4000])
        return wire.Job(
            id=record.id,
            dataset=record.dataset,
            kind=record.kind,
            engine=record.engine,
            state=record.state,
            stage=record.stage[:200],
            progress=min(1.0, max(0.0, record.progress)),
            eta_seconds=record.eta_seconds,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            spend_seq=record.spend_seq,
            epsilon=record.epsilon,
            delta=record.delta,
            release_id=record.release_id,
            error=error,
            stage_seconds=(
                {}
                if principal.role is N
                else {name[:200]: round(seconds, 6) for name, seconds in record.stage_seconds}
            ),
        )

    def _visible_job(self, principal: Principal, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if principal.role is N and record.principal != principal.token_id:
            raise NotFound(f"no job {job_id!r}")
        return record

    def get_job(self, principal: Principal, job_id: str) -> wire.Job:
        """A job's state (analysts: their own jobs only)."""
        return self.job_wire(self._visible_job(principal, job_id), principal)

    def job_record(self, principal: Principal, job_id: str) -> JobRecord:
        """The internal record (for the event stream), with the same visibility rule."""
        return self._visible_job(principal, job_id)

    def list_jobs(
        self, principal: Principal, *, dataset: str | None = None, state: str | None = None
    ) -> wire.JobList:
        """Jobs, newest first (analysts: their own)."""
        owner = principal.token_id if principal.role is N else None
        records = self.jobs.list(principal=owner)
        out = [
            self.job_wire(r, principal)
            for r in records
            if (dataset is None or r.dataset == dataset) and (state is None or r.state == state)
        ]
        return wire.JobList(jobs=tuple(out))

    def cancel_job(self, principal: Principal, job_id: str) -> wire.Job:
        """Cancel a job (admin, or the analyst who made it). Its spend stays."""
        principal.require(A, N)
        self._visible_job(principal, job_id)
        return self.job_wire(self.jobs.cancel(job_id), principal)

    # =============================================================================== releases
    def _visible_release(self, principal: Principal, release_id: str) -> ReleaseRecord:
        record = self.releases.get(release_id)
        if not principal.can_see(record.dataset):
            raise NotFound(f"no release {release_id!r}")
        return record

    @staticmethod
    def release_wire(record: ReleaseRecord) -> wire.Release:
        """The wire form of a release."""
        return wire.Release(
            id=record.id,
            sha256=record.id,
            dataset=record.dataset,
            job_id=record.job_id,
            engine=record.engine,
            rows=record.rows,
            columns=record.columns,
            spend_seq=record.spend_seq,
            release_seq=record.release_seq,
            epsilon=record.epsilon,
            delta=record.delta,
            created=record.created,
            audit_verdict=record.audit_verdict,
        )

    def get_release(self, principal: Principal, release_id: str) -> wire.Release:
        """A release's metadata."""
        return self.release_wire(self._visible_release(principal, release_id))

    def list_releases(self, principal: Principal, *, dataset: str | None = None) -> wire.ReleaseList:
        """Releases the caller may see."""
        records = [
            r
            for r in self.releases.list()
            if principal.can_see(r.dataset) and (dataset is None or r.dataset == dataset)
        ]
        return wire.ReleaseList(releases=tuple(self.release_wire(r) for r in records))

    def release_data(self, principal: Principal, release_id: str, fmt: str) -> bytes:
        """The synthetic table (admin, granted analyst)."""
        principal.require(A, N)
        record = self._visible_release(principal, release_id)
        if record.withheld_reason is not None:
            raise ReleaseWithheld(f"release {release_id!r} is withheld: {record.withheld_reason}")
        return self.releases.render(release_id, fmt)

    def release_audit(self, principal: Principal, release_id: str) -> wire.AuditSummary:
        """The release audit's aggregates."""
        record = self._visible_release(principal, release_id)
        if record.audit is None:
            raise NotFound(f"release {release_id!r} has no audit (yet)")
        return _audit_summary(record)

    def release_quality(self, principal: Principal, release_id: str) -> wire.QualitySummary:
        """The release's quality report."""
        record = self._visible_release(principal, release_id)
        if record.quality is None:
            raise NotFound(f"release {release_id!r} has no quality report (yet)")
        return _quality_summary(record)

    # =============================================================================== queries
    def _query_lock(self, key: str) -> threading.Lock:
        return self._query_locks[int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % _QUERY_STRIPES]

    def plan_query(self, principal: Principal, dataset: str, body: wire.QueryRequest) -> wire.PlanResponse:
        """The events and cost of a DP statistic, and whether it would be admitted. Spends nothing."""
        from safesynth.gateway.service.admission import query_cost
        from safesynth.gateway.service.queries import plan_query

        principal.require(A, N)
        record = self._visible_dataset(principal, dataset)
        plan = plan_query(record.schema, body)
        delta = float(body.delta or 0.0)
        cost = query_cost(plan.events, delta)
        plan_json = {
            "events": [_json_ready(e.to_json()) for e in plan.events],
            "cost": {"epsilon": float(cost.epsilon), "delta": float(cost.delta), "method": cost.method},
            "transcript": [{"mechanism": plan.mechanism, "sensitivity": plan.sensitivity}],
        }
        return self._plan_response(record, f"query:{body.kind}", None, plan_json, plan.events)

    def _query_table(self, dataset: str) -> QueryTable:
        """The dataset's contribution-bounded rows for DP statistics (built once, then cached)."""
        from safesynth.gateway.service.query_table import QueryTable

        with self._query_guard:
            table = self._query_tables.get(dataset)
        if table is None:
            record = self.datasets.get(dataset)
            table = QueryTable(self._train_data(record), record.schema)
            with self._query_guard:
                table = self._query_tables.setdefault(dataset, table)
        return table

    def _rng(self) -> RandomSource:
        """This thread's secure random source (one per thread: the source is not thread-safe)."""
        rng: RandomSource | None = getattr(self._rngs, "rng", None)
        if rng is None:
            from safesynth.gateway.dp.rng import RandomSource

            rng = self._rngs.rng = RandomSource.secure()
        return rng

    def query(
        self,
        principal: Principal,
        dataset: str,
        body: wire.QueryRequest,
        *,
        idempotency_key: str | None = None,
    ) -> wire.QueryResult:
        """Answer a DP statistic; an identical earlier query's answer is returned at no cost."""
        return wire.QueryResult.model_validate_json(
            self.query_text(principal, dataset, body, idempotency_key=idempotency_key)
        )

    def query_text(
        self,
        principal: Principal,
        dataset: str,
        body: wire.QueryRequest,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """:meth:`query`'s answer as compact JSON text (what the HTTP layer sends).

        Everything that can refuse the request (authorization, planning, the data's availability)
        runs before the budget is charged: a refused request spends nothing. The answer is
        serialized once: the same text is the answer cache's row, the idempotency record and the
        response body.
        """
        from safesynth.gateway.service.queries import plan_query, run_query

        principal.require(A, N)
        record = self._visible_dataset(principal, dataset)
        plan = plan_query(record.schema, body)
        delta = float(body.delta or 0.0)
        if delta > record.delta_total:
            raise InvalidRequest(f"delta={delta} is above the dataset's delta_total={record.delta_total}")
        dumped = body.model_dump(mode="json")
        semantic = {name: value for name, value in dumped.items() if name != "purpose"}
        key = hashlib.sha256(json.dumps(semantic, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        fingerprint = "" if idempotency_key is None else request_hash("query", dataset, dumped)

        def action() -> str:
            with self._query_lock(f"{dataset}:{key}"):
                row = self.db.one(
                    "SELECT answer FROM query_cache WHERE dataset = ? AND key = ?", (dataset, key)
                )
                if row is not None:
                    return _mark_cached(str(row["answer"]))
                table = self._query_table(record.id)  # the data must be readable before anything is spent
                receipt = self.admission.admit(
                    dataset=record.id,
                    epsilon_total=record.epsilon_total,
                    delta_total=record.delta_total,
                    events=plan.events,
                    delta=delta,
                    actor=principal.actor,
                    details={
                        "requester": principal.actor,
                        "purpose": body.purpose,
                        "request_kind": "query",
                        "query_kind": body.kind,
                        "parameters": ledger_safe(semantic),
                        "mechanism": plan.mechanism,
                        "query_key": key,
                    },
                )
                answer = run_query(plan, record.schema, table, self._rng())
                result = wire.QueryResult(
                    dataset=record.id,
                    kind=body.kind,
                    column=body.column,
                    value=answer.value,
                    histogram=None
                    if answer.histogram is None
                    else tuple(
                        wire.HistogramBin(label=label[:512], lower=lo, upper=hi, count=count)
                        for label, lo, hi, count in answer.histogram
                    ),
                    quantiles=None
                    if answer.quantiles is None
                    else tuple(wire.QuantileValue(q=q, value=v) for q, v in answer.quantiles),
                    epsilon=receipt.epsilon,
                    delta=receipt.delta,
                    mechanism="; ".join((plan.mechanism, *answer.notes))[:200],
                    cached=False,
                    spend_seq=receipt.seq,
                    events=tuple(_json_ready(e.to_json()) for e in plan.events),
                )
                text = _compact(result.model_dump(mode="json"))
                self.db.execute(
                    "INSERT INTO query_cache (dataset, key, answer, created_at) VALUES (?, ?, ?, ?)",
                    (dataset, key, text, datetime.now(UTC).isoformat()),
                )
                return text

        text, replayed = self.idempotency.run_text(principal.token_id, idempotency_key, fingerprint, action)
        return _mark_cached(text) if replayed else text

    # =============================================================================== ledger
    def require_ledger_reader(self, principal: Principal) -> None:
        """Ledger endpoints: admin and auditor."""
        principal.require(A, U)

    def ledger_entries(
        self, principal: Principal, *, start: int = 0, limit: int = 100, kind: str | None = None
    ) -> wire.LedgerEntries:
        """A page of entries."""
        self.require_ledger_reader(principal)
        if start < 0 or not 1 <= limit <= 1000:
            raise InvalidRequest("start must be >= 0 and limit in 1..1000")
        size = self.ledger.size
        entries = self.ledger.entries(start_seq=start, kinds=[kind] if kind else None, limit=limit + 1)
        page = entries[:limit]
        next_seq = entries[limit].seq if len(entries) > limit else None
        return wire.LedgerEntries(entries=tuple(_entry_wire(e) for e in page), size=size, next_seq=next_seq)

    def ledger_entry(self, principal: Principal, seq: int) -> wire.LedgerEntry:
        """One entry."""
        self.require_ledger_reader(principal)
        if not 0 <= seq < self.ledger.size:
            raise NotFound(f"no ledger entry {seq}")
        return _entry_wire(self.ledger.get(seq))

    def checkpoint(self, principal: Principal) -> wire.Checkpoint:
        """The latest signed checkpoint."""
        self.require_ledger_reader(principal)
        return _checkpoint_wire(self.ledger.latest_checkpoint())

    def inclusion_proof(self, principal: Principal, seq: int, tree_size: int | None) -> wire.InclusionProof:
        """RFC 6962 inclusion proof of an entry."""
        self.require_ledger_reader(principal)
        size = self.ledger.size
        if not 0 <= seq < size or (tree_size is not None and not seq < tree_size <= size):
            raise NotFound(f"no entry {seq} in a tree of size {tree_size or size}")
        proof = self.ledger.inclusion_proof(seq, tree_size=tree_size)
        return _inclusion_wire(proof)

    def consistency_proof(self, principal: Principal, old: int, new: int) -> wire.ConsistencyProof:
        """RFC 6962 consistency proof between two sizes."""
        self.require_ledger_reader(principal)
        if not 0 <= old <= new <= self.ledger.size:
            raise InvalidRequest("need 0 <= old <= new <= the ledger's size")
        proof = self.ledger.consistency_proof(old, new)
        return wire.ConsistencyProof(old_size=old, new_size=new, proof=tuple(_b64(h) for h in proof.hashes))

    def export_ledger(self, principal: Principal) -> bytes:
        """The export bundle as a zip archive."""
        import io
        import tempfile
        import zipfile

        self.require_ledger_reader(principal)
        with tempfile.TemporaryDirectory(prefix="safesynth-export-") as tmp:
            out = Path(tmp) / "export"
            self.ledger.export(out)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(out.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(out).as_posix())
            return buffer.getvalue()

    def public_key_text(self) -> str:
        """The ledger's verifier key (``name+keyid+base64``, the C2SP note format), public."""
        return self.signer.verifier().vkey() + "\n"


# =================================================================================== wire helpers
def _compact(answer: Mapping[str, Any]) -> str:
    """An answer's JSON text as sent: compact, finite numbers only."""
    return json.dumps(answer, allow_nan=False, separators=(",", ":"))


def _mark_cached(text: str) -> str:
    """A stored answer's text with ``cached`` set (a repeat or a replay charged nothing now)."""
    answer = json.loads(text)
    if answer.get("cached") is True:
        return text
    answer["cached"] = True
    return _compact(answer)


def _json_ready(value: Any) -> Any:
    """Plain JSON (floats kept; NaN/inf become None; numpy scalars unwrapped)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item"):
        return _json_ready(value.item())
    return str(value)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(bytes(value)).decode("ascii")


def _entry_wire(entry: Any) -> wire.LedgerEntry:
    from safesynth.ledger.entry import entry_leaf_hash

    return wire.LedgerEntry(
        seq=int(entry.seq),
        kind=str(entry.kind),
        payload=json.loads(json.dumps(dict(entry.payload))),
        timestamp=_timestamp(entry.timestamp),
        actor=str(entry.actor)[:200],
        entry_hash=_b64(entry_leaf_hash(entry.canonical_bytes)),
    )


def _checkpoint_wire(signed: Any) -> wire.Checkpoint:
    """A signed checkpoint; hashes in base64 as in the C2SP checkpoint text."""
    return wire.Checkpoint(
        origin=str(signed.checkpoint.origin)[:200],
        size=int(signed.size),
        root_hash=_b64(signed.root_hash),
        note=str(signed.text)[:20000],
    )


def _inclusion_wire(proof: Any) -> wire.InclusionProof:
    from safesynth.ledger.entry import entry_leaf_hash

    return wire.InclusionProof(
        seq=int(proof.entry.seq),
        tree_size=int(proof.tree_size),
        leaf_hash=_b64(entry_leaf_hash(proof.entry.canonical_bytes)),
        proof=tuple(_b64(h) for h in proof.hashes),
        root_hash=_b64(proof.checkpoint.root_hash),
        checkpoint=_checkpoint_wire(proof.checkpoint),
    )


def _audit_summary(record: ReleaseRecord) -> wire.AuditSummary:
    audit = dict(record.audit or {})
    attacks, lower, metrics = membership_wire(audit)
    return wire.AuditSummary(
        release_id=record.id,
        verdict=(record.audit_verdict or "unknown")[:200],
        attacks=attacks,
        empirical_epsilon_lower_bound=lower,
        accountant_epsilon=record.epsilon,
        accountant_delta=record.delta,
        metrics=metrics,
        audit_seq=record.audit_seq,
        design_commitment=str(audit.get("design_commitment", ""))[:200] or None,
    )


_QUALITY_KEYS = (
    "tvd_1way_mean",
    "tvd_2way_mean",
    "tvd_2way_max",
    "tvd_3way_mean",
    "correlation_diff",
    "association_diff",
    "discriminator_auc",
    "runtime_seconds",
)


def _quality_summary(record: ReleaseRecord) -> wire.QualitySummary:
    quality = dict(record.quality or {})
    metrics = {key: num(quality.get(key)) for key in _QUALITY_KEYS if key in quality}
    for item in quality.get("utility", []) or []:
        if isinstance(item, Mapping):
            name = f"utility:{item.get('model')}:{item.get('trained_on')}:{item.get('metric')}"[:200]
            metrics[name] = num(item.get("value"))
    per_column = quality.get("tvd_1way", {})
    columns = {
        str(name)[:128]: {"tvd_1way": num(value)}
        for name, value in (per_column.items() if isinstance(per_column, Mapping) else [])
    }
    notes = tuple(str(n)[:4000] for n in (quality.get("notes") or [])[:64])
    return wire.QualitySummary(release_id=record.id, metrics=metrics, columns=columns, notes=notes)
