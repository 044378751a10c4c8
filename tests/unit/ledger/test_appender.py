"""The pipelined Appender: batches form, checks keep their order, acks mean durable and signed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from pathlib import Path

import pytest

from safesynth.ledger import (
    Appender,
    AppenderClosedError,
    AppendResult,
    LedgerError,
    LedgerStore,
    LedgerView,
    NonCanonicalNumberError,
    ReadOnlyLedgerError,
    Signer,
)
from safesynth.ledger.forkguard import read_guard
from safesynth.ledger.proofs import SignedCheckpoint


class Refused(Exception):
    """A check's refusal."""


def _gate() -> tuple[threading.Event, threading.Event, Callable[[LedgerView], None]]:
    """A check that holds the writer inside its first transaction until released."""
    entered, release = threading.Event(), threading.Event()

    def hold(view: LedgerView) -> None:
        entered.set()
        assert release.wait(10)

    return entered, release, hold


def test_submissions_queued_behind_a_busy_writer_form_batches(store: LedgerStore, signer: Signer) -> None:
    entered, release, hold = _gate()
    with Appender(store, max_batch=16) as appender:
        first = appender.submit("spend/v1", {"i": -1}, actor="a", check=hold)
        assert entered.wait(10)
        futures = [appender.submit("spend/v1", {"i": i}, actor="a") for i in range(40)]
        assert not any(f.done() for f in futures)
        release.set()
        results = [f.result(timeout=30) for f in [first, *futures]]
    assert [r.seq for r in results] == list(range(41))  # submission order
    assert appender.batches == 1 + 3  # the held one, then 40 queued entries in batches of <= 16
    verifier = signer.verifier()
    for r in results:  # every entry has its own signed checkpoint of size seq + 1
        assert isinstance(r, AppendResult)
        assert r.checkpoint.size == r.seq + 1
        assert r.checkpoint.note.verified_by([verifier]) == [verifier]
        assert store.checkpoint(r.seq + 1).text == r.checkpoint.text
    guard = read_guard(store.path)
    assert guard is not None and SignedCheckpoint.parse(guard).size == 41  # fork guard written
    assert store.full_check().size == 41


def test_checks_inside_a_batch_see_the_entries_before_them(store: LedgerStore) -> None:
    entered, release, hold = _gate()
    budget = 7

    def check(view: LedgerView) -> None:
        spent = sum(1 for e in view.entries(kinds=["spend/v1"]))
        if spent >= budget:
            raise Refused(spent)

    with Appender(store, max_batch=1000) as appender:
        appender.submit("hold/v1", {}, actor="a", check=hold)
        assert entered.wait(10)
        futures = [appender.submit("spend/v1", {"i": i}, actor="a", check=check) for i in range(20)]
        release.set()
        appender.flush()
        assert all(f.done() for f in futures)
    assert appender.batches == 2  # all 20 conditional requests ran in one transaction
    landed = [f for f in futures if f.exception() is None]
    refused = [f for f in futures if isinstance(f.exception(), Refused)]
    assert len(landed) == budget and len(refused) == 20 - budget
    assert landed == futures[:budget]  # the first ones, in order
    assert [e.payload["i"] for e in store.entries(kinds=["spend/v1"])] == list(range(budget))
    assert store.size == budget + 1


def test_a_bad_request_fails_alone(store: LedgerStore) -> None:
    with Appender(store) as appender:
        futures = [
            appender.submit("spend/v1", {"epsilon": 0.5 if i == 2 else "0.5"}, actor="a") for i in range(5)
        ]
    with pytest.raises(NonCanonicalNumberError):
        futures[2].result()
    assert [f.result().seq for i, f in enumerate(futures) if i != 2] == [0, 1, 2, 3]
    assert store.full_check().size == 4


def test_whole_batch_failure_reaches_every_future(tmp_path: Path, store: LedgerStore) -> None:
    reader = LedgerStore.open(store.path)  # no signer: read-only
    try:
        with Appender(reader) as appender:
            futures = [appender.submit("spend/v1", {"i": i}, actor="a") for i in range(3)]
        for f in futures:
            with pytest.raises(ReadOnlyLedgerError):
                f.result()
    finally:
        reader.close()
    assert store.size == 0


def test_acknowledged_entries_are_visible_to_another_connection(store: LedgerStore) -> None:
    done: list[int] = []
    with Appender(store) as appender:
        futures = [appender.submit("spend/v1", {"i": i}, actor="a") for i in range(50)]
        futures[-1].add_done_callback(lambda f: done.append(f.result().seq))
        last = futures[-1].result(timeout=30)
        other = LedgerStore.open(store.path)
        try:
            assert other.size >= last.seq + 1
            assert other.get(last.seq).payload == {"i": 49}
        finally:
            other.close()
    assert done == [49]


def test_cancel_before_the_batch_starts_and_close(store: LedgerStore) -> None:
    entered, release, hold = _gate()
    appender = Appender(store)
    appender.submit("hold/v1", {}, actor="a", check=hold)
    assert entered.wait(10)
    dropped: Future[AppendResult] = appender.submit("spend/v1", {"i": 0}, actor="a")
    kept = appender.submit("spend/v1", {"i": 1}, actor="a")
    assert dropped.cancel()
    release.set()
    assert kept.result(timeout=30).seq == 1
    with pytest.raises(CancelledError):
        dropped.result()
    appender.close()
    appender.close()  # idempotent
    with pytest.raises(AppenderClosedError) as info:
        appender.submit("spend/v1", {}, actor="a")
    assert info.value.code == "appender_closed"
    assert [e.kind for e in store.entries()] == ["hold/v1", "spend/v1"]


def test_bounded_queue_blocks_the_producer_not_the_results(store: LedgerStore) -> None:
    with Appender(store, max_batch=3, max_queue=2) as appender:
        futures = [appender.submit("spend/v1", {"i": i}, actor="a") for i in range(30)]
    assert [f.result().seq for f in futures] == list(range(30))
    assert appender.batches >= 10  # never more than max_batch per transaction
    with pytest.raises(LedgerError, match="at least 1"):
        Appender(store, max_batch=0)
