"""Ledger entries and their canonical bytes (RFC 8785 JSON behind a domain-separation tag).

An entry is ``(seq, kind, payload, timestamp, actor)``. Its canonical form is the RFC 8785 (JCS)
serialisation of ``{"actor", "kind", "payload", "seq", "timestamp"}``; the Merkle leaf is
``SHA-256(0x00 || ENTRY_TAG || canonical_json)``. Payloads are JSON objects of strings, integers
(|n| <= 2**53 - 1), booleans, nulls, lists and objects. Floats are refused with
:class:`NonCanonicalNumberError`: privacy figures travel as decimal strings (:func:`decimal_string`),
so that no reader anywhere rounds them differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import rfc8785

from safesynth.ledger.errors import InvalidEntryError, NonCanonicalNumberError
from safesynth.ledger.merkle import leaf_hash

__all__ = [
    "ENTRY_TAG",
    "MAX_ENTRY_BYTES",
    "Entry",
    "canonical_json",
    "decimal_string",
    "entry_leaf_hash",
    "format_timestamp",
    "parse_entry_json",
    "parse_json_payload",
    "scan_entry_json",
    "utc_now",
    "validate_kind",
]

#: Domain-separation tag prefixed to the canonical JSON of every entry before leaf hashing.
ENTRY_TAG = b"safesynth-ledger-entry/v1\n"
#: Upper bound on the canonical JSON of one entry.
MAX_ENTRY_BYTES = 1 << 20

_KIND_RE = re.compile(r"^[a-z][a-z0-9_.\-]{0,99}/v[1-9][0-9]{0,5}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_DECIMAL_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$")
_MAX_SAFE_INT = (1 << 53) - 1
_MAX_DEPTH = 32
_FIELDS = frozenset({"seq", "kind", "payload", "timestamp", "actor"})


def validate_kind(kind: str) -> str:
    """Return ``kind`` if it is a versioned kind such as ``"spend/v1"``; else raise InvalidEntryError."""
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise InvalidEntryError(
            f"entry kind {kind!r} is not a versioned kind like 'spend/v1' (lowercase name, '/v', a number)"
        )
    return kind


def decimal_string(value: Decimal | int | float | str) -> str:
    """Format a privacy figure as a plain decimal string (no exponent, no trailing zeros).

    Floats are converted through their shortest round-trip ``repr``, so every Python reader agrees.
    NaN and infinities are refused.
    """
    if type(value) is float:
        text = repr(value)
        if "e" not in text and "n" not in text:  # plain digits (no exponent, not nan/inf): as below
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return "0" if text == "-0" else text
    if isinstance(value, bool):
        raise InvalidEntryError("a boolean is not a privacy figure")
    try:
        if isinstance(value, float):
            dec = Decimal(repr(value))
        elif isinstance(value, int | Decimal):
            dec = Decimal(value)
        elif isinstance(value, str):
            dec = Decimal(value.strip())
        else:
            raise InvalidEntryError(f"cannot format {type(value).__name__} as a decimal string")
    except InvalidOperation as exc:
        raise InvalidEntryError(f"{value!r} is not a decimal number") from exc
    if not dec.is_finite():
        raise InvalidEntryError(f"{value!r} is not a finite number")
    text = format(dec.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    assert _DECIMAL_RE.match(text), text
    return text


class _Bad(Exception):
    """Internal: a bad value; parents prepend their key to ``parts`` on the way up."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.parts: list[str] = []


def _clean(value: Any, depth: int) -> Any:
    """Validate a JSON value and return a plain copy (dicts, lists, str, int, bool, None)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _Bad("int")
    if depth >= _MAX_DEPTH:
        raise _Bad("depth")
    if t is dict or (t is not list and isinstance(value, Mapping)):
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                err = _Bad("key")
                err.parts.append(f"[{key!r}]")
                raise err
            try:
                out[key] = _clean(item, depth + 1)
            except _Bad as err:
                err.parts.append(f".{key}")
                raise
        return out
    if t is list or t is tuple:
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_clean(item, depth + 1))
            except _Bad as err:
                err.parts.append(f"[{i}]")
                raise
        return items
    if isinstance(value, float | Decimal):
        raise _Bad("float")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return value[:]  # a str subclass (e.g. a StrEnum member) becomes its plain string
    if isinstance(value, int):
        return _clean(int(value), depth)
    raise _Bad(f"type {type(value).__name__}")


def _checked(value: Any, path: str) -> Any:
    """:func:`_clean` with the error turned into InvalidEntryError / NonCanonicalNumberError."""
    try:
        return _clean(value, 0)
    except _Bad as err:
        where = path + "".join(reversed(err.parts))
        if err.problem == "float":
            raise NonCanonicalNumberError(where) from None
        if err.problem == "int":
            raise InvalidEntryError(
                f"payload integer at {where} exceeds 2**53-1; write large numbers as decimal strings"
            ) from None
        if err.problem == "depth":
            raise InvalidEntryError(f"payload nests deeper than {_MAX_DEPTH} levels at {where}") from None
        if err.problem == "key":
            raise InvalidEntryError(f"payload object key at {where} is not a string") from None
        raise InvalidEntryError(f"payload value at {where} has unsupported {err.problem}") from None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-01-02T03:04:05.000006Z``."""
    if moment.tzinfo is None:
        raise InvalidEntryError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    """The current time as an entry timestamp (:func:`format_timestamp` of now)."""
    # isoformat of an aware UTC datetime with microseconds: "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# Outside these characters, sorting by code point equals RFC 8785's sorting by UTF-16 code unit.
_NEEDS_JCS = re.compile("[\ud800-\uffff]")
# json.dumps with these arguments builds this very encoder on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _jcs(plain: Any) -> bytes:
    """RFC 8785 bytes of a checked value (str keys; str, int <= 2**53, bool, None, lists, dicts).

    For this value domain the standard library's sorted, compact, non-ASCII-preserving JSON *is*
    RFC 8785 (same escapes, same integer form) whenever no character is at or above U+D800, where
    code-point and UTF-16 key order could differ; those rare texts go through the rfc8785 package.
    A property test checks the two agree.
    """
    text = _ENCODER.encode(plain)
    if not text.isascii() and _NEEDS_JCS.search(text):
        return bytes(rfc8785.dumps(plain))
    return text.encode("utf-8")


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` (after checking it holds no floats)."""
    plain = _checked(obj, "$")
    try:
        return _jcs(plain)
    except Exception as exc:  # e.g. lone surrogates have no UTF-8 form
        raise InvalidEntryError(f"value has no canonical JSON form: {exc}") from exc


def entry_leaf_hash(entry_json: bytes) -> bytes:
    """The Merkle leaf hash of an entry's canonical JSON: SHA-256(0x00 || ENTRY_TAG || json)."""
    return leaf_hash(ENTRY_TAG + entry_json)


@dataclass(frozen=True, eq=True)
class Entry:
    """One ledger entry. ``payload`` is a plain JSON object (treat it as read-only)."""

    seq: int
    kind: str
    payload: dict[str, Any]
    timestamp: str
    actor: str
    _canonical: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def build(
        cls, *, seq: int, kind: str, payload: Mapping[str, Any], actor: str, timestamp: str | None = None
    ) -> Entry:
        """Validate the parts and compute the canonical bytes (raises InvalidEntryError)."""
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidEntryError(f"seq must be a non-negative integer, got {seq!r}")
        validate_kind(kind)
        if not isinstance(payload, Mapping):
            raise InvalidEntryError("payload must be a JSON object (a mapping)")
        if not isinstance(actor, str) or not actor or len(actor) > 256:
            raise InvalidEntryError("actor must be a non-empty string of at most 256 characters")
        ts = utc_now() if timestamp is None else timestamp
        if not _TS_RE.fullmatch(ts):
            raise InvalidEntryError(f"timestamp {ts!r} is not RFC 3339 UTC with microseconds")
        plain = _checked(payload, "$.payload")
        try:
            body = _jcs({"seq": seq, "kind": kind, "payload": plain, "timestamp": ts, "actor": actor})
        except Exception as exc:  # e.g. lone surrogates have no UTF-8 form
            raise InvalidEntryError(f"entry has no canonical JSON form: {exc}") from exc
        if len(body) > MAX_ENTRY_BYTES:
            raise InvalidEntryError(f"entry is {len(body)} bytes; the limit is {MAX_ENTRY_BYTES}")
        return cls(seq=seq, kind=kind, payload=plain, timestamp=ts, actor=actor, _canonical=body)

    @property
    def canonical_bytes(self) -> bytes:
        """The RFC 8785 JSON of the entry (without the domain tag)."""
        return self._canonical

    @property
    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || ENTRY_TAG || canonical_bytes)."""
        return entry_leaf_hash(self._canonical)

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (the canonical fields)."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "payload": _clean(self.payload, 0),
            "timestamp": self.timestamp,
            "actor": self.actor,
        }


def _refuse_float(text: str) -> Any:
    raise NonCanonicalNumberError(f"<number {text}>")


def _refuse_constant(text: str) -> Any:
    raise InvalidEntryError(f"JSON constant {text} is not allowed")


# One decoder for every parse (json.loads with hooks builds a new decoder per call, which costs more
# than decoding a small entry).
_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_constant)


def _loads(data: str | bytes) -> Any:
    """Strict JSON: UTF-8 only, floats and NaN/Infinity refused (ValueError on malformed input)."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    return _DECODER.decode(text)


def scan_entry_json(data: bytes) -> tuple[dict[str, Any], int, str]:
    """Parse and check the structure of stored entry bytes, without building an :class:`Entry`.

    Returns ``(object, seq, kind)``. The checks are those of :func:`parse_entry_json` without
    ``check_canonical`` (offline verification hashes the bytes as they are, so it needs no more).
    """
    try:
        obj = _loads(data)
    except InvalidEntryError:
        raise
    except ValueError as exc:
        raise InvalidEntryError(f"entry is not valid JSON: {exc}") from exc
    if type(obj) is not dict or obj.keys() != _FIELDS:
        raise InvalidEntryError(f"entry must be an object with exactly the fields {sorted(_FIELDS)}")
    seq, kind, ts, actor = obj["seq"], obj["kind"], obj["timestamp"], obj["actor"]
    if type(seq) is not int or seq < 0:
        raise InvalidEntryError("entry seq must be a non-negative integer")
    if type(kind) is not str or not _KIND_RE.fullmatch(kind):
        validate_kind(kind)  # raises with the full message
    if type(obj["payload"]) is not dict:
        raise InvalidEntryError("entry payload must be an object")
    if type(ts) is not str or not _TS_RE.fullmatch(ts):
        raise InvalidEntryError("entry timestamp is malformed")
    if type(actor) is not str or not actor:
        raise InvalidEntryError("entry actor is malformed")
    return obj, seq, kind


def parse_entry_json(data: bytes, *, check_canonical: bool = True) -> Entry:
    """Parse stored entry bytes back into an :class:`Entry`.

    With ``check_canonical`` the bytes must equal the RFC 8785 form of what they parse to.
    """
    obj, seq, kind = scan_entry_json(data)
    if check_canonical:
        _checked(obj["payload"], "$.payload")
        if _jcs(obj) != bytes(data):
            raise InvalidEntryError("entry bytes are not in RFC 8785 canonical form")
    return Entry(
        seq=seq,
        kind=kind,
        payload=obj["payload"],
        timestamp=obj["timestamp"],
        actor=obj["actor"],
        _canonical=bytes(data),
    )


def parse_json_payload(text: str | bytes) -> dict[str, Any]:
    """Parse a JSON object meant as a payload, refusing floats (NonCanonicalNumberError)."""
    try:
        obj = _loads(text)
    except InvalidEntryError:
        raise
    except ValueError as exc:
        raise InvalidEntryError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEntryError("payload must be a JSON object")
    _checked(obj, "$")
    return obj
