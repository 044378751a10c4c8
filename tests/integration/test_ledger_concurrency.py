"""Four processes race conditional appends against one store: exactly the admitted total lands."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path

import pytest

from safesynth.ledger import LedgerStore, LedgerView, Signer

PROCESSES = 4
ATTEMPTS = 500
ADMITTED = 150


class Refused(Exception):
    """The check's refusal (the budget is exhausted)."""


def _worker(path: str, skey: str, worker: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = LedgerStore.open(path, Signer.from_skey(skey))
    rng = random.Random(worker)
    landed = refused = 0

    def check(view: LedgerView) -> None:
        if rng.random() < 0.05:
            time.sleep(0.001)  # widen the window between reading the state and appending
        if view.size >= ADMITTED:
            raise Refused

    for i in range(ATTEMPTS):
        try:
            store.append("spend/v1", {"w": worker, "i": i}, actor=f"w{worker}", check=check)
            landed += 1
        except Refused:
            refused += 1
    store.close()
    out.put((worker, landed, refused))


@pytest.mark.slow
def test_four_processes_never_overspend(tmp_path: Path) -> None:
    signer = Signer.generate("race")
    path = tmp_path / "ledger.db"
    LedgerStore.create(path, signer, origin="test.example/race").close()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_worker, args=(str(path), signer.skey(), w, out)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(landed for _, landed, _ in results) == ADMITTED
    assert sum(landed + refused for _, landed, refused in results) == PROCESSES * ATTEMPTS
    store = LedgerStore.open(path, signer)
    assert store.size == ADMITTED
    assert [e.seq for e in store.entries()] == list(range(ADMITTED))  # gapless
    per_worker = {w: landed for w, landed, _ in results}
    for w in per_worker:
        assert sum(1 for e in store.entries() if e.payload["w"] == w) == per_worker[w]
    assert store.full_check().size == ADMITTED
    store.export(tmp_path / "export", checkpoint_interval=1)
    store.close()
    from safesynth.ledger.verify import verify_export

    assert verify_export(tmp_path / "export", signer.verifier()).tree_size == ADMITTED


def _pipelined_worker(path: str, skey: str, worker: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from safesynth.ledger import Appender

    store = LedgerStore.open(path, Signer.from_skey(skey))

    def check(view: LedgerView) -> None:
        if view.size >= ADMITTED:
            raise Refused

    with Appender(store, max_batch=50) as appender:
        futures = [
            appender.submit("spend/v1", {"w": worker, "i": i}, actor=f"w{worker}", check=check)
            for i in range(ATTEMPTS)
        ]
    landed = sum(1 for f in futures if f.exception() is None)
    refused = sum(1 for f in futures if isinstance(f.exception(), Refused))
    store.close()
    out.put((worker, landed, refused))


@pytest.mark.slow
def test_four_pipelined_processes_never_overspend(tmp_path: Path) -> None:
    """The same race with batches: each check sees the entries before it in its own batch too."""
    signer = Signer.generate("race")
    path = tmp_path / "ledger.db"
    LedgerStore.create(path, signer, origin="test.example/race").close()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_pipelined_worker, args=(str(path), signer.skey(), w, out))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(landed for _, landed, _ in results) == ADMITTED
    assert sum(landed + refused for _, landed, refused in results) == PROCESSES * ATTEMPTS
    store = LedgerStore.open(path, signer)
    assert [e.seq for e in store.entries()] == list(range(ADMITTED))
    assert store.full_check().size == ADMITTED
    store.close()
