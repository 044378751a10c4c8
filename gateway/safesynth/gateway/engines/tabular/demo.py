"""The tabular part of ``safesynth demo``: the drug-review sample synthesized with its review text.

``run_tabular_demo(data, schema, epsilon=..., delta=..., rows=..., ctx=...)`` plans (public inputs
only), checks the table's columns, runs, and returns the synthetic table with the plan and its cost.
The gateway's demo registers the data set and charges the plan through the ledger; this function is
the engine's side of it and can also be used directly (tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safesynth.gateway.engines.base import EngineContext, Plan, SynthesisRequest
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

__all__ = ["DemoResult", "drug_reviews_schema", "run_tabular_demo"]


@dataclass(frozen=True)
class DemoResult:
    """The synthetic table, the run's report, the plan and what it cost."""

    table: pd.DataFrame
    report: Mapping[str, Any]
    plan: Plan

    @property
    def epsilon(self) -> float:
        """The composed epsilon charged for the plan."""
        return float(self.plan.cost.epsilon)

    @property
    def delta(self) -> float:
        """The delta of the charge."""
        return float(self.plan.cost.delta)


def drug_reviews_schema(*, review_max_length: int = 240) -> DatasetSchema:
    """A public schema for ``drug_reviews_sample.csv``: no category lists, only the rating classes
    (public by construction) and a public lower bound for ``usefulCount``; ``date`` and ``split`` are
    left out."""
    return DatasetSchema(
        description="Patient reviews of drugs from Drugs.com, with the condition treated and a sentiment.",
        columns=(
            ColumnSpec(name="uci_id", kind=ColumnKind.IDENTIFIER, description="review id"),
            ColumnSpec(name="drugName", kind=ColumnKind.CATEGORICAL, description="name of the drug"),
            ColumnSpec(name="condition", kind=ColumnKind.CATEGORICAL, description="condition treated"),
            ColumnSpec(
                name="review",
                kind=ColumnKind.TEXT,
                description="the patient's review of the drug, first person",
                max_length=review_max_length,
            ),
            ColumnSpec(
                name="sentiment",
                kind=ColumnKind.CATEGORICAL,
                description="the patient's overall sentiment",
                categories=("positive", "negative", "neutral"),
            ),
            ColumnSpec(
                name="usefulCount",
                kind=ColumnKind.NUMERIC,
                integer=True,
                lower=0,
                description="number of readers who found the review useful",
            ),
        ),
    )


def run_tabular_demo(
    data: pd.DataFrame,
    schema: DatasetSchema,
    *,
    epsilon: float,
    ctx: EngineContext,
    delta: float = 1e-6,
    rows: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> DemoResult:
    """Plan, check and run the tabular engine on ``data``; returns table, report, plan and cost."""
    from safesynth.gateway.engines.tabular.engine import TabularEngine

    engine = TabularEngine()
    request = SynthesisRequest(
        engine="tabular", epsilon=epsilon, delta=delta, rows=rows, options=options or {}
    )
    plan = engine.plan(schema, request)
    engine.validate_data(schema, data)
    output = engine.run(plan, schema, data, ctx)
    return DemoResult(table=output.table, report=output.report, plan=plan)
