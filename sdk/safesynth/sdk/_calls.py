"""Each API call as data (method, path, body, query, answer model), shared by Client and AsyncClient.

Building a call validates the arguments into wire models before anything is sent, so a bad
argument raises :class:`InvalidRequest` locally and never reaches the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from safesynth.sdk import routes
from safesynth.sdk.errors import InvalidRequest
from safesynth.sdk.models import (
    AuditSummary,
    Budget,
    BudgetSpec,
    Checkpoint,
    ConsistencyProof,
    DatasetCreate,
    DatasetInfo,
    DatasetList,
    Filter,
    InclusionProof,
    Job,
    JobList,
    LedgerEntries,
    PlanResponse,
    QualitySummary,
    QueryRequest,
    QueryResult,
    Release,
    ReleaseFormat,
    ReleaseList,
    ServiceInfo,
    SynthesisRequest,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    TokenList,
)
from safesynth.sdk.schema import DatasetSchema

__all__ = [
    "Call",
    "DataSource",
    "FilterArg",
    "Upload",
    "budget",
    "cancel_job",
    "checkpoint",
    "consistency",
    "create_token",
    "get_dataset",
    "get_job",
    "get_release",
    "info",
    "ledger_entries",
    "list_datasets",
    "list_jobs",
    "list_releases",
    "list_tokens",
    "plan_query",
    "plan_synthesis",
    "proof",
    "query",
    "register_dataset",
    "release_audit",
    "release_quality",
    "revoke_token",
    "submit_synthesis",
    "validated",
]

M = TypeVar("M", bound=BaseModel)

#: Local data to upload at registration: a file path, raw bytes, or a binary file object.
DataSource = str | Path | bytes | IO[bytes]
#: A query filter: a Filter, a ``(column, op, value)`` tuple, or a mapping with those keys.
FilterArg = Filter | tuple[str, str, Any] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart registration: name, bytes, content type."""

    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Call(Generic[M]):
    """One HTTP call: what to send and which wire model the answer is."""

    method: str
    path: str
    answer: type[M]
    body: BaseModel | None = None
    params: Mapping[str, str | int | float] = field(default_factory=dict)
    #: True for a POST that creates something: it gets an Idempotency-Key and may then be retried.
    creates: bool = False
    upload: Upload | None = None
    ok_statuses: tuple[int, ...] = (200, 201, 202)


def validated(model: type[M], **values: Any) -> M:
    """Build a wire model from arguments; a bad value raises InvalidRequest (nothing is sent)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__
        raise InvalidRequest(f"{model.__name__}: {where}: {first['msg']}") from exc


def _params(**values: Any) -> dict[str, str | int | float]:
    return {key: value for key, value in values.items() if value is not None}


def info() -> Call[ServiceInfo]:
    return Call("GET", routes.INFO, ServiceInfo)


# ---------------------------------------------------------------------------------------------- datasets


def list_datasets() -> Call[DatasetList]:
    return Call("GET", routes.DATASETS, DatasetList)


def get_dataset(dataset: str) -> Call[DatasetInfo]:
    return Call("GET", routes.path(routes.DATASET, dataset=dataset), DatasetInfo)


def budget(dataset: str) -> Call[Budget]:
    return Call("GET", routes.path(routes.DATASET_BUDGET, dataset=dataset), Budget)


def _read_source(data: DataSource) -> tuple[str, bytes]:
    if isinstance(data, bytes):
        return "data.csv", data
    if isinstance(data, str | Path):
        source = Path(data)
        try:
            return source.name, source.read_bytes()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {source}: {exc.strerror or exc}") from exc
    name = Path(str(getattr(data, "name", "data.csv"))).name
    return name, data.read()


def register_dataset(
    dataset: str,
    *,
    schema: DatasetSchema | Mapping[str, Any],
    epsilon_total: float,
    delta_total: float,
    data: DataSource | None,
    server_path: str | None,
    description: str,
    format: str | None,
    holdout_fraction: float,
) -> Call[DatasetInfo]:
    if (data is None) == (server_path is None):
        raise InvalidRequest("register a dataset from exactly one of data= (upload) or server_path=")
    upload = None
    if data is not None:
        filename, content = _read_source(data)
        if format is None:
            format = "parquet" if filename.lower().endswith((".parquet", ".pq")) else "csv"
        ctype = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
        upload = Upload(filename, content, ctype)
    body = validated(
        DatasetCreate,
        id=dataset,
        dataset_schema=schema,
        budget=validated(BudgetSpec, epsilon_total=epsilon_total, delta_total=delta_total),
        description=description,
        path=server_path,
        format=format,
        holdout_fraction=holdout_fraction,
    )
    return Call("POST", routes.DATASETS, DatasetInfo, body=body, creates=True, upload=upload)


# ---------------------------------------------------------------------------------------------- synthesis


def _synthesis_body(
    engine: str,
    rows: int | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    options: Mapping[str, Any] | None,
) -> SynthesisRequest:
    return validated(
        SynthesisRequest,
        engine=engine,
        rows=rows,
        epsilon=epsilon,
        delta=delta,
        purpose=purpose,
        options=dict(options or {}),
    )


def plan_synthesis(
    dataset: str,
    *,
    engine: str,
    rows: int | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    options: Mapping[str, Any] | None,
) -> Call[PlanResponse]:
    body = _synthesis_body(engine, rows, epsilon, delta, purpose, options)
    return Call("POST", routes.path(routes.DATASET_SYNTHESIS_PLAN, dataset=dataset), PlanResponse, body=body)


def submit_synthesis(
    dataset: str,
    *,
    engine: str,
    rows: int | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    options: Mapping[str, Any] | None,
) -> Call[Job]:
    body = _synthesis_body(engine, rows, epsilon, delta, purpose, options)
    return Call("POST", routes.path(routes.DATASET_SYNTHESES, dataset=dataset), Job, body=body, creates=True)


# ---------------------------------------------------------------------------------------------- queries


def _filter(item: FilterArg) -> Filter:
    if isinstance(item, Filter):
        return item
    if isinstance(item, tuple):
        if len(item) != 3:
            raise InvalidRequest("a filter tuple is (column, op, value)")
        column, op, value = item
        return validated(Filter, column=column, op=op, value=value)
    return validated(Filter, **dict(item))


def _query_body(
    kind: str,
    column: str | None,
    *,
    epsilon: float,
    purpose: str,
    delta: float | None,
    filters: Iterable[FilterArg],
    bounds: Sequence[float] | None,
    bins: Sequence[float] | None,
    quantiles: Sequence[float] | None,
) -> QueryRequest:
    return validated(
        QueryRequest,
        kind=kind,
        column=column,
        filters=tuple(_filter(f) for f in filters),
        bounds=None if bounds is None else tuple(bounds),
        bins=None if bins is None else tuple(bins),
        quantiles=None if quantiles is None else tuple(quantiles),
        epsilon=epsilon,
        delta=delta,
        purpose=purpose,
    )


def query(dataset: str, body: QueryRequest) -> Call[QueryResult]:
    # Identical repeated queries are answered from the gateway's cache, so a retry never spends twice.
    return Call(
        "POST", routes.path(routes.DATASET_QUERIES, dataset=dataset), QueryResult, body=body, creates=True
    )


def plan_query(dataset: str, body: QueryRequest) -> Call[PlanResponse]:
    return Call("POST", routes.path(routes.DATASET_QUERY_PLAN, dataset=dataset), PlanResponse, body=body)


query_body = _query_body


# ---------------------------------------------------------------------------------------------- jobs


def get_job(job: str, wait: float | None = None, until: str | None = None) -> Call[Job]:
    """``wait``: long poll, the gateway answers at the job's next change (``until="final"``: once the
    job is final) or after ``wait`` seconds."""
    return Call("GET", routes.path(routes.JOB, job=job), Job, params=_params(wait=wait, until=until))


def list_jobs(dataset: str | None = None, state: str | None = None) -> Call[JobList]:
    return Call("GET", routes.JOBS, JobList, params=_params(dataset=dataset, state=state))


def cancel_job(job: str) -> Call[Job]:
    return Call("POST", routes.path(routes.JOB_CANCEL, job=job), Job, creates=True)


# ---------------------------------------------------------------------------------------------- releases


def get_release(release: str) -> Call[Release]:
    return Call("GET", routes.path(routes.RELEASE, release=release), Release)


def list_releases(dataset: str | None = None) -> Call[ReleaseList]:
    return Call("GET", routes.RELEASES, ReleaseList, params=_params(dataset=dataset))


def release_audit(release: str) -> Call[AuditSummary]:
    return Call("GET", routes.path(routes.RELEASE_AUDIT, release=release), AuditSummary)


def release_quality(release: str) -> Call[QualitySummary]:
    return Call("GET", routes.path(routes.RELEASE_QUALITY, release=release), QualitySummary)


def release_data_path(release: str, format: ReleaseFormat) -> tuple[str, dict[str, str | int | float]]:
    """Path and query of a release download."""
    if format not in ("csv", "parquet", "json"):
        raise InvalidRequest(f"unknown release format {format!r}: csv, parquet or json")
    return routes.path(routes.RELEASE_DATA, release=release), {"format": format}


# ---------------------------------------------------------------------------------------------- ledger


def ledger_entries(start: int, limit: int | None, kind: str | None) -> Call[LedgerEntries]:
    if start < 0 or (limit is not None and limit < 1):
        raise InvalidRequest("start must be >= 0 and limit >= 1")
    return Call(
        "GET", routes.LEDGER_ENTRIES, LedgerEntries, params=_params(start=start, limit=limit, kind=kind)
    )


def checkpoint() -> Call[Checkpoint]:
    return Call("GET", routes.LEDGER_CHECKPOINT, Checkpoint)


def proof(seq: int, tree_size: int | None) -> Call[InclusionProof]:
    if seq < 0:
        raise InvalidRequest("seq must be >= 0")
    return Call(
        "GET", routes.path(routes.LEDGER_PROOF, seq=seq), InclusionProof, params=_params(tree_size=tree_size)
    )


def consistency(old: int, new: int) -> Call[ConsistencyProof]:
    if not 0 <= old <= new:
        raise InvalidRequest("need 0 <= old <= new")
    return Call("GET", routes.LEDGER_CONSISTENCY, ConsistencyProof, params={"old": old, "new": new})


# ---------------------------------------------------------------------------------------------- tokens


def create_token(
    name: str, role: str, datasets: Iterable[str], expires_at: datetime | None
) -> Call[TokenCreated]:
    body = validated(TokenCreate, name=name, role=role, datasets=tuple(datasets), expires_at=expires_at)
    return Call("POST", routes.TOKENS, TokenCreated, body=body, creates=True)


def list_tokens() -> Call[TokenList]:
    return Call("GET", routes.TOKENS, TokenList)


def revoke_token(token_id: str) -> Call[TokenInfo]:
    return Call("POST", routes.path(routes.TOKEN_REVOKE, token=token_id), TokenInfo, creates=True)


def metadata_json(body: BaseModel) -> str:
    """The JSON of a model for a multipart ``metadata`` part."""
    return json.dumps(body.model_dump(mode="json"))
