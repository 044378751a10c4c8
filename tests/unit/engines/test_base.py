"""The engine interface: request validation, registry, noise calibration against the accountant."""

from __future__ import annotations

import math

import pytest

from safesynth.gateway.dp import events
from safesynth.gateway.dp.accountant import compose
from safesynth.gateway.dp.calibration import gaussian_sigma
from safesynth.gateway.engines import ENGINES, engine_names, get_engine
from safesynth.gateway.engines.base import (
    Engine,
    EngineError,
    InvalidRequest,
    SynthesisRequest,
    UnknownEngine,
    calibrate_noise_multiplier,
)


def test_registry_returns_engines_by_name() -> None:
    assert "tabular" in engine_names()
    engine = get_engine("tabular")
    assert engine.name == "tabular"
    assert isinstance(engine, Engine)
    assert set(engine_names()) == set(ENGINES)


def test_unknown_engine_is_a_typed_error() -> None:
    with pytest.raises(UnknownEngine) as info:
        get_engine("no-such-engine")
    assert info.value.code == "unknown_engine"
    assert isinstance(info.value, EngineError)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"delta": -1e-9}, "delta"),
        ({"rows": 0}, "rows"),
        ({"rows": True}, "rows"),
        ({"rows": 10**9}, "rows"),
    ],
)
def test_request_validation(kwargs: dict[str, object], fragment: str) -> None:
    base: dict[str, object] = {"engine": "tabular", "epsilon": 1.0, "delta": 1e-6}
    base.update(kwargs)
    with pytest.raises(InvalidRequest) as info:
        SynthesisRequest(**base)  # type: ignore[arg-type]
    assert info.value.code == "invalid_request"
    assert fragment in str(info.value)


def test_request_options_are_read_only() -> None:
    opts = {"numeric_bins": 8}
    req = SynthesisRequest("tabular", 1.0, 1e-6, options=opts)
    opts["numeric_bins"] = 99  # the request keeps its own copy
    assert req.options["numeric_bins"] == 8
    with pytest.raises(TypeError):
        req.options["numeric_bins"] = 3  # type: ignore[index]
    assert req.to_json()["epsilon"] == "1.0"


@pytest.mark.parametrize(("epsilon", "delta"), [(0.5, 1e-6), (1.0, 1e-5), (4.0, 1e-7)])
def test_calibration_matches_the_analytic_gaussian(epsilon: float, delta: float) -> None:
    # One Gaussian mechanism: the calibrated sigma must sit at the analytic-Gaussian sigma (the
    # accountant's best method for one Gaussian), within the bisection tolerance, and on the safe side.
    m = calibrate_noise_multiplier(
        lambda m: [events.GaussianEvent(sigma=m)], epsilon=epsilon, delta=delta, methods=None
    )
    assert compose([events.GaussianEvent(sigma=m)], delta=delta).epsilon <= epsilon
    assert m == pytest.approx(gaussian_sigma(epsilon, delta), rel=5e-3)


def test_calibration_refuses_an_impossible_budget() -> None:
    with pytest.raises(InvalidRequest):
        calibrate_noise_multiplier(
            lambda m: [events.PartitionSelectionEvent(epsilon=1.0, delta=1e-6)], epsilon=0.5, delta=1e-6
        )
