"""The tabular engine's plan: every mechanism and its noise, from the public schema and the request.

``make_plan(schema, request)`` takes no data. The steps depend only on the schema (which columns,
which public bounds and categories) and on the request (``rows`` None adds the DP count). Each step
gets a share of a nominal zCDP budget (``options.split``); one noise multiplier scales them all and is
calibrated with the accountant (``calibrate_noise_multiplier``) so that
``dp.accountant.compose(plan.events, delta)`` is at most the requested epsilon.

Step names (in run order): ``count``; ``bounds:<col>``, ``bins:<col>``, ``categories:<col>``;
``one_way:<col>``; ``select:<r>`` and ``two_way:<r>`` for r = 1..d-1 (the tree's edges are chosen at
run time by the ``select`` steps, so the plan names them by round). With ``model="adaptive"`` the
rounds alternate: ``select:1``, ``measure:1``, ..., ``select:<R>``, ``measure:<R>`` (what each
round measures is chosen at run time; how many rounds and their noise are fixed here). Last, with
``text_keywords`` > 0: ``keywords:<text col>`` (DP vocabulary selection per text column).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from safesynth.gateway.engines.base import (
    InvalidRequest,
    Plan,
    SynthesisRequest,
    TranscriptItem,
    UnsupportedSchema,
    calibrate_noise_multiplier,
)
from safesynth.gateway.engines.tabular.options import TabularOptions, parse_options
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

if TYPE_CHECKING:
    from safesynth.gateway.dp.events import DpEvent

__all__ = [
    "ENGINE_NAME",
    "ColumnRoles",
    "StepSpec",
    "adaptive_rounds",
    "column_roles",
    "make_plan",
    "plan_steps",
    "schema_fingerprint",
]

ENGINE_NAME = "tabular"

Mechanism = Literal["gaussian", "discrete_gaussian", "exponential", "partition_selection"]


@dataclass(frozen=True)
class ColumnRoles:
    """How the engine treats each column: modelled (categorical, numeric), text, or regenerated id."""

    modelled: tuple[ColumnSpec, ...]
    text: tuple[ColumnSpec, ...]
    identifiers: tuple[ColumnSpec, ...]


def column_roles(schema: DatasetSchema) -> ColumnRoles:
    """Split the schema's columns by role; ``UnsupportedSchema`` for a kind this engine does not know."""
    person = schema.privacy_unit.person_column
    modelled: list[ColumnSpec] = []
    text: list[ColumnSpec] = []
    ids: list[ColumnSpec] = []
    for spec in schema.columns:
        kind = spec.kind
        if spec.name == person or kind == ColumnKind.IDENTIFIER:
            ids.append(spec)
        elif kind in (ColumnKind.CATEGORICAL, ColumnKind.NUMERIC):
            modelled.append(spec)
        elif kind == ColumnKind.TEXT:
            text.append(spec)
        else:
            raise UnsupportedSchema(f"column {spec.name!r}: unknown kind {kind!r}", column=spec.name)
    return ColumnRoles(modelled=tuple(modelled), text=tuple(text), identifiers=tuple(ids))


@dataclass(frozen=True)
class StepSpec:
    """One planned mechanism with its share ``weight`` of the nominal zCDP budget (rho = 1).

    With noise multiplier ``m``: Gaussian sigma = m * sensitivity / sqrt(2 weight); exponential
    epsilon = sqrt(8 weight) / m; partition selection epsilon = sqrt(2 weight) / m at a fixed delta.
    """

    step: str
    mechanism: Mechanism
    columns: tuple[str, ...]
    weight: float
    sensitivity: int
    delta: float = 0.0

    def noise(self, m: float) -> dict[str, float]:
        """The mechanism's noise parameters at multiplier ``m``."""
        if self.mechanism in ("gaussian", "discrete_gaussian"):
            return {
                "sigma": m * self.sensitivity / math.sqrt(2.0 * self.weight),
                "sensitivity": self.sensitivity,
            }
        if self.mechanism == "exponential":
            return {"epsilon": math.sqrt(8.0 * self.weight) / m, "sensitivity": self.sensitivity}
        return {
            "epsilon": math.sqrt(2.0 * self.weight) / m,
            "delta": self.delta,
            "max_partitions_contributed": self.sensitivity,
        }

    def event(self, m: float) -> DpEvent:
        """The privacy event charged for this step at multiplier ``m``."""
        from safesynth.gateway.dp import events

        p = self.noise(m)
        if self.mechanism == "gaussian":
            return events.GaussianEvent(sigma=p["sigma"], sensitivity=self.sensitivity)
        if self.mechanism == "discrete_gaussian":
            return events.DiscreteGaussianEvent(sigma=p["sigma"], sensitivity=self.sensitivity)
        if self.mechanism == "exponential":
            return events.ExponentialEvent(epsilon=p["epsilon"])
        return events.PartitionSelectionEvent(
            epsilon=p["epsilon"], delta=self.delta, max_partitions_contributed=self.sensitivity
        )


def schema_fingerprint(schema: DatasetSchema) -> str:
    """sha256 of the schema's JSON: ties a plan to the schema it was made for."""
    return hashlib.sha256(schema.model_dump_json().encode()).hexdigest()


def plan_steps(schema: DatasetSchema, request: SynthesisRequest, options: TabularOptions) -> list[StepSpec]:
    """The steps of the plan with their budget weights (summing to 1), from public inputs only."""
    roles = column_roles(schema)
    k = schema.privacy_unit.max_rows_per_person if schema.privacy_unit.kind == "person" else 1
    split = options.split
    schema_steps: list[tuple[str, Mechanism, tuple[str, ...], float]] = []
    for spec in roles.modelled:
        if spec.kind == ColumnKind.NUMERIC:
            public = spec.lower is not None and spec.upper is not None
            if not public:
                schema_steps.append((f"bounds:{spec.name}", "gaussian", (spec.name,), 1.0))
            if options.bins == "quantile" or not public:
                schema_steps.append((f"bins:{spec.name}", "gaussian", (spec.name,), 2.0))
        elif spec.categories is None:
            schema_steps.append((f"categories:{spec.name}", "partition_selection", (spec.name,), 1.0))
    d = len(roles.modelled)
    groups: dict[str, float] = {}
    if schema_steps:
        groups["schema"] = split["schema"]
    if request.rows is None:
        groups["count"] = split["count"]
    if d:
        groups["one_way"] = split["one_way"]
    tree = d >= 2 and options.model == "tree"
    adaptive = d >= 2 and options.model == "adaptive"
    if tree or adaptive:
        groups["select"] = split["select"]
        groups["two_way"] = split["two_way"]
    keyword_columns = [spec.name for spec in roles.text] if options.text_keywords > 0 else []
    if keyword_columns:
        groups["keywords"] = split["keywords"]
    norm = sum(groups.values())
    if norm <= 0:
        return []
    share = {g: v / norm for g, v in groups.items()}
    n_partition = sum(1 for s in schema_steps if s[1] == "partition_selection") + len(keyword_columns)
    partition_delta = options.partition_delta_share * request.delta / n_partition if n_partition else 0.0
    steps: list[StepSpec] = []
    if "count" in share:
        steps.append(StepSpec("count", "discrete_gaussian", (), share["count"], k))
    total_schema_weight = sum(s[3] for s in schema_steps)
    for name, mech, cols, w in schema_steps:
        weight = share["schema"] * w / total_schema_weight
        delta = partition_delta if mech == "partition_selection" else 0.0
        steps.append(StepSpec(name, mech, cols, weight, k, delta))
    for spec in roles.modelled:
        steps.append(StepSpec(f"one_way:{spec.name}", "gaussian", (spec.name,), share["one_way"] / d, k))
    if tree:
        for r in range(1, d):
            steps.append(StepSpec(f"select:{r}", "exponential", (), share["select"] / (d - 1), k))
        for r in range(1, d):
            steps.append(StepSpec(f"two_way:{r}", "gaussian", (), share["two_way"] / (d - 1), k))
    if adaptive:
        n_rounds = adaptive_rounds(d, options)
        for r in range(1, n_rounds + 1):
            steps.append(StepSpec(f"select:{r}", "exponential", (), share["select"] / n_rounds, k))
            steps.append(StepSpec(f"measure:{r}", "gaussian", (), share["two_way"] / n_rounds, k))
    for name in keyword_columns:
        weight = share["keywords"] / len(keyword_columns)
        m = options.text_keywords * k
        steps.append(StepSpec(f"keywords:{name}", "partition_selection", (name,), weight, m, partition_delta))
    return steps


def adaptive_rounds(d: int, options: TabularOptions) -> int:
    """The number of rounds of ``model="adaptive"`` for ``d`` modelled columns (``d >= 2``)."""
    n_rounds = 2 * (d - 1) if options.rounds is None else options.rounds
    if n_rounds < d - 1:
        raise InvalidRequest(f"rounds={n_rounds} is too few: the adaptive model needs at least {d - 1}")
    return n_rounds


def group_events(events: Sequence[DpEvent]) -> list[DpEvent]:
    """Merge equal events into one with the summed ``count`` (first-occurrence order): the same
    mechanisms, fewer terms for the accountant. Events without a ``count`` stay as they are."""
    import dataclasses

    merged: dict[object, Any] = {}
    order: list[object] = []
    for i, event in enumerate(events):
        item: Any = event
        if "count" not in {f.name for f in dataclasses.fields(item)}:
            key: object = ("single", i)
        else:
            key = (type(item), dataclasses.replace(item, count=1))
            if key in merged:
                item = dataclasses.replace(item, count=merged[key].count + item.count)
        merged[key] = item
        if key not in order:
            order.append(key)
    return [merged[k] for k in order]


def _events(steps: Sequence[StepSpec], m: float) -> list[DpEvent]:
    return group_events([s.event(m) for s in steps])


def make_plan(schema: DatasetSchema, request: SynthesisRequest) -> Plan:
    """The full plan: events, transcript and composed cost (at most ``request.epsilon``)."""
    from safesynth.gateway.dp.accountant import compose

    if request.engine != ENGINE_NAME:
        raise InvalidRequest(f"request names engine {request.engine!r}, not {ENGINE_NAME!r}")
    options = parse_options(request.options)
    if options.bins == "uniform":
        for spec in schema.columns:
            if spec.kind == ColumnKind.NUMERIC and (spec.lower is None or spec.upper is None):
                raise InvalidRequest(f"bins='uniform' needs public bounds; column {spec.name!r} has none")
    steps = plan_steps(schema, request, options)
    if steps and not request.delta > 0:
        raise InvalidRequest("the tabular engine uses Gaussian noise: delta must be > 0")
    multiplier = 1.0
    if steps:
        multiplier = calibrate_noise_multiplier(
            lambda m: _events(steps, m), epsilon=request.epsilon, delta=request.delta
        )
    transcript = tuple(
        TranscriptItem(
            step=s.step,
            mechanism=s.mechanism,
            columns=s.columns,
            noise=s.noise(multiplier),
            share=s.weight,
            event=s.event(multiplier),
        )
        for s in steps
    )
    events = tuple(group_events([item.event for item in transcript]))
    import numpy as np

    with np.errstate(over="ignore"):  # the RDP curves overflow harmlessly at extreme orders
        cost = compose(list(events), delta=request.delta)
    resolved = options.model_dump()
    resolved["noise_multiplier"] = multiplier
    return Plan(
        engine=ENGINE_NAME,
        request=request,
        events=events,
        transcript=transcript,
        cost=cost,
        options=resolved,
        schema_fingerprint=schema_fingerprint(schema),
    )
