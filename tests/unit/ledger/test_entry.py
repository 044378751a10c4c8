"""Entries: canonical bytes (RFC 8785 + domain tag), floats refused, kinds versioned."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.ledger.entry import (
    ENTRY_TAG,
    Entry,
    canonical_json,
    decimal_string,
    entry_leaf_hash,
    parse_entry_json,
    parse_json_payload,
    validate_kind,
)
from safesynth.ledger.errors import InvalidEntryError, NonCanonicalNumberError

TS = "2026-01-02T03:04:05.000006Z"


def test_canonical_bytes_are_rfc8785_and_leaf_is_tagged() -> None:
    e = Entry.build(
        seq=3, kind="spend/v1", payload={"z": "1", "a": [True, None, 2]}, actor="tok_1", timestamp=TS
    )
    assert e.canonical_bytes == (
        b'{"actor":"tok_1","kind":"spend/v1","payload":{"a":[true,null,2],"z":"1"},"seq":3,'
        b'"timestamp":"2026-01-02T03:04:05.000006Z"}'
    )
    assert e.leaf_hash == hashlib.sha256(b"\x00" + ENTRY_TAG + e.canonical_bytes).digest()
    assert e.leaf_hash == entry_leaf_hash(e.canonical_bytes)
    assert parse_entry_json(e.canonical_bytes) == e


def test_unicode_is_canonical() -> None:
    e = Entry.build(seq=0, kind="note/v1", payload={"é": "\u2014", "b": "\n"}, actor="a", timestamp=TS)
    assert '"é":"—"'.encode() in e.canonical_bytes
    assert parse_entry_json(e.canonical_bytes).payload == {"é": "\u2014", "b": "\n"}


@pytest.mark.parametrize("bad", [0.1, 1e300, float("nan"), Decimal("0.1")])
def test_floats_are_refused_with_a_typed_error(bad: object) -> None:
    with pytest.raises(NonCanonicalNumberError) as info:
        Entry.build(seq=0, kind="spend/v1", payload={"events": [{"eps": bad}]}, actor="a")
    assert info.value.code == "float_in_payload"
    assert info.value.path == "$.payload.events[0].eps"


def test_parse_refuses_floats_and_non_canonical_bytes() -> None:
    with pytest.raises(NonCanonicalNumberError):
        parse_json_payload('{"eps": 0.5}')
    good = Entry.build(seq=0, kind="a/v1", payload={"x": 1}, actor="a", timestamp=TS).canonical_bytes
    with pytest.raises(InvalidEntryError):
        parse_entry_json(good.replace(b'"x":1', b'"x": 1'))
    with pytest.raises(NonCanonicalNumberError):
        parse_entry_json(good.replace(b'"x":1', b'"x":1.5'))
    with pytest.raises(InvalidEntryError):
        parse_entry_json(b"[]")


@pytest.mark.parametrize(
    "kind", ["spend", "Spend/v1", "spend/v0", "spend/1", "/v1", "a b/v1", "x" * 120 + "/v1"]
)
def test_kinds_must_be_versioned(kind: str) -> None:
    with pytest.raises(InvalidEntryError):
        validate_kind(kind)


def test_other_invalid_parts() -> None:
    for kwargs in (
        {"seq": -1},
        {"actor": ""},
        {"timestamp": "2026-01-02 03:04:05"},
        {"payload": {"n": 2**53}},
        {"payload": {1: "x"}},
        {"payload": {"s": {1, 2}}},
        {"payload": {"s": "\ud800"}},
    ):
        args = {"seq": 0, "kind": "a/v1", "payload": {}, "actor": "a", **kwargs}
        with pytest.raises(InvalidEntryError):
            Entry.build(**args)  # type: ignore[arg-type]


def test_decimal_string() -> None:
    assert decimal_string(0.1) == "0.1"
    assert decimal_string(1e-10) == "0.0000000001"
    assert decimal_string(Decimal("2.500")) == "2.5"
    assert decimal_string(100) == "100"
    assert decimal_string("-0.0") == "0"
    for bad in (float("inf"), "abc", True):
        with pytest.raises(InvalidEntryError):
            decimal_string(bad)  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimal_string_round_trips_floats(x: float) -> None:
    assert float(decimal_string(x)) == x


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_build_parse_round_trip(payload: dict[str, object]) -> None:
    e = Entry.build(seq=7, kind="x.y-z/v2", payload=payload, actor="actor", timestamp=TS)
    back = parse_entry_json(e.canonical_bytes)
    assert back.payload == e.payload and back.canonical_bytes == e.canonical_bytes


any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
unicode_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(any_text, unicode_values, max_size=5))
def test_canonical_json_equals_the_rfc8785_package(payload: dict[str, object]) -> None:
    import rfc8785

    assert canonical_json(payload) == rfc8785.dumps(payload)


def test_canonical_json_key_order_is_utf16() -> None:
    import rfc8785

    obj = {"\U0001f600": 1, "\ufb01": 2, "a": 3, "\x7f": 4, "\u2028": '\x01\x1f"\\'}
    assert canonical_json(obj) == rfc8785.dumps(obj)
    assert canonical_json(obj).index("\U0001f600".encode()) < canonical_json(obj).index("\ufb01".encode())


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimal_string_of_a_float_equals_the_decimal_normalized_form(value: float) -> None:
    """The float fast path (repr without exponent) gives exactly Decimal(repr).normalize() in
    fixed-point notation, the definition the slow path implements."""
    text = format(Decimal(repr(value)).normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    assert decimal_string(value) == text
    assert Decimal(decimal_string(value)) == Decimal(repr(value))


def test_utc_now_has_the_entry_timestamp_form() -> None:
    from datetime import UTC, datetime

    from safesynth.ledger.entry import format_timestamp, utc_now

    before = format_timestamp(datetime.now(UTC))
    now = utc_now()
    after = format_timestamp(datetime.now(UTC))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", now)
    assert before <= now <= after
