"""Wire models: unknown fields refused, strict scalars, size limits, JSON and Python agree."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from safesynth.sdk import models as m
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

SHA = "0f" * 32
SCHEMA = DatasetSchema(columns=(ColumnSpec(name="age", kind=ColumnKind.NUMERIC, lower=0, upper=120),))

VALID: dict[type[BaseModel], dict[str, Any]] = {
    m.SynthesisRequest: {"engine": "tabular", "rows": 10, "epsilon": 1.0, "purpose": "tests"},
    m.QueryRequest: {"kind": "mean", "column": "age", "epsilon": 0.5, "purpose": "p", "bounds": [0, 120]},
    m.TokenCreate: {"name": "ana", "role": "analyst", "datasets": ["ds"]},
    m.DatasetCreate: {
        "id": "ds",
        "dataset_schema": SCHEMA.model_dump(mode="json"),
        "budget": {"epsilon_total": 3, "delta_total": 1e-6},
    },
    m.Job: {"id": "j1", "dataset": "ds", "state": "running", "progress": 0.5},
    m.Release: {
        "id": SHA,
        "sha256": SHA,
        "dataset": "ds",
        "rows": 5,
        "columns": ["age"],
        "spend_seq": 1,
        "epsilon": 1,
        "delta": 0,
        "created": "2026-01-01T00:00:00Z",
    },
    m.Budget: {
        "dataset": "ds",
        "epsilon_total": 3,
        "delta_total": 1e-6,
        "epsilon_spent": 1,
        "delta_spent": 0,
        "epsilon_remaining": 2,
        "delta_remaining": 1e-6,
    },
    m.PlanResponse: {"dataset": "ds", "engine": "tabular", "epsilon": 0.9, "delta": 0, "method": "rdp"},
}


@pytest.mark.parametrize("model", list(VALID), ids=lambda t: t.__name__)
def test_valid_examples_round_trip(model: type[BaseModel]) -> None:
    obj = model.model_validate(VALID[model])
    again = model.model_validate_json(obj.model_dump_json())
    assert again == obj
    # FastAPI validates parsed JSON in Python mode: both modes must agree.
    assert model.model_validate(json.loads(obj.model_dump_json())) == obj


@pytest.mark.parametrize("model", list(VALID), ids=lambda t: t.__name__)
def test_unknown_fields_are_refused(model: type[BaseModel]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({**VALID[model], "surprise": 1})


def test_models_are_frozen() -> None:
    req = m.SynthesisRequest.model_validate(VALID[m.SynthesisRequest])
    with pytest.raises(ValidationError):
        req.epsilon = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epsilon", "1.0"),  # no string coercion
        ("epsilon", True),  # no bool as number
        ("epsilon", 0),  # epsilon > 0
        ("epsilon", -1),
        ("epsilon", 100.5),  # above the per-request limit
        ("epsilon", float("nan")),
        ("epsilon", float("inf")),
        ("delta", 0.5),  # delta is a small probability
        ("delta", -1e-9),
        ("rows", 10.0),  # no float as int
        ("rows", "10"),
        ("rows", 0),
        ("rows", 10**9),
        ("purpose", ""),
        ("purpose", "x" * 501),
        ("engine", "gan"),
        ("options", {f"k{i}": i for i in range(65)}),
    ],
)
def test_synthesis_request_refuses(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        m.SynthesisRequest.model_validate({**VALID[m.SynthesisRequest], field: value})


def test_epsilon_integer_is_accepted_as_float() -> None:
    req = m.SynthesisRequest.model_validate({**VALID[m.SynthesisRequest], "epsilon": 2})
    assert isinstance(req.epsilon, float)
    assert req.epsilon == 2.0


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "sum", "column": None},  # needs a column
        {"bounds": [5, 1]},  # lower < upper
        {"kind": "quantiles", "quantiles": []},
        {"kind": "mean", "quantiles": [0.5]},
        {"kind": "histogram", "bins": [0, 0]},
        {"kind": "mean", "bins": [0, 1]},
        {"filters": [{"column": "age", "op": "in", "value": 3}]},  # in takes a list
        {"filters": [{"column": "age", "op": "eq", "value": [1, 2]}]},
        {"filters": [{"column": "age", "op": "like", "value": "x"}]},
        {"filters": [{"column": "age", "op": "eq", "value": 1}] * 17},
        {"kind": "median"},
    ],
)
def test_query_request_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.QueryRequest.model_validate({**VALID[m.QueryRequest], **changes})


def test_query_request_accepts_filters_and_quantiles() -> None:
    q = m.QueryRequest.model_validate(
        {
            "kind": "quantiles",
            "column": "age",
            "quantiles": [0.25, 0.5],
            "filters": [
                {"column": "sex", "op": "in", "value": ["F", "M"]},
                {"column": "age", "op": "ge", "value": 18},
            ],
            "epsilon": 1,
            "purpose": "p",
        }
    )
    assert q.filters[0].value == ("F", "M")
    assert q.quantiles == (0.25, 0.5)


def test_release_id_is_its_sha256() -> None:
    with pytest.raises(ValidationError, match="sha256"):
        m.Release.model_validate({**VALID[m.Release], "id": "1e" * 32})
    with pytest.raises(ValidationError):
        m.Release.model_validate({**VALID[m.Release], "id": "XYZ", "sha256": "XYZ"})


def test_dataset_id_cannot_traverse_paths() -> None:
    for bad in ("../etc", "a/b", "", ".hidden", "a" * 200, "a b"):
        with pytest.raises(ValidationError):
            m.DatasetCreate.model_validate({**VALID[m.DatasetCreate], "id": bad})


def test_budget_spec_limits() -> None:
    with pytest.raises(ValidationError):
        m.BudgetSpec(epsilon_total=0)
    with pytest.raises(ValidationError):
        m.BudgetSpec(epsilon_total=1, delta_total=0.2)
    assert m.BudgetSpec(epsilon_total=3).delta_total == 1e-6


def test_job_states_and_done() -> None:
    assert not m.Job.model_validate(VALID[m.Job]).done
    assert m.Job.model_validate({**VALID[m.Job], "state": "cancelled"}).done
    with pytest.raises(ValidationError):
        m.Job.model_validate({**VALID[m.Job], "state": "paused"})
    with pytest.raises(ValidationError):
        m.Job.model_validate({**VALID[m.Job], "progress": 1.5})


def test_token_created_hides_secret_in_repr() -> None:
    info = {"id": "t1", "name": "n", "role": "admin", "created_at": "2026-01-01T00:00:00Z"}
    created = m.TokenCreated.model_validate({"info": info, "token": "s3cr3t-" + "x" * 40})
    assert "s3cr3t" not in repr(created)
    assert created.token.startswith("s3cr3t")


def test_problem_keeps_extension_members() -> None:
    p = m.Problem.model_validate(
        {"title": "t", "status": 409, "code": "budget_exhausted", "epsilon_remaining": 0.2, "job_id": "j"}
    )
    assert p.epsilon_remaining == 0.2
    assert p.model_extra == {"job_id": "j"}


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(epsilon=_json_scalars, rows=_json_scalars, delta=_json_scalars)
def test_json_and_python_validation_agree(epsilon: object, rows: object, delta: object) -> None:
    """Whatever a client sends, the SDK (JSON mode) and FastAPI (Python mode) decide the same."""
    raw = json.dumps({"epsilon": epsilon, "rows": rows, "delta": delta, "purpose": "p"})
    outcomes: list[m.SynthesisRequest | None] = []
    for validate in (
        m.SynthesisRequest.model_validate_json,
        lambda s: m.SynthesisRequest.model_validate(json.loads(s)),
    ):
        try:
            outcomes.append(validate(raw))
        except ValidationError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]
    if outcomes[0] is not None:
        assert isinstance(outcomes[0].epsilon, float) and 0 < outcomes[0].epsilon <= m.MAX_REQUEST_EPSILON
