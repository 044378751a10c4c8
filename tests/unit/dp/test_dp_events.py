"""Privacy events: frozen, canonical JSON with decimal strings, strict parsing, typed errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from safesynth.gateway.dp.errors import InvalidParameter
from safesynth.gateway.dp.events import (
    EVENT_KINDS,
    ApproxDpEvent,
    ComposedEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    ExponentialEvent,
    GaussianEvent,
    LaplaceEvent,
    PartitionSelectionEvent,
    PureDpEvent,
    ZCdpEvent,
    event_from_json,
    events_from_json,
    flatten,
)

ALL = [
    GaussianEvent(2.5, 1.0, 3),
    LaplaceEvent(10.0, 2.0),
    DiscreteGaussianEvent(4.0, 2, 5),
    DiscreteLaplaceEvent(2.0, 1),
    ExponentialEvent(0.1, count=5),
    PureDpEvent(0.5),
    ApproxDpEvent(0.5, 1e-8, 2),
    ZCdpEvent(0.01),
    PartitionSelectionEvent(1.0, 1e-8, 3),
    ComposedEvent((GaussianEvent(1.0), ComposedEvent((ExponentialEvent(0.2),)))),
]


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.kind)
def test_json_round_trip_and_canonical_form(event: object) -> None:
    assert isinstance(
        event,
        GaussianEvent
        | LaplaceEvent
        | DiscreteGaussianEvent
        | DiscreteLaplaceEvent
        | ExponentialEvent
        | PureDpEvent
        | ApproxDpEvent
        | ZCdpEvent
        | PartitionSelectionEvent
        | ComposedEvent,
    )
    obj = event.to_json()
    assert obj["kind"] == event.kind
    assert list(obj) == sorted(obj)
    text = json.dumps(obj)
    assert event_from_json(json.loads(text)) == event
    for key, value in obj.items():
        if key in {"sigma", "scale", "epsilon", "delta", "rho"}:
            assert isinstance(value, str) and float(value) == getattr(event, key)


def test_every_kind_is_registered_and_versioned() -> None:
    assert {e.kind for e in ALL} == set(EVENT_KINDS)
    assert all(k.endswith("/v1") for k in EVENT_KINDS)


def test_events_are_frozen() -> None:
    e = GaussianEvent(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.sigma = 2.0  # type: ignore[misc]


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda v: GaussianEvent(v), "sigma"),
        (lambda v: GaussianEvent(1.0, v), "sensitivity"),
        (lambda v: LaplaceEvent(v), "scale"),
        (lambda v: ExponentialEvent(v), "epsilon"),
        (lambda v: ZCdpEvent(v), "rho"),
    ],
)
def test_bad_numbers_name_the_parameter(factory: object, name: str, bad: float) -> None:
    assert callable(factory)
    with pytest.raises(InvalidParameter) as info:
        factory(bad)
    assert info.value.parameter == name
    assert info.value.code == "invalid_parameter"


def test_bad_delta_count_and_integer_sensitivity() -> None:
    with pytest.raises(InvalidParameter, match="delta"):
        ApproxDpEvent(1.0, 1.0)
    with pytest.raises(InvalidParameter, match="count"):
        GaussianEvent(1.0, count=0)
    with pytest.raises(InvalidParameter, match="sensitivity"):
        DiscreteGaussianEvent(1.0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="count"):
        GaussianEvent(1.0, count=True)


def test_parser_is_strict() -> None:
    with pytest.raises(InvalidParameter) as info:
        event_from_json({"kind": "gaussian/v9", "sigma": "1"})
    assert info.value.parameter == "kind"
    with pytest.raises(InvalidParameter) as info:
        event_from_json({"kind": "gaussian/v1", "sigma": "1", "epsilon": "3"})
    assert info.value.parameter == "epsilon"
    with pytest.raises(InvalidParameter) as info:
        event_from_json({"kind": "gaussian/v1", "sigma": "abc"})
    assert info.value.parameter == "sigma"
    with pytest.raises(InvalidParameter):
        event_from_json({"kind": "gaussian/v1"})
    with pytest.raises(InvalidParameter):
        events_from_json("nope")
    assert events_from_json({"kind": "pure_dp/v1", "epsilon": "1"}) == [PureDpEvent(1.0)]


def test_flatten_expands_nesting_in_order() -> None:
    nested = ComposedEvent((GaussianEvent(1.0), ComposedEvent((ExponentialEvent(0.2), PureDpEvent(1.0)))))
    assert flatten([nested, LaplaceEvent(1.0)]) == [
        GaussianEvent(1.0),
        ExponentialEvent(0.2),
        PureDpEvent(1.0),
        LaplaceEvent(1.0),
    ]
