"""Privacy events: frozen value objects describing each mechanism run, with a canonical JSON form.

An event carries the *noise parameters* of a mechanism (sigma, scale, sensitivity, count); the
accountant derives (epsilon, delta) from them. Callers never set epsilon for noise-based events.

JSON form (what the ledger stores)::

    {"kind": "gaussian/v1", "sigma": "2.5", "sensitivity": "1.0", "count": 3}

* ``kind`` names the event type *and its meaning*; privacy numbers are decimal strings (Python's
  shortest round-trip ``repr`` of the float, e.g. ``"1e-06"``) so no JSON parser rounds them;
  ``count`` (repetitions) and integer sensitivities of the discrete mechanisms are JSON integers.
* Evolution rule: a kind is never changed or removed once written to a ledger. A new meaning (a new
  field, a different sensitivity convention, ...) is a new kind (``gaussian/v2``), and the old kind
  keeps being parsed and accounted forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from safesynth.gateway.dp._validate import check_count, check_delta, check_positive, check_positive_int
from safesynth.gateway.dp.errors import InvalidParameter

__all__ = [
    "EVENT_KINDS",
    "ApproxDpEvent",
    "ComposedEvent",
    "DiscreteGaussianEvent",
    "DiscreteLaplaceEvent",
    "DpEvent",
    "ExponentialEvent",
    "GaussianEvent",
    "LaplaceEvent",
    "PartitionSelectionEvent",
    "PureDpEvent",
    "ZCdpEvent",
    "event_from_json",
    "events_from_json",
    "flatten",
]

JsonValue = str | int | list[Any] | dict[str, Any]


def _dec(x: float) -> str:
    """The canonical decimal string of a float (shortest round-trip representation)."""
    return repr(float(x))


def _parse_real(name: str, value: object) -> float:
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise InvalidParameter(name, f"not a decimal number: {value!r}") from None
        return out
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(name, "must be a decimal string")
    return float(value)


def _parse_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise InvalidParameter(name, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidParameter(name, f"must be an integer, got {value!r}")


@dataclass(frozen=True)
class DpEvent:
    """Base class of all privacy events (frozen; compare and hash by value)."""

    kind: ClassVar[str] = ""
    #: field name -> "real" (decimal string) | "int" (JSON integer) | "events"
    _schema: ClassVar[dict[str, str]] = {}

    def to_json(self) -> dict[str, JsonValue]:
        """Canonical JSON object: ``kind`` plus every field; reals as decimal strings."""
        out: dict[str, JsonValue] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            typ = self._schema[f.name]
            if typ == "real":
                out[f.name] = _dec(value)
            elif typ == "int":
                out[f.name] = int(value)
            else:
                out[f.name] = [e.to_json() for e in value]
        return dict(sorted(out.items()))

    def leaves(self) -> Iterator[DpEvent]:
        """The non-composite events this event consists of (itself for leaves)."""
        yield self


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class GaussianEvent(DpEvent):
    """``count`` runs of the Gaussian mechanism: noise N(0, sigma^2) per coordinate, L2 sensitivity."""

    sigma: float
    sensitivity: float = 1.0
    count: int = 1
    kind: ClassVar[str] = "gaussian/v1"
    _schema: ClassVar[dict[str, str]] = {"sigma": "real", "sensitivity": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "sigma", check_positive("sigma", self.sigma))
        _set(self, "sensitivity", check_positive("sensitivity", self.sensitivity))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class LaplaceEvent(DpEvent):
    """``count`` runs of the Laplace mechanism: noise Lap(scale) per coordinate, L1 sensitivity."""

    scale: float
    sensitivity: float = 1.0
    count: int = 1
    kind: ClassVar[str] = "laplace/v1"
    _schema: ClassVar[dict[str, str]] = {"scale": "real", "sensitivity": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "scale", check_positive("scale", self.scale))
        _set(self, "sensitivity", check_positive("sensitivity", self.sensitivity))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class DiscreteGaussianEvent(DpEvent):
    """``count`` runs of the discrete Gaussian N_Z(0, sigma^2) on integers, integer L2 sensitivity."""

    sigma: float
    sensitivity: int = 1
    count: int = 1
    kind: ClassVar[str] = "discrete_gaussian/v1"
    _schema: ClassVar[dict[str, str]] = {"sigma": "real", "sensitivity": "int", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "sigma", check_positive("sigma", self.sigma))
        _set(self, "sensitivity", check_positive_int("sensitivity", self.sensitivity))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class DiscreteLaplaceEvent(DpEvent):
    """``count`` runs of the discrete Laplace (pmf ~ exp(-|x|/scale)) on integers, integer L1 sensitivity."""

    scale: float
    sensitivity: int = 1
    count: int = 1
    kind: ClassVar[str] = "discrete_laplace/v1"
    _schema: ClassVar[dict[str, str]] = {"scale": "real", "sensitivity": "int", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "scale", check_positive("scale", self.scale))
        _set(self, "sensitivity", check_positive_int("sensitivity", self.sensitivity))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class ExponentialEvent(DpEvent):
    """``count`` runs of an epsilon-bounded-range selection (exponential mechanism, report-noisy-max
    with Gumbel noise): epsilon-DP and epsilon-BR (Durfee & Rogers 2019), accounted with the
    bounded-range RDP curve of Cesar & Rogers (2021)."""

    epsilon: float
    count: int = 1
    kind: ClassVar[str] = "exponential/v1"
    _schema: ClassVar[dict[str, str]] = {"epsilon": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "epsilon", check_positive("epsilon", self.epsilon))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class PureDpEvent(DpEvent):
    """``count`` runs of an arbitrary epsilon-DP mechanism."""

    epsilon: float
    count: int = 1
    kind: ClassVar[str] = "pure_dp/v1"
    _schema: ClassVar[dict[str, str]] = {"epsilon": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "epsilon", check_positive("epsilon", self.epsilon))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class ApproxDpEvent(DpEvent):
    """``count`` runs of an arbitrary (epsilon, delta)-DP mechanism."""

    epsilon: float
    delta: float
    count: int = 1
    kind: ClassVar[str] = "approx_dp/v1"
    _schema: ClassVar[dict[str, str]] = {"epsilon": "real", "delta": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "epsilon", check_positive("epsilon", self.epsilon))
        _set(self, "delta", check_delta("delta", self.delta))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class ZCdpEvent(DpEvent):
    """``count`` runs of a rho-zCDP mechanism (RDP epsilon(alpha) = rho * alpha)."""

    rho: float
    count: int = 1
    kind: ClassVar[str] = "zcdp/v1"
    _schema: ClassVar[dict[str, str]] = {"rho": "real", "count": "int"}

    def __post_init__(self) -> None:
        _set(self, "rho", check_positive("rho", self.rho))
        _set(self, "count", check_count("count", self.count))


@dataclass(frozen=True)
class PartitionSelectionEvent(DpEvent):
    """One run of noisy-threshold partition (key) selection: (epsilon, delta)-DP when each privacy
    unit contributes to at most ``max_partitions_contributed`` keys (bounded by the mechanism)."""

    epsilon: float
    delta: float
    max_partitions_contributed: int = 1
    kind: ClassVar[str] = "partition_selection/v1"
    _schema: ClassVar[dict[str, str]] = {
        "epsilon": "real",
        "delta": "real",
        "max_partitions_contributed": "int",
    }

    def __post_init__(self) -> None:
        _set(self, "epsilon", check_positive("epsilon", self.epsilon))
        _set(self, "delta", check_delta("delta", self.delta))
        _set(
            self,
            "max_partitions_contributed",
            check_positive_int("max_partitions_contributed", self.max_partitions_contributed),
        )


@dataclass(frozen=True)
class ComposedEvent(DpEvent):
    """Sequential composition of events (nesting allowed)."""

    events: tuple[DpEvent, ...]
    kind: ClassVar[str] = "composed/v1"
    _schema: ClassVar[dict[str, str]] = {"events": "events"}

    def __post_init__(self) -> None:
        evs = tuple(self.events)
        for e in evs:
            if not isinstance(e, DpEvent):
                raise InvalidParameter("events", f"not a DpEvent: {e!r}")
        _set(self, "events", evs)

    def leaves(self) -> Iterator[DpEvent]:
        for e in self.events:
            yield from e.leaves()


_KINDS: tuple[type[DpEvent], ...] = (
    GaussianEvent,
    LaplaceEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    ExponentialEvent,
    PureDpEvent,
    ApproxDpEvent,
    ZCdpEvent,
    PartitionSelectionEvent,
    ComposedEvent,
)
#: kind string -> event class (every kind ever written stays here).
EVENT_KINDS: dict[str, type[DpEvent]] = {cls.kind: cls for cls in _KINDS}

_PARSERS: dict[str, Callable[[str, object], object]] = {"real": _parse_real, "int": _parse_int}


def event_from_json(obj: object) -> DpEvent:
    """Parse the JSON form of an event (inverse of :meth:`DpEvent.to_json`); strict about fields."""
    if not isinstance(obj, Mapping):
        raise InvalidParameter("event", f"must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in EVENT_KINDS:
        raise InvalidParameter("kind", f"unknown event kind {kind!r}; known: {sorted(EVENT_KINDS)}")
    cls = EVENT_KINDS[kind]
    schema = cls._schema
    unknown = set(obj) - set(schema) - {"kind"}
    if unknown:
        raise InvalidParameter(sorted(unknown)[0], f"unknown field for {kind}")
    kwargs: dict[str, Any] = {}
    for name, typ in schema.items():
        if name not in obj:
            continue
        if typ == "events":
            value = obj[name]
            if not isinstance(value, list):
                raise InvalidParameter(name, "must be a list of events")
            kwargs[name] = tuple(event_from_json(v) for v in value)
        else:
            kwargs[name] = _PARSERS[typ](name, obj[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InvalidParameter("event", f"{kind}: {exc}") from None


def events_from_json(obj: object) -> list[DpEvent]:
    """Parse a JSON list of events (or a single event object)."""
    if isinstance(obj, Mapping):
        return [event_from_json(obj)]
    if not isinstance(obj, list):
        raise InvalidParameter("events", "must be a JSON list of event objects")
    return [event_from_json(o) for o in obj]


def flatten(events: Sequence[DpEvent] | DpEvent) -> list[DpEvent]:
    """All leaf events of ``events`` in order (composed events expanded)."""
    seq: Sequence[DpEvent] = [events] if isinstance(events, DpEvent) else events
    out: list[DpEvent] = []
    for e in seq:
        if not isinstance(e, DpEvent):
            raise InvalidParameter("events", f"not a DpEvent: {e!r}")
        out.extend(e.leaves())
    return out
