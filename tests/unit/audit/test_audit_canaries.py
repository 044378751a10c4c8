"""Canary audits: canaries from the public schema only, committed coins, the one-run lower bound.

Positive control: a non-private engine (verbatim copy of its input) must give a large lower bound.
Negative control: an honest DP run (the tabular engine at epsilon 1) must give a bound below the
accountant's epsilon; the bound holds with 95% confidence, so this fixed-seed test would fail by
chance with probability at most 5% over seeds (it is deterministic for the seeds used).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import adult_schema, scenario
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.audit import Verdict
from safesynth.gateway.audit.canaries import (
    CanaryDesign,
    canary_scores,
    make_canaries,
    make_canary_design,
    run_canary_audit,
    score_canary_audit,
    with_canaries,
)
from safesynth.gateway.audit.errors import DesignMismatch, InvalidAuditInput
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines import get_engine
from safesynth.gateway.engines.base import EngineContext, EngineOutput, Plan, SynthesisRequest
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema, PrivacyUnit


class CopyEngine:
    """A non-private engine: returns its input verbatim (a positive control)."""

    name = "copy"

    def plan(self, schema: DatasetSchema, request: SynthesisRequest) -> Plan:
        return _plan(schema, request.epsilon)

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        return EngineOutput(table=data.reset_index(drop=True))


def _plan(schema: DatasetSchema, epsilon: float = 1.0) -> Plan:
    return get_engine("tabular").plan(schema, SynthesisRequest(engine="tabular", epsilon=epsilon, delta=1e-6))


def _mixed_schema() -> DatasetSchema:
    return DatasetSchema(
        columns=(
            ColumnSpec(name="pid", kind=ColumnKind.IDENTIFIER),
            ColumnSpec(name="color", kind=ColumnKind.CATEGORICAL, categories=("red", "green", "blue")),
            ColumnSpec(name="city", kind=ColumnKind.CATEGORICAL),
            ColumnSpec(name="age", kind=ColumnKind.NUMERIC, lower=18, upper=90, integer=True),
            ColumnSpec(name="income", kind=ColumnKind.NUMERIC),
            ColumnSpec(name="note", kind=ColumnKind.TEXT, max_length=40),
        ),
        privacy_unit=PrivacyUnit(kind="person", person_column="pid", max_rows_per_person=3),
    )


def test_canaries_come_from_the_public_schema_only() -> None:
    schema = _mixed_schema()
    canaries = make_canaries(schema, 200, np.random.default_rng(0))
    assert list(canaries.columns) == [c.name for c in schema.columns]
    assert canaries["pid"].is_unique  # each canary is its own person
    assert set(canaries["color"]) <= {"red", "green", "blue"}
    assert canaries["city"].str.startswith("cnry-").all() and canaries["city"].is_unique
    assert canaries["age"].between(18, 90).all() and (canaries["age"] == canaries["age"].round()).all()
    assert canaries["age"].nunique() > 50  # spread over the public range
    assert canaries["note"].str.len().le(40).all()
    assert not canaries.drop(columns="pid").duplicated().any()
    # same generator state, same canaries: nothing but the schema and the generator goes in
    again = make_canaries(schema, 200, np.random.default_rng(0))
    pd.testing.assert_frame_equal(canaries, again)


def test_design_commitment_and_public_view() -> None:
    design = make_canary_design(_mixed_schema(), 50, rng=np.random.default_rng(1))
    public = design.to_ledger_json()
    assert set(public) == {"version", "commitment", "n_canaries", "inclusion_probability", "source"}
    assert "cnry" not in repr(public)
    assert public["n_canaries"] == 50 and public["commitment"]["digest"] == design.commitment
    back = CanaryDesign.from_private_json(design.to_private_json())
    assert back.commitment == design.commitment
    assert np.array_equal(back.inclusion, design.inclusion)
    pd.testing.assert_frame_equal(back.canaries, design.canaries)
    forged = design.to_private_json()
    forged["inclusion"] = "".join("0" if c == "1" else "1" for c in forged["inclusion"])
    with pytest.raises(DesignMismatch):
        CanaryDesign.from_private_json(forged)


def test_bad_canary_counts_are_typed_errors() -> None:
    with pytest.raises(InvalidAuditInput):
        make_canary_design(_mixed_schema(), 3)
    with pytest.raises(InvalidAuditInput):
        make_canaries(_mixed_schema(), 1, np.random.default_rng(0))


@settings(max_examples=25, deadline=None)
@given(n_train=st.integers(min_value=1, max_value=40), n_canaries=st.integers(min_value=10, max_value=60))
def test_with_canaries_adds_exactly_the_included(n_train: int, n_canaries: int) -> None:
    schema = _mixed_schema()
    train = make_canaries(schema, max(n_train, 2), np.random.default_rng(n_train)).iloc[:n_train]
    design = make_canary_design(schema, n_canaries, rng=np.random.default_rng(n_canaries))
    data = with_canaries(train, design)
    assert len(data) == n_train + int(design.inclusion.sum())
    assert data.index.is_unique
    assert set(data["pid"]) == set(train["pid"]) | set(design.included["pid"])


def test_verbatim_copy_engine_gives_a_large_lower_bound() -> None:
    sc = scenario(11, n_registered=3000, n_independent=10)
    schema = adult_schema()
    design = make_canary_design(schema, 500, rng=np.random.default_rng(5))
    report = run_canary_audit(
        CopyEngine(), _plan(schema), schema, sc.train, design, EngineContext(rng=RandomSource.seeded(1))
    )
    assert report.verdict is Verdict.FAIL and report.rule == "dp-claim-refuted"
    assert report.epsilon_bound.value > 3.0  # every included canary is reproduced exactly
    assert report.auc == 1.0
    assert report.n_included == int(design.inclusion.sum())
    as_json = report.to_json()
    assert "cnry" not in repr(as_json)  # no canary identity leaves the audit
    assert report.to_ledger_json()["epsilon_bound"]["value"] == f"{report.epsilon_bound.value:.6g}"


def test_honest_dp_run_gives_a_bound_below_the_accountant() -> None:
    sc = scenario(12, n_registered=3000, n_independent=10)
    schema = adult_schema()
    plan = _plan(schema, epsilon=1.0)
    design = make_canary_design(schema, 300, rng=np.random.default_rng(6))
    report = run_canary_audit(
        get_engine("tabular"), plan, schema, sc.train, design, EngineContext(rng=RandomSource.seeded(2))
    )
    assert report.epsilon_bound.value < float(plan.cost.epsilon)
    assert report.verdict is Verdict.PASS
    assert report.synthetic_rows > 0


def test_scores_read_only_canaries_and_output() -> None:
    schema = _mixed_schema()
    design = make_canary_design(schema, 40, rng=np.random.default_rng(3))
    # an output holding exactly the included canaries: they score highest
    scores = canary_scores(design.canaries, design.included.reset_index(drop=True), schema)
    assert scores[design.inclusion].min() > scores[~design.inclusion].max()
    report = score_canary_audit(
        design, design.included.reset_index(drop=True), schema, accountant_epsilon=0.5, delta=1e-6
    )
    assert report.auc == 1.0 and report.tpr_at_fpr_1pct == 1.0


def test_empty_output_is_a_clear_result() -> None:
    schema = _mixed_schema()
    design = make_canary_design(schema, 40, rng=np.random.default_rng(4))
    empty: pd.DataFrame = design.canaries.iloc[0:0]
    report = score_canary_audit(design, empty, schema, accountant_epsilon=1.0, delta=0.0)
    assert report.epsilon_bound.value == 0.0 and report.verdict is Verdict.PASS
    assert any("empty" in n for n in report.notes)
    meta: Mapping[str, Any] = report.to_json()
    assert meta["synthetic_rows"] == 0
