"""DP statistics: count, sum, mean, histogram and quantiles of one column, with optional row filters.

Planning reads only the public schema and the request: it fixes every mechanism, its sensitivity and
its noise, and returns the privacy events that the admission charges before any private value is
read. Running applies the filters, bounds each person's contribution (privacy unit ``person``: at most
``max_rows_per_person`` rows, so sensitivities are multiplied by that bound), clamps values to the
public bounds, and calls the DP core's mechanisms with the secure random source.

Sensitivities (add/remove-one-unit neighbours, k = rows per unit):
count: k; sum over [L, U]: k * max(|L|, |U|); mean: a noisy sum and a noisy count (half the epsilon
each), clamped to [L, U]; histogram: L1 sensitivity k over the bins (one row is in one bin);
quantiles: the exponential mechanism over a public grid of [L, U] with utility
``-|#{x < c} - q n|`` (sensitivity k), epsilon split evenly over the quantiles.
Sum, mean and quantiles need public bounds (from the request or the schema); a categorical histogram
needs the schema's public categories, a numeric one public edges (``bins``) or bounds (10 equal bins).
Requests without them are refused with ``invalid_request`` before anything is spent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safesynth.gateway.dp.events import (
    DiscreteLaplaceEvent,
    DpEvent,
    ExponentialEvent,
    LaplaceEvent,
    PartitionSelectionEvent,
)
from safesynth.gateway.service.errors import InvalidRequest
from safesynth.sdk.models import Filter, QueryRequest
from safesynth.sdk.schema import ColumnKind, DatasetSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from safesynth.gateway.dp.rng import RandomSource

__all__ = ["QueryAnswer", "QueryPlan", "apply_filters", "bound_contributions", "plan_query", "run_query"]

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


@dataclass(frozen=True)
class QueryAnswer:
    """The noisy answer (post-processing of DP outputs only)."""

    value: float | None = None
    histogram: tuple[tuple[str, float | None, float | None, float], ...] | None = None
    quantiles: tuple[tuple[float, float], ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _bounds(request: QueryRequest, schema: DatasetSchema) -> tuple[float, float]:
    assert request.column is not None
    spec = schema.column(request.column)
    if request.bounds is not None:
        return float(request.bounds[0]), float(request.bounds[1])
    if spec.lower is not None and spec.upper is not None:
        return float(spec.lower), float(spec.upper)
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


# -------------------------------------------------------------------------------------------- running
def _mask(frame: pd.DataFrame, flt: Filter) -> Any:
    column = frame[flt.column]
    value = flt.value
    if flt.op == "eq":
        return column == value
    if flt.op == "ne":
        return column != value
    if flt.op == "lt":
        return column < value
    if flt.op == "le":
        return column <= value
    if flt.op == "gt":
        return column > value
    if flt.op == "ge":
        return column >= value
    values = list(value) if isinstance(value, tuple) else [value]
    inside = column.isin(values)
    return inside if flt.op == "in" else ~inside


def apply_filters(frame: pd.DataFrame, filters: Sequence[Filter]) -> pd.DataFrame:
    """The rows where every filter holds (missing values never match a comparison)."""
    for flt in filters:
        frame = frame[_mask(frame, flt).fillna(False).astype(bool)]
    return frame


def bound_contributions(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """At most ``max_rows_per_person`` rows per person (the first ones; rows-unit data unchanged)."""
    unit = schema.privacy_unit
    if unit.kind != "person" or unit.person_column is None:
        return frame
    return frame.groupby(unit.person_column, sort=False, dropna=False).head(unit.max_rows_per_person)


def _counts_float(rng: RandomSource, counts: np.ndarray, plan: QueryPlan, epsilon: float) -> np.ndarray:
    import numpy as np

    from safesynth.gateway.dp.mechanisms import discrete_laplace_mechanism

    k = int(plan.sensitivity)
    noisy = discrete_laplace_mechanism(counts.astype(np.int64), sensitivity=k, scale=k / epsilon, rng=rng)
    return np.asarray(noisy, dtype=float)


def run_query(plan: QueryPlan, schema: DatasetSchema, data: pd.DataFrame, rng: RandomSource) -> QueryAnswer:
    """Run the planned mechanisms on the private ``data``."""
    import numpy as np

    from safesynth.gateway.dp.mechanisms import exponential_mechanism, laplace_mechanism

    request = plan.request
    frame = apply_filters(bound_contributions(data, schema), request.filters)
    if request.kind == "count":
        noisy = _counts_float(rng, np.array([len(frame)]), plan, plan.epsilon_parts[0])
        return QueryAnswer(value=float(noisy[0]))
    assert request.column is not None
    column = frame[request.column]
    if request.kind in ("sum", "mean"):
        assert plan.lower is not None and plan.upper is not None
        values = column.dropna().astype(float).clip(plan.lower, plan.upper).to_numpy()
        total = float(values.sum())
        sum_eps = plan.epsilon_parts[0]
        noisy_sum = float(
            laplace_mechanism(
                np.array([total]), sensitivity=plan.sensitivity, scale=plan.sensitivity / sum_eps, rng=rng
            )[0]
        )
        if request.kind == "sum":
            return QueryAnswer(value=noisy_sum)
        noisy_count = float(
            _counts_float(rng, np.array([len(values)]), _count_plan(plan), plan.epsilon_parts[1])[0]
        )
        mean = noisy_sum / max(noisy_count, 1.0)
        return QueryAnswer(value=float(min(max(mean, plan.lower), plan.upper)))
    if request.kind == "histogram":
        bars: tuple[tuple[str, float | None, float | None, float], ...]
        if plan.edges:
            values = column.dropna().astype(float).clip(plan.edges[0], plan.edges[-1]).to_numpy()
            counts, _ = np.histogram(values, bins=np.asarray(plan.edges))
            noisy = _counts_float(rng, counts, plan, plan.epsilon_parts[0])
            bars = tuple(
                (label, plan.edges[i], plan.edges[i + 1], max(0.0, float(noisy[i])))
                for i, label in enumerate(plan.labels)
            )
        else:
            labels = plan.labels
            if plan.selection is not None:
                labels = _select_categories(frame, request.column, schema, plan, rng)
            tally = column.value_counts()
            counts = np.array([int(tally.get(label, 0)) for label in labels], dtype=np.int64)
            noisy = _counts_float(rng, counts, plan, plan.epsilon_parts[-1])
            bars = tuple((label, None, None, max(0.0, float(noisy[i]))) for i, label in enumerate(labels))
        return QueryAnswer(histogram=bars)
    # quantiles: exponential mechanism over a public grid
    assert plan.lower is not None and plan.upper is not None
    values = np.sort(column.dropna().astype(float).clip(plan.lower, plan.upper).to_numpy())
    grid = np.linspace(plan.lower, plan.upper, QUANTILE_GRID)
    below = np.searchsorted(values, grid, side="left").astype(float)
    n = float(len(values))
    out: list[tuple[float, float]] = []
    for q, part in zip(request.quantiles or (), plan.epsilon_parts, strict=True):
        scores = -np.abs(below - q * n)
        index = exponential_mechanism(scores, sensitivity=plan.sensitivity, epsilon=part, rng=rng)
        out.append((float(q), float(grid[int(index)])))
    return QueryAnswer(quantiles=tuple(out))


def _select_categories(
    frame: pd.DataFrame, column: str, schema: DatasetSchema, plan: QueryPlan, rng: RandomSource
) -> tuple[str, ...]:
    """The categories that pass DP partition selection (counts of distinct privacy units per key)."""
    from safesynth.gateway.dp.mechanisms import partition_selection

    assert plan.selection is not None
    epsilon, delta = plan.selection
    unit = schema.privacy_unit
    values = frame[[column] + ([unit.person_column] if unit.person_column else [])].dropna(subset=[column])
    if unit.kind == "person" and unit.person_column is not None:
        tally = values.groupby(column)[unit.person_column].nunique()
    else:
        tally = values[column].value_counts()
    counts = {str(key): int(count) for key, count in tally.items()}
    chosen = partition_selection(
        counts, epsilon=epsilon, delta=delta, max_partitions_contributed=int(plan.sensitivity), rng=rng
    )
    return tuple(str(key) for key in chosen)[:10_000]


def _count_plan(plan: QueryPlan) -> QueryPlan:
    """The count half of a mean: sensitivity k (rows per unit), not the sum's."""
    schema_k = plan.events[1]
    k = float(getattr(schema_k, "sensitivity", 1))
    return QueryPlan(plan.request, plan.events, plan.mechanism, k, plan.epsilon_parts)


def epsilon_is_valid(value: float) -> bool:
    """A finite, positive epsilon."""
    return math.isfinite(value) and value > 0
