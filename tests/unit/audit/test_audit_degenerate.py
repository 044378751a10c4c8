"""Degenerate and bad inputs: a clear result or a typed error, never a crash; generated and text data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import DATA, adult_schema, scenario

from safesynth.gateway.audit import (
    AuditError,
    ColumnsMismatch,
    DesignMismatch,
    InvalidAuditInput,
    Verdict,
    make_design,
    run_audit,
    split,
)
from safesynth.gateway.audit import controls as ctl
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

SCHEMA = adult_schema()


def _small() -> tuple:  # type: ignore[type-arg]
    s = scenario(31, n_registered=1500, n_independent=600)
    return s, SCHEMA


def test_release_identical_to_training_fails() -> None:
    s, schema = _small()
    r = run_audit(train=s.train, holdout=s.holdout, synthetic=s.train, schema=schema, design=s.design)
    assert r.verdict is Verdict.FAIL
    assert r.exact_matches[0].synthetic_copy_share == 1.0


def test_one_row_release_gives_a_result() -> None:
    s, schema = _small()
    r = run_audit(
        train=s.train, holdout=s.holdout, synthetic=s.independent.iloc[:1], schema=schema, design=s.design
    )
    assert r.verdict in set(Verdict)
    assert r.verdict is not Verdict.FAIL
    json.dumps(r.to_json())


def test_columns_differ_from_the_dataset() -> None:
    s, schema = _small()
    with pytest.raises(ColumnsMismatch) as e:
        run_audit(
            train=s.train,
            holdout=s.holdout,
            synthetic=s.independent.drop(columns=["age"]),
            schema=schema,
            design=s.design,
        )
    assert e.value.code == "columns_mismatch" and e.value.detail["missing"] == ["age"]
    with pytest.raises(ColumnsMismatch) as e2:
        run_audit(
            train=s.train,
            holdout=s.holdout,
            synthetic=s.independent.assign(ssn="123"),
            schema=schema,
            design=s.design,
        )
    assert e2.value.detail["extra"] == ["ssn"]


def test_design_and_input_errors_are_typed() -> None:
    s, schema = _small()
    with pytest.raises(DesignMismatch):
        run_audit(
            train=s.train.reset_index(drop=True),
            holdout=s.holdout,
            synthetic=s.independent,
            schema=schema,
            design=s.design,
        )
    with pytest.raises(InvalidAuditInput):
        run_audit(
            train=s.train, holdout=s.holdout, synthetic=s.independent.iloc[:0], schema=schema, design=s.design
        )
    with pytest.raises(AuditError):
        run_audit(
            train=s.train,
            holdout=s.holdout,
            synthetic=s.independent,
            schema=schema,
            design=s.design,
            delta=2.0,
        )


def _generated(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Mixed table: correlated Gaussians, a skewed count, two categoricals, nulls, all-null columns."""
    z = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    grp = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    x = pd.DataFrame(
        {
            "x": z[:, 0] + (grp == "a") * 2,
            "y": z[:, 1],
            "count": rng.poisson(3, size=n).astype(float),
            "grp": grp,
            "flag": np.where(rng.random(n) < 0.1, None, np.where(z[:, 1] > 0, "yes", "no")),
            "empty": np.full(n, np.nan),
            "empty_cat": pd.Series([None] * n, dtype=object),
        }
    )
    x.loc[rng.random(n) < 0.05, "x"] = np.nan
    return x


GEN_SCHEMA = DatasetSchema(
    columns=(
        ColumnSpec(name="x", kind=ColumnKind.NUMERIC),
        ColumnSpec(name="y", kind=ColumnKind.NUMERIC, lower=-5, upper=5),
        ColumnSpec(name="count", kind=ColumnKind.NUMERIC, integer=True),
        ColumnSpec(name="grp", kind=ColumnKind.CATEGORICAL, categories=("a", "b", "c", "d")),
        ColumnSpec(name="flag", kind=ColumnKind.CATEGORICAL),
        ColumnSpec(name="empty", kind=ColumnKind.NUMERIC),
        ColumnSpec(name="empty_cat", kind=ColumnKind.CATEGORICAL),
    )
)


@pytest.mark.slow
def test_generated_data_with_nulls_and_all_null_columns() -> None:
    rng = np.random.default_rng(5)
    reg = _generated(3000, rng)
    fresh = _generated(1500, rng)
    design = make_design(len(reg), rng=rng)
    train, holdout = split(reg, design)
    honest = run_audit(train=train, holdout=holdout, synthetic=fresh, schema=GEN_SCHEMA, design=design)
    assert honest.verdict is not Verdict.FAIL, honest.reason
    leaky = run_audit(
        train=train,
        holdout=holdout,
        synthetic=ctl.mixed_copies(train, fresh, 0.3, rng),
        schema=GEN_SCHEMA,
        design=design,
    )
    assert leaky.verdict is Verdict.FAIL, leaky.reason


def test_tiny_table_is_inconclusive_not_a_crash() -> None:
    rng = np.random.default_rng(2)
    reg = _generated(60, rng)
    design = make_design(len(reg), rng=rng)
    train, holdout = split(reg, design)
    r = run_audit(
        train=train, holdout=holdout, synthetic=_generated(30, rng), schema=GEN_SCHEMA, design=design
    )
    assert r.verdict is Verdict.INCONCLUSIVE
    assert r.rule in {"low-power", "pool-too-small"}


TEXT_SCHEMA = DatasetSchema(
    columns=(
        ColumnSpec(name="label", kind=ColumnKind.CATEGORICAL, categories=("ham", "spam")),
        ColumnSpec(name="text", kind=ColumnKind.TEXT),
    )
)


@pytest.mark.slow
def test_text_copies_fail_and_fresh_text_does_not() -> None:
    sms = pd.read_csv(DATA / "sms_spam.csv").drop_duplicates("text").reset_index(drop=True)
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(sms))
    reg = sms.iloc[perm[:3000]].reset_index(drop=True)
    fresh = sms.iloc[perm[3000:4500]].reset_index(drop=True)
    design = make_design(len(reg), rng=rng)
    train, holdout = split(reg, design)
    honest = run_audit(train=train, holdout=holdout, synthetic=fresh, schema=TEXT_SCHEMA, design=design)
    assert honest.verdict is not Verdict.FAIL, honest.reason
    leaky = run_audit(
        train=train,
        holdout=holdout,
        synthetic=ctl.mixed_copies(train, fresh, 0.05, rng),
        schema=TEXT_SCHEMA,
        design=design,
    )
    assert leaky.verdict is Verdict.FAIL, leaky.reason
    text_test = next(e for e in leaky.exact_matches if e.column == "text")
    assert text_test.fisher_p < 1e-6
    assert (
        leaky.text_overlap["text"]["train_ngram_overlap"]
        > leaky.text_overlap["text"]["holdout_ngram_overlap"]
    )


def test_ledger_json_is_aggregates_only() -> None:
    s, schema = _small()
    r = run_audit(train=s.train, holdout=s.holdout, synthetic=s.independent, schema=schema, design=s.design)
    payload = r.to_ledger_json()
    text = json.dumps(payload)
    assert payload["design_commitment"] == s.design.commitment
    assert payload["verdict"] == str(r.verdict)
    # numbers as decimal strings, counts as integers; nothing per record
    assert isinstance(payload["permutation_p"], str) and isinstance(payload["sizes"]["pool_members"], int)
    assert len(text) < 20_000

    def keys(obj: object) -> set[str]:
        if isinstance(obj, dict):
            return set(obj) | {k for v in obj.values() for k in keys(v)}
        if isinstance(obj, list):
            return {k for v in obj for k in keys(v)}
        return set()

    assert not keys(payload) & {"membership", "scores", "salt", "pool", "labels", "rows", "indices"}
    assert s.design.salt.hex() not in text
