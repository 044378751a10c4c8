"""The tabular engine end to end with the real DP core: plan, charged events, DP hygiene, bad input."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from tests.unit.engines.tabular.conftest import small_schema, small_table

import safesynth.gateway.dp.mechanisms as mechanisms
from safesynth.gateway.dp import events
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import (
    DataMismatch,
    EngineContext,
    InvalidRequest,
    ModelUnavailable,
    PlanMismatch,
    SynthesisRequest,
    UnsupportedSchema,
)
from safesynth.gateway.engines.tabular.engine import TabularEngine, bound_contributions
from safesynth.gateway.engines.tabular.planning import group_events
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema, PrivacyUnit

ENGINE = TabularEngine()


def _request(epsilon: float = 2.0, rows: int | None = None, **options: Any) -> SynthesisRequest:
    return SynthesisRequest("tabular", epsilon, 1e-6, rows=rows, options=options)


def _ctx(seed: int) -> EngineContext:
    return EngineContext(rng=RandomSource.seeded(seed))


# ------------------------------------------------------------------------------------------ plan
def test_plan_takes_no_data_and_fits_the_budget() -> None:
    assert list(inspect.signature(TabularEngine.plan).parameters) == ["self", "schema", "request"]
    plan = ENGINE.plan(small_schema(), _request(1.0, model="tree"))
    assert plan.cost.epsilon <= 1.0
    assert plan.cost.epsilon >= 0.97  # calibrated to the budget, not far below it
    assert plan.cost.delta == 1e-6
    steps = [item.step for item in plan.transcript]
    # count, DP bounds + bins for numeric, DP category selection, 4 one-ways, 3 selections, 3 edges
    assert steps[:1] == ["count"]
    assert {"bounds:score", "bins:score", "bounds:income", "bins:income"} <= set(steps)
    assert {"categories:grade", "categories:city"} <= set(steps)
    assert sum(s.startswith("one_way:") for s in steps) == 4
    assert sum(s.startswith("select:") for s in steps) == 3
    assert sum(s.startswith("two_way:") for s in steps) == 3
    assert group_events([item.event for item in plan.transcript]) == list(plan.events)
    assert sum(item.share for item in plan.transcript) == pytest.approx(1.0)
    plan.to_json()  # JSON-ready


def test_public_schema_and_fixed_rows_spend_nothing_on_the_schema_or_count() -> None:
    plan = ENGINE.plan(small_schema(public=True), _request(1.0, rows=50))
    steps = [item.step for item in plan.transcript]
    assert "count" not in steps
    # income has a public lower bound only: its upper bound is the one DP bound left.
    assert [s for s in steps if s.startswith(("bounds:", "categories:"))] == ["bounds:income"]
    assert {"bins:score", "bins:income"} <= set(steps)  # quantile bins by default


def test_split_is_overridable_and_shifts_noise() -> None:
    base = ENGINE.plan(small_schema(), _request(1.0, model="tree"))
    more_two_way = ENGINE.plan(small_schema(), _request(1.0, model="tree", split={"two_way": 2.0}))

    def sigma(plan: Any, step: str) -> float:
        return float(next(i for i in plan.transcript if i.step == step).noise["sigma"])

    assert sigma(more_two_way, "two_way:1") < sigma(base, "two_way:1")
    assert sigma(more_two_way, "one_way:score") > sigma(base, "one_way:score")


@pytest.mark.parametrize(
    "options", [{"split": {"nope": 1.0}}, {"numeric_bins": 1}, {"unknown_option": 1}, {"bins": "uniform"}]
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        ENGINE.plan(small_schema(), _request(1.0, **options))


def test_gaussian_plans_need_delta() -> None:
    with pytest.raises(InvalidRequest):
        ENGINE.plan(small_schema(), SynthesisRequest("tabular", 1.0, 0.0))


def test_unknown_column_kind_is_refused_at_plan_time() -> None:
    odd = ColumnSpec.model_construct(name="img", kind=cast(Any, "image"), description="")
    schema = DatasetSchema.model_construct(columns=(*small_schema().columns, odd), privacy_unit=PrivacyUnit())
    with pytest.raises(UnsupportedSchema) as info:
        ENGINE.plan(schema, _request())
    assert info.value.code == "unsupported_schema"


# ------------------------------------------------------------------------- charged == mechanisms run
def _instrument(monkeypatch: pytest.MonkeyPatch) -> list[events.DpEvent]:
    """Record every DP mechanism call as the event it amounts to, then run the real mechanism."""
    seen: list[events.DpEvent] = []

    def wrap(name: str, to_event: Callable[..., events.DpEvent]) -> None:
        real = getattr(mechanisms, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            seen.append(to_event(**kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(mechanisms, name, recorded)

    wrap("gaussian_mechanism", lambda sensitivity, sigma, rng: events.GaussianEvent(sigma, sensitivity))
    wrap(
        "discrete_gaussian_mechanism",
        lambda sensitivity, sigma, rng: events.DiscreteGaussianEvent(sigma, sensitivity),
    )
    wrap("exponential_mechanism", lambda sensitivity, epsilon, rng: events.ExponentialEvent(epsilon))
    wrap(
        "partition_selection",
        lambda epsilon, delta, max_partitions_contributed, rng: events.PartitionSelectionEvent(
            epsilon, delta, max_partitions_contributed
        ),
    )
    return seen


def test_charged_events_equal_the_mechanisms_run(
    monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame
) -> None:
    seen = _instrument(monkeypatch)
    plan = ENGINE.plan(small_schema(), _request(1.0))
    assert seen == []  # planning runs no mechanism
    out = ENGINE.run(plan, small_schema(), table, _ctx(1))
    assert group_events(seen) == list(plan.events)
    assert len(seen) == len(plan.transcript) == out.report["steps_run"]


def test_refusals_spend_nothing(monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame) -> None:
    seen = _instrument(monkeypatch)
    plan = ENGINE.plan(small_schema(), _request(1.0))
    with pytest.raises(DataMismatch) as info:
        ENGINE.run(plan, small_schema(), table.drop(columns=["city"]), _ctx(1))
    assert info.value.code == "data_mismatch"
    other = ENGINE.plan(small_schema(public=True), _request(1.0))
    with pytest.raises(PlanMismatch):
        ENGINE.run(other, small_schema(), table, _ctx(1))
    text_schema = DatasetSchema(
        columns=(*small_schema().columns, ColumnSpec(name="note", kind=ColumnKind.TEXT))
    )
    with pytest.raises(ModelUnavailable):
        ENGINE.run(ENGINE.plan(text_schema, _request(1.0)), text_schema, table, _ctx(1))
    assert seen == []


# ------------------------------------------------------------------------------------ DP hygiene
def test_a_value_in_one_row_never_appears_unless_selected() -> None:
    # A category and a numeric outlier held by one row. With delta_ps ~ 1e-7 per column the chance
    # that the category passes partition selection is below 1e-6 per run; the outlier's grid cell
    # must beat a 5-sigma threshold (p < 3e-7 per cell). False-failure rate over 12 runs: < 1e-4.
    table = small_table(300, seed=2)
    table.loc[7, "city"] = "secret-town-zq"
    table.loc[8, "income"] = 7.5e9
    schema = small_schema()
    plan = ENGINE.plan(schema, _request(4.0))
    for seed in range(12):
        out = ENGINE.run(plan, schema, table, _ctx(seed)).table
        assert "secret-town-zq" not in set(out["city"].dropna())
        assert out["income"].max() < 1e8
        assert not set(out["id"]) & set(table["id"].astype(str))


def test_public_categories_are_complete_no_other_is_produced() -> None:
    # A public category list is complete: "__other__" must never be sampled, even at a small epsilon
    # where the noisy OTHER cell would otherwise get mass (deterministic: the code does not exist).
    table = small_table(300)
    schema = small_schema(public=True)
    for model in ("tree", "independent", "adaptive"):
        plan = ENGINE.plan(schema, _request(0.3, model=model))
        for seed in range(4):
            out = ENGINE.run(plan, schema, table, _ctx(seed)).table
            for column in ("city", "grade"):
                assert set(out[column].dropna()) <= {"paris", "lyon", "nice", "high", "low"}


def test_public_categories_count_unlisted_values_as_null() -> None:
    table = small_table(300)
    table.loc[:40, "city"] = "marseille"  # frequent, but not in the (complete, says the schema) list
    schema = small_schema(public=True)
    out = ENGINE.run(ENGINE.plan(schema, _request(8.0)), schema, table, _ctx(3)).table
    assert set(out["city"].dropna()) <= {"paris", "lyon", "nice"}
    # ~10% nulls plus the 41 unlisted rows (~14%) become nulls: far more than the original 10%.
    assert out["city"].isna().mean() > 0.15


def test_synthesis_keeps_a_strong_dependence_at_large_epsilon(table: pd.DataFrame) -> None:
    schema = small_schema(public=True)
    out = ENGINE.run(ENGINE.plan(schema, _request(20.0, rows=2000, model="tree")), schema, table, _ctx(4))
    syn = out.table
    assert len(syn) == 2000 and list(syn.columns) == [c.name for c in schema.columns]
    assert ["score", "grade"] in out.report["tree"] or ["grade", "score"] in out.report["tree"]
    high = syn[syn["grade"] == "high"]["score"].astype(float)
    low = syn[syn["grade"] == "low"]["score"].astype(float)
    # Bins do not align exactly with 50: most of the mass must still sit on the right side.
    assert (high >= 45).mean() > 0.9 and (low <= 55).mean() > 0.9
    assert str(syn["score"].dtype) == "Int64"
    assert syn["score"].dropna().between(0, 100).all()


def test_dp_row_count_is_close_to_the_size(table: pd.DataFrame) -> None:
    schema = small_schema(public=True)
    out = ENGINE.run(ENGINE.plan(schema, _request(8.0)), schema, table, _ctx(5))
    assert abs(len(out.table) - len(table)) < 60  # sigma of the count is ~11 at this budget


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("model", ["adaptive", "tree"])
@pytest.mark.parametrize("case", ["empty", "one_row", "all_null", "inf_nan", "many_distinct"])
def test_odd_tables_give_a_documented_result(case: str, model: str) -> None:
    table = small_table(300, seed=6)
    schema = small_schema()
    if case == "empty":
        table = table.iloc[:0]
    elif case == "one_row":
        table = table.iloc[:1]
    elif case == "all_null":
        table["city"] = None
    elif case == "inf_nan":
        table["income"] = table["income"].astype(float)
        table.loc[:20, "income"] = np.inf
        table.loc[21:40, "income"] = -np.inf
        table.loc[41:60, "income"] = np.nan
        table["score"] = table["score"].astype(object)
        table.loc[61:70, "score"] = "not a number"
    elif case == "many_distinct":
        table = pd.concat([table] * 334, ignore_index=True).iloc[:100_000]
        table["city"] = [f"c{i}" for i in range(len(table))]
    out = ENGINE.run(ENGINE.plan(schema, _request(1.0, model=model)), schema, table, _ctx(7))
    syn = out.table
    assert list(syn.columns) == [c.name for c in schema.columns]
    income = syn["income"].dropna().astype(float)
    assert np.isfinite(income).all()
    if case == "many_distinct":
        assert set(syn["city"].dropna()) <= {"__other__"}  # no single-row value is ever selected
    if case == "all_null":
        assert syn["city"].isna().mean() > 0.8


def test_person_units_keep_at_most_k_rows_per_person() -> None:
    table = pd.DataFrame({"person": [1, 1, 1, 2, 2, None, None], "x": range(7)})
    schema = DatasetSchema(
        columns=(
            ColumnSpec(name="person", kind=ColumnKind.IDENTIFIER),
            ColumnSpec(name="x", kind=ColumnKind.NUMERIC, lower=0.0, upper=10.0),
        ),
        privacy_unit=PrivacyUnit(kind="person", person_column="person", max_rows_per_person=2),
    )
    kept = bound_contributions(table, schema, np.random.default_rng(0))
    assert kept["person"].value_counts().max() == 2
    assert kept["person"].isna().sum() == 2  # a null id is a person of its own
    plan = ENGINE.plan(schema, _request(1.0))
    assert all(item.noise.get("sensitivity", 2) == 2 for item in plan.transcript)
