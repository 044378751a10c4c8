"""The gateway's 503 codes map to typed SDK errors that are still ServerErrors."""

from __future__ import annotations

import pytest

from safesynth.sdk import DataUnavailable, ModelUnavailable, ServerError
from safesynth.sdk.errors import error_for_problem
from safesynth.sdk.models import Problem


@pytest.mark.parametrize(
    ("code", "cls"), [("data_unavailable", DataUnavailable), ("model_unavailable", ModelUnavailable)]
)
def test_unavailable_codes_are_typed(code: str, cls: type[ServerError]) -> None:
    problem = Problem.model_validate(
        {"type": "about:blank", "title": "x", "status": 503, "code": code, "detail": "d"}
    )
    err = error_for_problem(503, problem)
    assert type(err) is cls
    assert isinstance(err, ServerError)
    assert err.code == code
