"""The engine interface: plan (events fixed before any private value is read), then run.

An engine turns a registered table into a synthetic release in two steps:

1. ``plan(schema, request) -> Plan``: from the *public* schema and the request alone (it takes no data
   argument), fix every DP mechanism the run will use and its noise, as privacy events. The plan's
   ``cost`` is ``dp.accountant.compose(plan.events, delta=request.delta)`` and never exceeds the
   requested epsilon. The service charges ``plan.events`` to the ledger before ``run`` is called.
2. ``run(plan, schema, data, ctx) -> EngineOutput``: run exactly the planned mechanisms, with the secure
   randomness in ``ctx.rng``, then post-process (model fitting, sampling, text writing: zero extra cost).

The transcript (``Plan.transcript``) lists each mechanism, the columns it touches, its noise and its
share of the budget: it is what the release report and the ledger show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from safesynth.gateway.dp.accountant import PrivacyCost
    from safesynth.gateway.dp.events import DpEvent
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.llm import Runner
    from safesynth.sdk.schema import DatasetSchema

__all__ = [
    "Cancelled",
    "CodedColumn",
    "DataMismatch",
    "Engine",
    "EngineContext",
    "EngineError",
    "EngineOutput",
    "InvalidRequest",
    "ModelUnavailable",
    "Plan",
    "PlanMismatch",
    "SynthesisRequest",
    "TranscriptItem",
    "UnknownEngine",
    "UnsupportedSchema",
    "calibrate_noise_multiplier",
    "frozen_mapping",
]


# --------------------------------------------------------------------------------------------- errors
class EngineError(Exception):
    """Base of the engines' errors; ``code`` is stable and goes on the wire."""

    code: str = "engine_error"

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class UnknownEngine(EngineError):
    """No engine of that name is registered."""

    code = "unknown_engine"


class InvalidRequest(EngineError):
    """The request cannot be planned (epsilon/delta out of range, bad option, too small a budget)."""

    code = "invalid_request"


class UnsupportedSchema(EngineError):
    """The schema holds something this engine cannot synthesize (e.g. an unknown column kind)."""

    code = "unsupported_schema"


class DataMismatch(EngineError):
    """The private table does not fit the schema (missing column, empty table, non-numeric values)."""

    code = "data_mismatch"


class PlanMismatch(EngineError):
    """``run`` was given a plan that this engine did not make for this schema."""

    code = "plan_mismatch"


class ModelUnavailable(EngineError):
    """The plan needs the language model (text columns) but the context carries no runner."""

    code = "model_unavailable"


class Cancelled(EngineError):
    """The job was cancelled (``ctx.cancelled()`` returned True)."""

    code = "cancelled"


# ------------------------------------------------------------------------------------------ values
def frozen_mapping(values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy of ``values`` (for the frozen dataclasses below)."""
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class SynthesisRequest:
    """What the analyst asks for.

    ``rows`` None means "as many rows as the original": a DP count, charged in the plan.
    ``epsilon`` is the target the plan spends (at most) at ``delta``. ``options`` are engine specific
    (see each engine's documentation); unknown options are refused by ``plan``.
    """

    engine: str
    epsilon: float
    delta: float
    rows: int | None = None
    options: Mapping[str, Any] = field(default_factory=frozen_mapping)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", frozen_mapping(self.options))
        if not (isinstance(self.epsilon, int | float) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidRequest(f"epsilon must be a finite number > 0, got {self.epsilon!r}")
        if not (isinstance(self.delta, int | float) and 0 <= self.delta < 1):
            raise InvalidRequest(f"delta must be in [0, 1), got {self.delta!r}")
        if self.rows is not None and (isinstance(self.rows, bool) or not isinstance(self.rows, int)):
            raise InvalidRequest(f"rows must be an integer or None, got {self.rows!r}")
        if self.rows is not None and not 1 <= self.rows <= 10_000_000:
            raise InvalidRequest(f"rows must be between 1 and 10,000,000, got {self.rows}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (privacy numbers as decimal strings)."""
        return {
            "engine": self.engine,
            "epsilon": repr(float(self.epsilon)),
            "delta": repr(float(self.delta)),
            "rows": self.rows,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class TranscriptItem:
    """One planned DP mechanism: what it measures, its noise and its share of the budget.

    ``step`` names the step uniquely within a plan (e.g. ``"schema.bounds:age"``,
    ``"marginal:age,income"``); ``mechanism`` is the mechanism's name (``"gaussian"``,
    ``"discrete_gaussian"``, ``"exponential"``, ``"partition_selection"``, ...); ``noise`` holds its
    parameters (``{"sigma": ...}``, ``{"epsilon": ...}``, ...); ``share`` is the fraction of the
    budget (in the engine's own unit, e.g. zCDP rho) that the step was given; ``event`` is the privacy
    event charged for it.
    """

    step: str
    mechanism: str
    columns: tuple[str, ...]
    noise: Mapping[str, float]
    share: float
    event: DpEvent
    count: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise", frozen_mapping(self.noise))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (noise numbers as decimal strings)."""
        return {
            "step": self.step,
            "mechanism": self.mechanism,
            "columns": list(self.columns),
            "noise": {k: repr(float(v)) for k, v in self.noise.items()},
            "share": repr(float(self.share)),
            "count": self.count,
            "event": self.event.to_json(),
        }


@dataclass(frozen=True)
class Plan:
    """Everything fixed before the private data is read: the events to charge and their transcript."""

    engine: str
    request: SynthesisRequest
    events: tuple[DpEvent, ...]
    transcript: tuple[TranscriptItem, ...]
    cost: PrivacyCost
    options: Mapping[str, Any] = field(default_factory=frozen_mapping)
    schema_fingerprint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", frozen_mapping(self.options))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view of the plan: request, transcript, events and cost."""
        return {
            "engine": self.engine,
            "request": self.request.to_json(),
            "options": dict(self.options),
            "transcript": [item.to_json() for item in self.transcript],
            "events": [event.to_json() for event in self.events],
            "cost": {
                "epsilon": repr(float(self.cost.epsilon)),
                "delta": repr(float(self.cost.delta)),
                "method": self.cost.method,
            },
            "schema_fingerprint": self.schema_fingerprint,
        }


def _no_progress(stage: str, fraction: float) -> None:
    """The default progress callback: ignore."""


def _never_cancelled() -> bool:
    """The default cancellation check: never."""
    return False


@dataclass(frozen=True)
class EngineContext:
    """What a run needs besides the plan and the data.

    ``rng`` is the secure source for DP noise (and, through its numpy helpers, for post-processing);
    ``runner`` the language model for text columns (None: text columns are refused with
    ``ModelUnavailable``); ``progress(stage, fraction_done)``; ``cancelled()`` polled between steps.
    """

    rng: RandomSource
    runner: Runner | None = None
    progress: Callable[[str, float], None] = _no_progress
    cancelled: Callable[[], bool] = _never_cancelled

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` when the job was cancelled."""
        if self.cancelled():
            raise Cancelled("the synthesis job was cancelled")


class CodedColumn(NamedTuple):
    """A column that is a label lookup: ``table[name]`` equals ``labels[codes]`` element by element
    (a label may be None: a null cell). Every code is in ``range(len(labels))``."""

    codes: npt.NDArray[np.integer[Any]]
    labels: tuple[str | None, ...]


@dataclass(frozen=True)
class EngineOutput:
    """The synthetic table and a JSON-ready report (aggregate facts only: never private values).

    ``coded_columns``: columns that are label lookups: ``table[name]`` equals ``labels[codes]``
    (see :class:`CodedColumn`). An optional hint an engine gives for columns it decoded from integer
    codes; the release store then encodes them from the codes instead of re-hashing every string
    (what a reader of the release gets is the same). Empty by default; read-only.
    """

    table: pd.DataFrame
    report: Mapping[str, Any] = field(default_factory=frozen_mapping)
    coded_columns: Mapping[str, CodedColumn] = field(default_factory=frozen_mapping)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coded_columns", MappingProxyType(dict(self.coded_columns)))


@runtime_checkable
class Engine(Protocol):
    """A synthesizer. ``plan`` reads no private data; ``run`` runs exactly the planned mechanisms."""

    name: str

    def plan(self, schema: DatasetSchema, request: SynthesisRequest) -> Plan:
        """Fix every mechanism, its noise and the composed cost, from public inputs only."""
        ...

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        """Measure the private data with the planned mechanisms, then fit, sample and write text."""
        ...


# ------------------------------------------------------------------------------------- calibration
def calibrate_noise_multiplier(
    build_events: Callable[[float], Sequence[DpEvent]],
    *,
    epsilon: float,
    delta: float,
    low: float = 1e-3,
    high: float = 1e6,
    rel_tol: float = 1e-3,
    methods: Sequence[str] | None = ("gdp", "rdp"),
) -> float:
    """The smallest noise multiplier ``m`` whose events compose to at most ``epsilon`` at ``delta``.

    ``build_events(m)`` returns the plan's events when every noise scale is ``m`` times its base
    scale (cost decreasing in ``m``). Bisection on ``log m`` with the real accountant
    (``dp.accountant.compose``, restricted to ``methods`` for speed: the final
    ``compose(events, delta)`` over all methods is the minimum over methods, so never larger), and
    the result is rounded *up* (the side of more noise). Raises ``InvalidRequest`` when even
    ``high`` does not fit the budget.
    """
    import numpy as np

    from safesynth.gateway.dp.accountant import compose
    from safesynth.gateway.dp.errors import DPError

    def cost(m: float) -> float:
        try:
            with np.errstate(over="ignore"):  # the RDP curves overflow harmlessly at extreme orders
                return float(compose(list(build_events(m)), delta=delta, methods=methods).epsilon)
        except (DPError, OverflowError, ValueError):  # so little noise that the curves overflow
            return math.inf

    if cost(high) > epsilon:
        raise InvalidRequest(f"epsilon={epsilon} at delta={delta} is too small for this plan")
    if cost(low) <= epsilon:
        return low
    lo, hi = math.log(low), math.log(high)
    step = math.log(4.0)
    # Walk down from ``high`` by factors of 4 while the cost stays within budget, then bisect.
    while hi - step > lo and cost(math.exp(hi - step)) <= epsilon:
        hi -= step
    lo = max(lo, hi - step)
    while hi - lo > rel_tol:
        mid = 0.5 * (lo + hi)
        if cost(math.exp(mid)) <= epsilon:
            hi = mid
        else:
            lo = mid
    return math.exp(hi)
