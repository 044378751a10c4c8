"""The wire models: every JSON body the gateway accepts or returns, shared by the SDK and the gateway.

All models are frozen pydantic models that refuse unknown fields (``extra="forbid"``), use strict
scalar types (a string is never coerced to a number, a float never to an int, a number never to a
bool) and bound every size. The one exception is :class:`Problem`, which keeps RFC 9457 extension
members (``extra="allow"``) so that a client never fails while reading an error.

Privacy numbers travel as JSON floats. The ledger keeps them as decimal strings; the gateway converts
at its edge.

About ``epsilon`` in a request: it is the TARGET the engine or mechanism plans for. The privacy cost
actually charged is always computed by the gateway's accountant from the planned privacy events, and
reported back (``PlanResponse.epsilon``, ``Job.epsilon``, ``QueryResult.epsilon``, ...). It never
exceeds the target, but it can be below it.

Notes for the gateway (FastAPI validates request bodies in Python mode, from parsed JSON): the models
only use types that validate the same way from JSON and from Python (strict scalars, lax datetimes and
tuples), so ``Model.model_validate(json.loads(body))`` and ``Model.model_validate_json(body)`` agree.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.functional_validators import AfterValidator, BeforeValidator

from safesynth.sdk.schema import DatasetSchema

__all__ = [
    "CANARY_AUDIT",
    "DATASET_CANARY_AUDITS",
    "DATASET_CANARY_AUDIT_PLAN",
    "DATASET_EXTERNAL_AUDITS",
    "ENGINES",
    "EXTERNAL_AUDIT_SCOPE",
    "JOB_STATES",
    "QUERY_KINDS",
    "ROLES",
    "AttackResult",
    "AuditSummary",
    "Budget",
    "BudgetHistoryItem",
    "BudgetSpec",
    "CanaryAuditRequest",
    "CanaryAuditResult",
    "Checkpoint",
    "ConsistencyProof",
    "DatasetCreate",
    "DatasetId",
    "DatasetInfo",
    "DatasetList",
    "Delta",
    "EngineName",
    "Epsilon",
    "ExternalAudit",
    "ExternalAuditRequest",
    "Filter",
    "FilterOp",
    "HistogramBin",
    "InclusionProof",
    "Job",
    "JobError",
    "JobList",
    "JobState",
    "LedgerEntries",
    "LedgerEntry",
    "PlanResponse",
    "Problem",
    "QualitySummary",
    "QuantileValue",
    "QueryKind",
    "QueryRequest",
    "QueryResult",
    "Release",
    "ReleaseFormat",
    "ReleaseList",
    "Role",
    "ServiceInfo",
    "SynthesisRequest",
    "TokenCreate",
    "TokenCreated",
    "TokenInfo",
    "TokenList",
    "TprAtFpr",
    "WireModel",
]

# --------------------------------------------------------------------------------------------------
# Limits (also the gateway's validation limits: one place to change them)
# --------------------------------------------------------------------------------------------------

#: Largest epsilon one request may target, and the largest total budget of a dataset.
MAX_REQUEST_EPSILON = 100.0
MAX_BUDGET_EPSILON = 1000.0
#: Delta is a probability of failure: must be well below 1 to mean anything.
MAX_DELTA = 0.1
#: Largest number of synthetic rows one request may ask for.
MAX_ROWS = 10_000_000
MAX_PURPOSE = 500
MAX_OPTIONS = 64
MAX_FILTERS = 16
MAX_LIST = 10_000


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _to_float(value: Any) -> Any:
    """Strict float: accept int and float, refuse str and bool (JSON and Python agree)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return float(value)


#: A finite JSON number; never a string, never a bool.
Number = Annotated[float, BeforeValidator(_to_float), AfterValidator(_finite)]
#: A privacy-loss target or cost, epsilon > 0.
Epsilon = Annotated[Number, Field(gt=0, le=MAX_REQUEST_EPSILON)]
#: Total epsilon of a dataset's budget.
BudgetEpsilon = Annotated[Number, Field(gt=0, le=MAX_BUDGET_EPSILON)]
#: A delta (probability), 0 <= delta <= MAX_DELTA.
Delta = Annotated[Number, Field(ge=0, le=MAX_DELTA)]
#: A non-negative amount of privacy loss (spent / remaining); may be 0.
Amount = Annotated[Number, Field(ge=0)]
Probability = Annotated[Number, Field(ge=0, le=1)]

_Ident = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
#: A dataset id: letters, digits, ``.``, ``_``, ``-``; safe in a URL path; chosen at registration.
DatasetId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_Ident)]
#: A job, token or other server-made id.
ObjectId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_Ident)]
#: A lowercase hex SHA-256 digest (releases are content-addressed by it).
Sha256 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
Seq = Annotated[StrictInt, Field(ge=0)]
ShortText = Annotated[StrictStr, Field(max_length=200)]
Text = Annotated[StrictStr, Field(max_length=4000)]
ColumnName = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Purpose = Annotated[StrictStr, Field(min_length=1, max_length=MAX_PURPOSE)]
JsonObject = Annotated[dict[str, JsonValue], Field(max_length=MAX_OPTIONS)]

EngineName = Literal["tabular", "text"]
ENGINES: tuple[str, ...] = ("tabular", "text")
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
Role = Literal["admin", "analyst", "auditor"]
ROLES: tuple[str, ...] = ("admin", "analyst", "auditor")
QueryKind = Literal["count", "sum", "mean", "histogram", "quantiles"]
QUERY_KINDS: tuple[str, ...] = ("count", "sum", "mean", "histogram", "quantiles")
FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"]
ReleaseFormat = Literal["csv", "parquet", "json"]


class WireModel(BaseModel):
    """Base of every wire model: frozen, unknown fields refused, strict scalars."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, validate_default=True)


# --------------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------------


class ServiceInfo(WireModel):
    """``GET /v1/info``: what the gateway is, and the key that signs its ledger (public)."""

    version: ShortText
    ledger_origin: ShortText
    ledger_key_id: ShortText | None = None
    #: The Ed25519 public key of the ledger, base64; lets anyone verify an export offline.
    ledger_public_key: Annotated[StrictStr, Field(max_length=1000)] | None = None
    engines: tuple[ShortText, ...] = Field(default=(), max_length=64)


# --------------------------------------------------------------------------------------------------
# Datasets and budgets
# --------------------------------------------------------------------------------------------------


class BudgetSpec(WireModel):
    """A dataset's total privacy budget. Floats on the wire; the ledger records decimal strings."""

    epsilon_total: BudgetEpsilon
    delta_total: Delta = 1e-6


class DatasetCreate(WireModel):
    """``POST /v1/datasets``: register a dataset (admin only).

    The data comes either from a server-side ``path`` (under a root the gateway allows) or, when
    ``path`` is None, from a file uploaded in the same multipart request (part ``file``, with this
    model as JSON in part ``metadata``). ``format`` is inferred from the file name when None.
    ``holdout_fraction`` of the rows is kept aside at registration for the release audits.
    """

    id: DatasetId
    dataset_schema: DatasetSchema
    budget: BudgetSpec
    description: Text = ""
    path: Annotated[StrictStr, Field(min_length=1, max_length=4096)] | None = None
    format: Literal["csv", "parquet"] | None = None
    holdout_fraction: Annotated[Number, Field(ge=0.0, le=0.5)] = 0.2


class DatasetInfo(WireModel):
    """A registered dataset as analysts see it: public facts only, never a private value.

    ``row_count_bucket`` is a coarse range such as ``"1000-9999"``, not the exact count.
    """

    id: DatasetId
    dataset_schema: DatasetSchema
    budget: BudgetSpec
    description: Text = ""
    row_count_bucket: ShortText
    registered_at: datetime
    registered_seq: Seq | None = None
    epsilon_spent: Amount = 0.0
    delta_spent: Amount = 0.0


class DatasetList(WireModel):
    """``GET /v1/datasets``: the datasets the caller may see."""

    datasets: tuple[DatasetInfo, ...] = Field(default=(), max_length=MAX_LIST)


class BudgetHistoryItem(WireModel):
    """One budget-relevant ledger entry (a spend or a refusal) of a dataset."""

    seq: Seq
    kind: Literal["spend", "refusal"]
    timestamp: datetime
    actor: ShortText
    purpose: Annotated[StrictStr, Field(max_length=MAX_PURPOSE)] = ""
    #: "synthesis" or "query", and the engine or query kind.
    request_kind: ShortText = ""
    detail: ShortText = ""
    epsilon: Amount
    delta: Amount
    #: Cumulative epsilon spent after this entry (unchanged by a refusal).
    epsilon_spent_after: Amount | None = None
    job_id: ObjectId | None = None


class Budget(WireModel):
    """``GET /v1/datasets/{id}/budget``: total, spent and remaining, and the history.

    ``epsilon_spent`` is the accountant's composed epsilon of all spends at ``delta_spent`` (under the
    filter's ``rule``), not necessarily the sum of the per-request epsilons.
    """

    dataset: DatasetId
    epsilon_total: BudgetEpsilon
    delta_total: Delta
    epsilon_spent: Amount
    delta_spent: Amount
    epsilon_remaining: Amount
    delta_remaining: Amount
    rule: ShortText = ""
    history: tuple[BudgetHistoryItem, ...] = Field(default=(), max_length=100_000)


# --------------------------------------------------------------------------------------------------
# Synthesis, plans, jobs, releases
# --------------------------------------------------------------------------------------------------


class SynthesisRequest(WireModel):
    """``POST /v1/datasets/{id}/syntheses`` (and ``.../syntheses/plan``): ask for a synthetic release.

    ``epsilon`` is the TARGET the engine plans for; the cost charged is computed by the gateway's
    accountant from the engine's privacy events (never above the target). ``rows`` None means "a
    DP estimate of the original size". ``delta`` None means the gateway's default for the dataset.
    ``purpose`` is recorded in the ledger. ``options`` are engine-specific (JSON, bounded).
    """

    engine: EngineName = "tabular"
    rows: Annotated[StrictInt, Field(ge=1, le=MAX_ROWS)] | None = None
    epsilon: Epsilon
    delta: Delta | None = None
    purpose: Purpose
    options: JsonObject = Field(default_factory=dict)


class PlanResponse(WireModel):
    """The plan of a request, without spending: events, the accountant's cost, and admission.

    ``events`` are the DP core's events as canonical JSON objects; ``epsilon``/``delta``/``method`` are
    the accountant's composition of them; ``admitted`` says whether the budget would admit them now
    (None when the caller may not see the budget) and ``epsilon_remaining`` what would remain.
    """

    dataset: DatasetId
    engine: ShortText
    rows: Annotated[StrictInt, Field(ge=0)] | None = None
    events: tuple[JsonObject, ...] = Field(default=(), max_length=MAX_LIST)
    epsilon: Amount
    delta: Amount
    method: ShortText
    transcript: tuple[JsonObject, ...] = Field(default=(), max_length=MAX_LIST)
    options: JsonObject = Field(default_factory=dict)
    admitted: StrictBool | None = None
    epsilon_remaining: Amount | None = None
    delta_remaining: Amount | None = None


class JobError(WireModel):
    """Why a job failed: a stable code and a message (never a private value)."""

    code: ShortText
    message: Text = ""


class Job(WireModel):
    """``GET /v1/jobs/{id}``: a synthesis job's state. ``progress`` is 0..1 within the whole job."""

    id: ObjectId
    dataset: DatasetId
    kind: ShortText = "synthesis"
    engine: ShortText = ""
    state: JobState
    stage: ShortText = ""
    progress: Probability = 0.0
    eta_seconds: Amount | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The ledger seq of the spend (set once admitted; a spend is never refunded).
    spend_seq: Seq | None = None
    epsilon: Amount | None = None
    delta: Amount | None = None
    release_id: Sha256 | None = None
    error: JobError | None = None
    #: Seconds spent in each stage left so far, in the order first entered: the gateway's own
    #: (``planning``, ``admission``, ``queued``, ``starting``, ``loading``, ``releasing``, ``auditing``)
    #: and, from ``engine`` on, the engine's (the tabular engine: ``measure``, ``sample``, ``text``).
    #: Shown to admin and auditor tokens only (an engine's time grows with the private table).
    stage_seconds: dict[ShortText, Amount] = Field(default_factory=dict, max_length=32)

    @property
    def done(self) -> bool:
        """True when the job will not change any more."""
        return self.state in ("succeeded", "failed", "cancelled")


class JobList(WireModel):
    """``GET /v1/jobs``: the caller's jobs, newest first."""

    jobs: tuple[Job, ...] = Field(default=(), max_length=MAX_LIST)


class Release(WireModel):
    """``GET /v1/releases/{id}``: a stored synthetic release, content-addressed by its sha256."""

    id: Sha256
    sha256: Sha256
    dataset: DatasetId
    job_id: ObjectId | None = None
    engine: ShortText = ""
    rows: Annotated[StrictInt, Field(ge=0)]
    columns: tuple[ColumnName, ...] = Field(max_length=1000)
    spend_seq: Seq
    release_seq: Seq | None = None
    epsilon: Amount
    delta: Amount
    created: datetime
    formats: tuple[ReleaseFormat, ...] = ("csv", "parquet", "json")
    audit_verdict: ShortText | None = None

    @model_validator(mode="after")
    def _content_addressed(self) -> Self:
        if self.id != self.sha256:
            raise ValueError("a release id is its sha256")
        return self


class ReleaseList(WireModel):
    """``GET /v1/releases``: releases the caller may see."""

    releases: tuple[Release, ...] = Field(default=(), max_length=MAX_LIST)


class TprAtFpr(WireModel):
    """One point of an attack's ROC curve at a low false-positive rate."""

    fpr: Probability
    tpr: Probability
    tpr_ci_low: Probability | None = None
    tpr_ci_high: Probability | None = None


class AttackResult(WireModel):
    """An attack's aggregate figures (no per-record scores)."""

    name: ShortText
    auc: Probability
    auc_ci_low: Probability | None = None
    auc_ci_high: Probability | None = None
    tpr_at_fpr: tuple[TprAtFpr, ...] = Field(default=(), max_length=32)
    #: Empirical epsilon lower bound implied by this attack (None when undefined).
    epsilon_lower_bound: Amount | None = None


class AuditSummary(WireModel):
    """``GET /v1/releases/{id}/audit``: the release audit's aggregates only.

    ``empirical_epsilon_lower_bound`` is what the attacks show at least; ``accountant_epsilon`` is what
    the gateway charged. A lower bound above the accountant's epsilon means something is broken.
    """

    release_id: Sha256
    verdict: ShortText
    attacks: tuple[AttackResult, ...] = Field(default=(), max_length=64)
    empirical_epsilon_lower_bound: Amount | None = None
    accountant_epsilon: Amount | None = None
    accountant_delta: Amount | None = None
    #: Other aggregates (exact-match share, distance-to-closest-record shares, ...).
    metrics: Annotated[dict[ShortText, Number | None], Field(max_length=256)] = Field(default_factory=dict)
    audit_seq: Seq | None = None
    design_commitment: ShortText | None = None


class QualitySummary(WireModel):
    """``GET /v1/releases/{id}/quality``: utility of the release (marginal TVD, correlation, TSTR...)."""

    release_id: Sha256
    metrics: Annotated[dict[ShortText, Number | None], Field(max_length=256)] = Field(default_factory=dict)
    columns: Annotated[dict[ColumnName, dict[ShortText, Number | None]], Field(max_length=1000)] = Field(
        default_factory=dict
    )
    notes: tuple[Text, ...] = Field(default=(), max_length=64)


# --------------------------------------------------------------------------------------------------
# DP statistics
# --------------------------------------------------------------------------------------------------

_Scalar = Annotated[StrictStr, Field(max_length=512)] | StrictBool | StrictInt | Number


class Filter(WireModel):
    """A simple row filter ``column op value``; ``in``/``not_in`` take a list."""

    column: ColumnName
    op: FilterOp
    value: _Scalar | tuple[_Scalar, ...]

    @model_validator(mode="after")
    def _list_ops(self) -> Self:
        is_list = isinstance(self.value, tuple)
        if (self.op in ("in", "not_in")) != is_list:
            raise ValueError("'in' and 'not_in' take a list value; the other operators a single value")
        if is_list and len(self.value) > 1000:  # type: ignore[arg-type]
            raise ValueError("at most 1000 values in a list filter")
        return self


class QueryRequest(WireModel):
    """``POST /v1/datasets/{id}/queries``: one DP statistic over a column.

    ``epsilon`` is the TARGET the mechanism is calibrated for; the accountant computes the charge.
    ``bounds`` are public clamping bounds (lower, upper) for sum/mean/quantiles; when None the
    schema's bounds are used, or DP bounds are estimated at a cost. ``bins`` are histogram edges for a
    numeric column (a categorical column uses its public categories). Identical repeated queries
    return the cached answer at no cost.
    """

    kind: QueryKind
    column: ColumnName | None = None
    filters: tuple[Filter, ...] = Field(default=(), max_length=MAX_FILTERS)
    bounds: tuple[Number, Number] | None = None
    bins: tuple[Number, ...] | None = Field(default=None, max_length=1001)
    quantiles: tuple[Probability, ...] | None = Field(default=None, max_length=99)
    epsilon: Epsilon
    delta: Delta | None = None
    purpose: Purpose

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind != "count" and self.column is None:
            raise ValueError(f"a {self.kind} query needs a column")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds must be (lower, upper) with lower < upper")
        if self.quantiles is not None and self.kind != "quantiles":
            raise ValueError("quantiles apply to kind 'quantiles' only")
        if self.kind == "quantiles" and not self.quantiles:
            raise ValueError("a quantiles query needs a non-empty list of quantiles")
        if self.bins is not None:
            if self.kind != "histogram":
                raise ValueError("bins apply to kind 'histogram' only")
            if len(self.bins) < 2 or any(a >= b for a, b in zip(self.bins, self.bins[1:], strict=False)):
                raise ValueError("bins must be at least two strictly increasing edges")
        return self


class HistogramBin(WireModel):
    """One noisy histogram bar: a category label or a numeric interval ``[lower, upper)``."""

    label: Annotated[StrictStr, Field(max_length=512)]
    lower: Number | None = None
    upper: Number | None = None
    count: Number


class QuantileValue(WireModel):
    """One DP quantile estimate."""

    q: Probability
    value: Number


class QueryResult(WireModel):
    """The DP answer: ``value`` (count/sum/mean), ``histogram`` or ``quantiles``, and what it cost."""

    dataset: DatasetId
    kind: QueryKind
    column: ColumnName | None = None
    value: Number | None = None
    histogram: tuple[HistogramBin, ...] | None = Field(default=None, max_length=MAX_LIST)
    quantiles: tuple[QuantileValue, ...] | None = Field(default=None, max_length=99)
    epsilon: Amount
    delta: Amount
    mechanism: ShortText = ""
    #: True when this is the cached answer of an identical earlier query (charged nothing now).
    cached: StrictBool = False
    spend_seq: Seq | None = None
    events: tuple[JsonObject, ...] = Field(default=(), max_length=MAX_LIST)


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


class TokenCreate(WireModel):
    """``POST /v1/tokens`` (admin): a bearer token for a role; analysts get per-dataset grants."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    role: Role
    datasets: tuple[DatasetId, ...] = Field(default=(), max_length=MAX_LIST)
    expires_at: datetime | None = None


class TokenInfo(WireModel):
    """A token as listed: never the secret (only its hash is stored)."""

    id: ObjectId
    name: ShortText
    role: Role
    datasets: tuple[DatasetId, ...] = Field(default=(), max_length=MAX_LIST)
    created_at: datetime
    expires_at: datetime | None = None
    revoked: StrictBool = False
    revoked_at: datetime | None = None


class TokenCreated(WireModel):
    """The answer to a token creation: the secret is shown this one time."""

    info: TokenInfo
    token: Annotated[StrictStr, Field(min_length=16, max_length=512, repr=False)]


class TokenList(WireModel):
    """``GET /v1/tokens``."""

    tokens: tuple[TokenInfo, ...] = Field(default=(), max_length=MAX_LIST)


# --------------------------------------------------------------------------------------------------
# Ledger views
# --------------------------------------------------------------------------------------------------


class LedgerEntry(WireModel):
    """One ledger entry (payload as recorded: privacy numbers as decimal strings)."""

    seq: Seq
    kind: ShortText
    payload: Annotated[dict[str, JsonValue], Field(max_length=1000)]
    timestamp: datetime
    actor: ShortText
    entry_hash: Annotated[StrictStr, Field(max_length=200)] | None = None


class LedgerEntries(WireModel):
    """``GET /v1/ledger/entries``: a page of entries; ``next_seq`` is None on the last page."""

    entries: tuple[LedgerEntry, ...] = Field(default=(), max_length=MAX_LIST)
    size: Annotated[StrictInt, Field(ge=0)]
    next_seq: Seq | None = None


class Checkpoint(WireModel):
    """A signed tree head: origin, size and root hash, and the signed note text (C2SP format)."""

    origin: ShortText
    size: Annotated[StrictInt, Field(ge=0)]
    root_hash: Annotated[StrictStr, Field(max_length=200)]
    note: Annotated[StrictStr, Field(max_length=20_000)]


class InclusionProof(WireModel):
    """An RFC 6962 inclusion proof of entry ``seq`` in the tree of ``tree_size`` (hashes as text)."""

    seq: Seq
    tree_size: Annotated[StrictInt, Field(ge=1)]
    leaf_hash: Annotated[StrictStr, Field(max_length=200)]
    proof: tuple[Annotated[StrictStr, Field(max_length=200)], ...] = Field(default=(), max_length=64)
    root_hash: Annotated[StrictStr, Field(max_length=200)]
    checkpoint: Checkpoint | None = None


class ConsistencyProof(WireModel):
    """An RFC 6962 consistency proof between two tree sizes."""

    old_size: Annotated[StrictInt, Field(ge=0)]
    new_size: Annotated[StrictInt, Field(ge=0)]
    proof: tuple[Annotated[StrictStr, Field(max_length=200)], ...] = Field(default=(), max_length=64)


# --------------------------------------------------------------------------------------------------
# Audits of external tables and canary audits
# --------------------------------------------------------------------------------------------------

#: ``POST`` an ExternalAuditRequest (JSON with a server-side ``path``, or multipart ``metadata`` + ``file``)
#: -> ExternalAudit. Admin and auditor only; recorded in the ledger (``audit/v1``, scope ``external``).
DATASET_EXTERNAL_AUDITS = "/v1/datasets/{dataset}/audits"
#: ``POST`` a CanaryAuditRequest -> PlanResponse (spends nothing).
DATASET_CANARY_AUDIT_PLAN = "/v1/datasets/{dataset}/canary-audits/plan"
#: ``POST`` a CanaryAuditRequest -> 202 Job (kind ``canary-audit``); charged like a synthesis.
DATASET_CANARY_AUDITS = "/v1/datasets/{dataset}/canary-audits"
#: ``GET`` -> CanaryAuditResult once the job has succeeded (404 before).
CANARY_AUDIT = "/v1/canary-audits/{job}"

#: The label of an external table's audit (its figures' meaning differs from a release audit's).
EXTERNAL_AUDIT_SCOPE = "external-table/v1"


class ExternalAuditRequest(WireModel):
    """Audit a table made by another tool against a registered dataset (admin, auditor).

    The table is uploaded (multipart ``file`` with this model as JSON in ``metadata``) or read from a
    server-side ``path`` (admin only, under the gateway's allowed roots). ``purpose`` is recorded in the
    ledger with the caller. ``claimed_epsilon``/``claimed_delta``: the external tool's own DP claim, if
    any; the audit reports whether its lower bound refutes it (valid only under the stated assumption).
    """

    purpose: Purpose
    path: Annotated[StrictStr, Field(min_length=1, max_length=4096)] | None = None
    format: Literal["csv", "parquet"] | None = None
    claimed_epsilon: Annotated[Number, Field(ge=0, le=MAX_BUDGET_EPSILON)] | None = None
    claimed_delta: Delta = 0.0


class ExternalAudit(WireModel):
    """An external table's audit: the same aggregates as a release audit, labelled with their meaning.

    ``audit.release_id`` is the table's SHA-256. ``verdict`` is never PASS: without the dataset's audit
    design a "no signal" result is INCONCLUSIVE (``caveats`` says why); FAIL means verbatim copies
    beyond the natural duplicate rate, or a dependence on the gateway's private training split.
    """

    scope: Literal["external-table/v1"] = "external-table/v1"
    dataset: DatasetId
    table_sha256: Sha256
    rows: Annotated[StrictInt, Field(ge=0)]
    verdict: ShortText
    rule: ShortText
    reason: Text
    audit: AuditSummary
    ignored_columns: tuple[ColumnName, ...] = Field(default=(), max_length=1000)
    meaningful: tuple[Text, ...] = Field(default=(), max_length=16)
    caveats: tuple[Text, ...] = Field(default=(), max_length=16)
    requested_by: ShortText
    audit_seq: Seq
    audits_left_today: Annotated[StrictInt, Field(ge=0)] | None = None


class CanaryAuditRequest(WireModel):
    """An audit-only engine run with canaries (admin, granted analyst): charged like a synthesis.

    The engine runs on the training rows plus canaries (synthetic, atypical records made from the public
    schema, each included with probability 1/2); its output is never released. The result is the
    canaries' one-run epsilon lower bound next to the accountant's epsilon. ``epsilon`` is the target
    the engine plans for (the charge); use the same engine, epsilon and options as the release you check.
    """

    engine: EngineName = "tabular"
    rows: Annotated[StrictInt, Field(ge=1, le=MAX_ROWS)] | None = None
    epsilon: Epsilon
    delta: Delta | None = None
    purpose: Purpose
    options: JsonObject = Field(default_factory=dict)
    n_canaries: Annotated[StrictInt, Field(ge=10, le=10_000)] = 500

    def synthesis(self) -> SynthesisRequest:
        """The synthesis request the canary run plans (same engine, target, rows and options)."""
        return SynthesisRequest(
            engine=self.engine,
            rows=self.rows,
            epsilon=self.epsilon,
            delta=self.delta,
            purpose=self.purpose,
            options=dict(self.options),
        )


class CanaryAuditResult(WireModel):
    """``GET /v1/canary-audits/{job}``: a canary audit's aggregates (no canary, score or coin)."""

    job_id: ObjectId
    dataset: DatasetId
    engine: ShortText
    verdict: ShortText
    rule: ShortText
    reason: Text
    n_canaries: Annotated[StrictInt, Field(ge=0)]
    n_included: Annotated[StrictInt, Field(ge=0)]
    auc: Probability
    tpr_at_fpr_1pct: Probability
    tpr_at_fpr_10pct: Probability
    empirical_epsilon_lower_bound: Amount
    confidence: Probability
    method: ShortText
    accountant_epsilon: Amount
    accountant_delta: Amount
    synthetic_rows: Annotated[StrictInt, Field(ge=0)]
    spend_seq: Seq
    design_seq: Seq
    audit_seq: Seq
    design_commitment: ShortText
    released: StrictBool = False
    runtime_seconds: Amount | None = None
    notes: tuple[Text, ...] = Field(default=(), max_length=64)


# --------------------------------------------------------------------------------------------------
# Errors (RFC 9457)
# --------------------------------------------------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem detail, ``application/problem+json``, with a stable ``code``.

    Extension members are allowed (RFC 9457 section 3.2), e.g. ``epsilon_remaining`` and
    ``delta_remaining`` with ``budget_exhausted``, ``errors`` with validation failures, or
    ``job_id``; the SDK reads them from ``model_extra``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Annotated[str, Field(max_length=2000)] = "about:blank"
    title: Annotated[str, Field(max_length=500)]
    status: Annotated[int, Field(ge=100, le=599)]
    code: Annotated[str, Field(max_length=100)]
    detail: Annotated[str, Field(max_length=10_000)] | None = None
    instance: Annotated[str, Field(max_length=2000)] | None = None
    epsilon_remaining: float | None = None
    delta_remaining: float | None = None
