"""DP statistics: count, sum, mean, histogram and quantiles of one column, with optional row filters.

Planning reads only the public schema and the request: it fixes every mechanism, its sensitivity and
its noise, and returns the privacy events that the admission charges before any private value is
read. Running bounds each person's contribution (privacy unit ``person``: at most
``max_rows_per_person`` rows, so sensitivities are multiplied by that bound; done once per dataset in
its cached :class:`~safesynth.gateway.service.query_table.QueryTable`), applies the filters (a missing
value matches no filter), clamps values to the bounds, and calls the DP core's mechanisms.

Sensitivities (add/remove-one-unit neighbours, k = rows per unit):
count: k; sum over [L, U]: k * max(|L|, |U|); mean: a noisy sum and a noisy count (half the epsilon
each), clamped to [L, U]; histogram: L1 sensitivity k over the bins (one row is in one bin);
quantiles: the exponential mechanism over a public grid of [L, U] with utility
``-|#{x < c} - q n|`` (sensitivity k), epsilon split evenly over the quantiles.
Sum, mean and quantiles are clamped to public bounds (from the request or the schema) or, when there
are none, to DP bounds: a documented split of the query's epsilon, fixed at planning before any data
are read: :data:`DP_BOUNDS_SHARE` of it buys the bounds (:func:`safesynth.gateway.dp.bounds.dp_bounds`,
a noisy histogram over a public grid, one ``DiscreteLaplaceEvent`` of sensitivity k) and the rest goes
to the statistic as above. Both are events of the one spend, charged in the same ledger transaction.
Because the sum's sensitivity k * max(|L|, |U|) is known only once the DP bounds are drawn, its Laplace
event is recorded normalized (sensitivity 1, scale 1 / epsilon: the same epsilon) and the noise is
scaled by the sensitivity at run time. A categorical histogram needs the schema's public categories
(or a delta for DP selection), a numeric one public edges (``bins``) or bounds (10 equal bins).
Requests that cannot be planned are refused with ``invalid_request`` before anything is spent.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from safesynth.gateway.dp.events import (
    DiscreteLaplaceEvent,
    DpEvent,
    ExponentialEvent,
    LaplaceEvent,
    PartitionSelectionEvent,
)
from safesynth.gateway.service.errors import InvalidRequest
from safesynth.gateway.service.query_table import QueryTable, bound_contributions
from safesynth.sdk.models import QueryRequest
from safesynth.sdk.schema import ColumnKind, DatasetSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from safesynth.gateway.dp.rng import RandomSource

__all__ = ["QueryAnswer", "QueryPlan", "QueryTable", "bound_contributions", "plan_query", "run_query"]

QUANTILE_GRID = 1024
DEFAULT_HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class QueryPlan:
    """Every mechanism of a query, fixed from public inputs; ``events`` are what it costs."""

    request: QueryRequest
    events: tuple[DpEvent, ...]
    mechanism: str
    sensitivity: float
    epsilon_parts: tuple[float, ...]
    lower: float | None = None
    upper: float | None = None
    labels: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()
    #: DP selection of the categories (no public list): its epsilon and delta.
    selection: tuple[float, float] | None = None
    #: Epsilon of the DP bounds (no public bounds): the first event; ``lower``/``upper`` are None.
    bounds_epsilon: float | None = None


@dataclass(frozen=True)
class QueryAnswer:
    """The noisy answer (post-processing of DP outputs only)."""

    value: float | None = None
    histogram: tuple[tuple[str, float | None, float | None, float], ...] | None = None
    quantiles: tuple[tuple[float, float], ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Every mechanism run: (privacy event kind, epsilon), in the order of the plan's events.
    ran: tuple[tuple[str, float], ...] = field(default_factory=tuple)


#: Share of a sum's, mean's or quantiles' epsilon spent on DP bounds when there are no public ones.
DP_BOUNDS_SHARE = 0.25


def _public_bounds(request: QueryRequest, schema: DatasetSchema) -> tuple[float, float] | None:
    assert request.column is not None
    spec = schema.column(request.column)
    if request.bounds is not None:
        return float(request.bounds[0]), float(request.bounds[1])
    if spec.lower is not None and spec.upper is not None and spec.lower < spec.upper:
        return float(spec.lower), float(spec.upper)
    return None


def _bounds(request: QueryRequest, schema: DatasetSchema) -> tuple[float, float]:
    bounds = _public_bounds(request, schema)
    if bounds is not None:
        return bounds
    raise InvalidRequest(
        f"a {request.kind} over {request.column!r} needs public bounds: give 'bounds' in the request "
        "or lower/upper in the schema (bounds are never read from the private data)"
    )


def _check_columns(request: QueryRequest, schema: DatasetSchema) -> None:
    names = {c.name for c in schema.columns}
    for name in [request.column, *(f.column for f in request.filters)]:
        if name is not None and name not in names:
            raise InvalidRequest(f"no column {name!r} in the dataset's schema")
    for flt in request.filters:
        spec = schema.column(flt.column)
        values = flt.value if isinstance(flt.value, tuple) else (flt.value,)
        numeric = spec.kind is ColumnKind.NUMERIC
        for value in values:
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and not is_number:
                raise InvalidRequest(f"filter on numeric column {flt.column!r} needs a number")
            if not numeric and not isinstance(value, str):
                raise InvalidRequest(f"filter on column {flt.column!r} needs a string value")
        if not numeric and flt.op in ("lt", "le", "gt", "ge"):
            raise InvalidRequest(f"operator {flt.op!r} applies to numeric columns only")


def plan_query(schema: DatasetSchema, request: QueryRequest) -> QueryPlan:
    """The mechanisms and events of ``request`` (reads no private data)."""
    _check_columns(request, schema)
    k = float(schema.privacy_unit.max_rows_per_person if schema.privacy_unit.kind == "person" else 1)
    eps = float(request.epsilon)
    kind = request.kind
    spec = schema.column(request.column) if request.column is not None else None
    if kind in ("sum", "mean", "quantiles") and (spec is None or spec.kind is not ColumnKind.NUMERIC):
        raise InvalidRequest(f"a {kind} query needs a numeric column")
    if kind == "count":
        scale = k / eps
        return QueryPlan(
            request, (DiscreteLaplaceEvent(scale=scale, sensitivity=int(k)),), "discrete_laplace", k, (eps,)
        )
    if kind in ("sum", "mean", "quantiles") and _public_bounds(request, schema) is None:
        return _plan_with_dp_bounds(request, k, eps)
    if kind == "sum":
        lower, upper = _bounds(request, schema)
        sens = k * max(abs(lower), abs(upper))
        return QueryPlan(
            request,
            (LaplaceEvent(scale=sens / eps, sensitivity=sens),),
            "laplace",
            sens,
            (eps,),
            lower,
            upper,
        )
    if kind == "mean":
        lower, upper = _bounds(request, schema)
        sens = k * max(abs(lower), abs(upper))
        half = eps / 2.0
        events: tuple[DpEvent, ...] = (
            LaplaceEvent(scale=sens / half, sensitivity=sens),
            DiscreteLaplaceEvent(scale=k / half, sensitivity=int(k)),
        )
        return QueryPlan(
            request, events, "laplace(sum)/discrete_laplace(count)", sens, (half, half), lower, upper
        )
    if kind == "histogram":
        assert spec is not None
        if spec.kind is ColumnKind.NUMERIC:
            if request.bins is not None:
                edges = tuple(float(b) for b in request.bins)
            else:
                lower, upper = _bounds(request, schema)
                step = (upper - lower) / DEFAULT_HISTOGRAM_BINS
                edges = (*tuple(lower + i * step for i in range(DEFAULT_HISTOGRAM_BINS)), upper)
            labels = tuple(f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges))
            return QueryPlan(
                request,
                (DiscreteLaplaceEvent(scale=k / eps, sensitivity=int(k)),),
                "discrete_laplace",
                k,
                (eps,),
                labels=labels,
                edges=edges,
            )
        if request.bins is not None:
            raise InvalidRequest("bins apply to numeric columns only")
        if spec.categories is None:
            # No public list: choose the categories by DP partition selection (half the epsilon,
            # half the delta), then count the chosen ones (the other half of the epsilon).
            delta = float(request.delta or 0.0)
            if delta <= 0:
                raise InvalidRequest(
                    f"a histogram of {request.column!r} needs the schema's public category list, or a "
                    "'delta' > 0 for a DP selection of the categories (never read from the private data)"
                )
            half = eps / 2.0
            events = (
                PartitionSelectionEvent(epsilon=half, delta=delta / 2.0, max_partitions_contributed=int(k)),
                DiscreteLaplaceEvent(scale=k / half, sensitivity=int(k)),
            )
            return QueryPlan(
                request,
                events,
                "partition_selection+discrete_laplace",
                k,
                (half, half),
                selection=(half, delta / 2.0),
            )
        return QueryPlan(
            request,
            (DiscreteLaplaceEvent(scale=k / eps, sensitivity=int(k)),),
            "discrete_laplace",
            k,
            (eps,),
            labels=tuple(spec.categories),
        )
    # quantiles
    lower, upper = _bounds(request, schema)
    qs = request.quantiles or ()
    part = eps / len(qs)
    return QueryPlan(
        request,
        (ExponentialEvent(epsilon=part, count=len(qs)),),
        "exponential",
        k,
        tuple(part for _ in qs),
        lower,
        upper,
    )


def _plan_with_dp_bounds(request: QueryRequest, k: float, eps: float) -> QueryPlan:
    """A sum, mean or quantiles without public bounds: DP bounds first, then the statistic."""
    from safesynth.gateway.dp.bounds import bounds_event

    eps_bounds = eps * DP_BOUNDS_SHARE
    rest = eps - eps_bounds
    first = bounds_event(eps_bounds, int(k))
    if request.kind == "sum":
        events: tuple[DpEvent, ...] = (first, LaplaceEvent(scale=1.0 / rest, sensitivity=1.0))
        return QueryPlan(request, events, "dp_bounds+laplace", k, (rest,), bounds_epsilon=eps_bounds)
    if request.kind == "mean":
        half = rest / 2.0
        events = (
            first,
            LaplaceEvent(scale=1.0 / half, sensitivity=1.0),
            DiscreteLaplaceEvent(scale=k / half, sensitivity=int(k)),
        )
        return QueryPlan(
            request,
            events,
            "dp_bounds+laplace(sum)/discrete_laplace(count)",
            k,
            (half, half),
            bounds_epsilon=eps_bounds,
        )
    qs = request.quantiles or ()
    part = rest / len(qs)
    return QueryPlan(
        request,
        (first, ExponentialEvent(epsilon=part, count=len(qs))),
        "dp_bounds+exponential",
        k,
        tuple(part for _ in qs),
        bounds_epsilon=eps_bounds,
    )


# -------------------------------------------------------------------------------------------- running
def _counts_float(rng: RandomSource, counts: np.ndarray, plan: QueryPlan, epsilon: float) -> np.ndarray:
    import numpy as np

    from safesynth.gateway.dp.mechanisms import discrete_laplace_mechanism

    k = int(plan.sensitivity)
    noisy = discrete_laplace_mechanism(counts.astype(np.int64), sensitivity=k, scale=k / epsilon, rng=rng)
    return np.asarray(noisy, dtype=float)


def run_query(
    plan: QueryPlan, schema: DatasetSchema, data: pd.DataFrame | QueryTable, rng: RandomSource
) -> QueryAnswer:
    """Run the planned mechanisms on the private ``data`` (a frame, or its cached :class:`QueryTable`).

    ``QueryAnswer.ran`` lists every mechanism run, as (event kind, epsilon), in the order of
    ``plan.events``: what was charged is what ran.
    """
    import numpy as np

    from safesynth.gateway.dp.mechanisms import exponential_mechanism, laplace_mechanism

    table = data if isinstance(data, QueryTable) else QueryTable(data, schema)
    request = plan.request
    selected = table.mask(request.filters)
    ran: list[tuple[str, float]] = []
    if request.kind == "count":
        noisy = _counts_float(rng, np.array([int(selected.sum())]), plan, plan.epsilon_parts[0])
        ran.append((DiscreteLaplaceEvent.kind, plan.epsilon_parts[0]))
        return QueryAnswer(value=float(noisy[0]), ran=tuple(ran))
    assert request.column is not None
    notes: tuple[str, ...] = ()
    if request.kind in ("sum", "mean", "quantiles") or plan.edges:
        column = table.numeric(request.column)
        raw = column[selected & ~np.isnan(column)]
    if plan.bounds_epsilon is not None:
        from safesynth.gateway.dp.bounds import dp_bounds

        k = int(plan.sensitivity)
        lower, upper = dp_bounds(raw, epsilon=plan.bounds_epsilon, sensitivity=k, rng=rng)
        ran.append((DiscreteLaplaceEvent.kind, plan.bounds_epsilon))
        notes = (f"DP bounds [{lower:.6g}, {upper:.6g}]",)
        sensitivity = k * max(abs(lower), abs(upper)) if request.kind in ("sum", "mean") else float(k)
        plan = replace(plan, lower=lower, upper=upper, sensitivity=sensitivity)
    if request.kind in ("sum", "mean"):
        assert plan.lower is not None and plan.upper is not None
        values = np.clip(raw, plan.lower, plan.upper)
        total = float(values.sum())
        sum_eps = plan.epsilon_parts[0]
        noisy_sum = float(
            laplace_mechanism(
                np.array([total]), sensitivity=plan.sensitivity, scale=plan.sensitivity / sum_eps, rng=rng
            )[0]
        )
        ran.append((LaplaceEvent.kind, sum_eps))
        if request.kind == "sum":
            return QueryAnswer(value=noisy_sum, notes=notes, ran=tuple(ran))
        noisy_count = float(
            _counts_float(rng, np.array([len(values)]), _count_plan(plan), plan.epsilon_parts[1])[0]
        )
        ran.append((DiscreteLaplaceEvent.kind, plan.epsilon_parts[1]))
        mean = noisy_sum / max(noisy_count, 1.0)
        return QueryAnswer(value=float(min(max(mean, plan.lower), plan.upper)), notes=notes, ran=tuple(ran))
    if request.kind == "histogram":
        bars: tuple[tuple[str, float | None, float | None, float], ...]
        if plan.edges:
            values = np.clip(raw, plan.edges[0], plan.edges[-1])
            counts, _ = np.histogram(values, bins=np.asarray(plan.edges))
            noisy = _counts_float(rng, counts, plan, plan.epsilon_parts[0])
            ran.append((DiscreteLaplaceEvent.kind, plan.epsilon_parts[0]))
            bars = tuple(
                (label, plan.edges[i], plan.edges[i + 1], max(0.0, float(noisy[i])))
                for i, label in enumerate(plan.labels)
            )
        else:
            labels = plan.labels
            if plan.selection is not None:
                labels = _select_categories(table, selected, request.column, plan, rng)
                ran.append((PartitionSelectionEvent.kind, plan.selection[0]))
            counts = table.label_counts(request.column, selected, labels)
            noisy = _counts_float(rng, counts, plan, plan.epsilon_parts[-1])
            ran.append((DiscreteLaplaceEvent.kind, plan.epsilon_parts[-1]))
            bars = tuple((label, None, None, max(0.0, float(noisy[i]))) for i, label in enumerate(labels))
        return QueryAnswer(histogram=bars, ran=tuple(ran))
    # quantiles: exponential mechanism over a public grid of the (public or DP) bounds
    assert plan.lower is not None and plan.upper is not None
    values = np.sort(np.clip(raw, plan.lower, plan.upper))
    grid = np.linspace(plan.lower, plan.upper, QUANTILE_GRID)
    below = np.searchsorted(values, grid, side="left").astype(float)
    n = float(len(values))
    out: list[tuple[float, float]] = []
    for q, part in zip(request.quantiles or (), plan.epsilon_parts, strict=True):
        scores = -np.abs(below - q * n)
        index = exponential_mechanism(scores, sensitivity=plan.sensitivity, epsilon=part, rng=rng)
        out.append((float(q), float(grid[int(index)])))
    ran.append((ExponentialEvent.kind, sum(plan.epsilon_parts)))
    return QueryAnswer(quantiles=tuple(out), notes=notes, ran=tuple(ran))


def _select_categories(
    table: QueryTable, selected: np.ndarray, column: str, plan: QueryPlan, rng: RandomSource
) -> tuple[str, ...]:
    """The categories that pass DP partition selection (counts of distinct privacy units per key)."""
    from safesynth.gateway.dp.mechanisms import partition_selection

    assert plan.selection is not None
    epsilon, delta = plan.selection
    unit = table.schema.privacy_unit
    frame = table.frame[selected]
    values = frame[[column] + ([unit.person_column] if unit.person_column else [])].dropna(subset=[column])
    if unit.kind == "person" and unit.person_column is not None:
        tally = values.groupby(column)[unit.person_column].nunique()
    else:
        tally = values[column].value_counts()
    counts: dict[str, int] = {}
    for key, count in tally.items():
        counts[str(key)] = counts.get(str(key), 0) + int(count)
    chosen = partition_selection(
        counts, epsilon=epsilon, delta=delta, max_partitions_contributed=int(plan.sensitivity), rng=rng
    )
    return tuple(str(key) for key in chosen)[:10_000]


def _count_plan(plan: QueryPlan) -> QueryPlan:
    """The count half of a mean: sensitivity k (rows per unit), not the sum's."""
    schema_k = plan.events[-1]
    k = float(getattr(schema_k, "sensitivity", 1))
    return QueryPlan(plan.request, plan.events, plan.mechanism, k, plan.epsilon_parts)


def epsilon_is_valid(value: float) -> bool:
    """A finite, positive epsilon."""
    return math.isfinite(value) and value > 0
