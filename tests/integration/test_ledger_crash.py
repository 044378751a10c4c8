"""Crash safety: a writer killed with SIGKILL mid-append leaves a store that opens, checks and verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safesynth.ledger import LedgerStore, Signer
from safesynth.ledger.verify import verify_export

WRITER = """
import sys
from safesynth.ledger import LedgerStore, Signer
store = LedgerStore.open(sys.argv[1], Signer.from_skey(sys.argv[2]))
i = 0
while True:
    r = store.append("spend/v1", {"i": i, "pad": "x" * (i % 700)}, actor="writer")
    sys.stdout.write(f"{r.seq}\\n")
    sys.stdout.flush()
    i += 1
"""

ROUNDS = 5


@pytest.mark.slow
def test_sigkill_during_appends(tmp_path: Path) -> None:
    signer = Signer.generate("crash")
    path = tmp_path / "ledger.db"
    LedgerStore.create(path, signer, origin="test.example/crash").close()
    rng = random.Random(20261123)  # fixed seed for the kill delays (the exact kill points vary with timing)
    acknowledged = -1
    for round_ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), signer.skey()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # wait for the writer to be appending, then kill it at a random moment
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.strip(), proc.stderr.read() if proc.stderr else "writer produced nothing"
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        seqs = [int(x) for x in (first + rest).split()]
        assert proc.returncode == -signal.SIGKILL
        store = LedgerStore.open(path, signer)  # self-check and fork guard pass
        size = store.size
        # every acknowledged append is durable; nothing beyond what was started exists
        assert seqs and seqs[-1] < size, (round_, seqs[-1], size)
        assert seqs[0] == acknowledged + 1
        acknowledged = size - 1
        for entry in store.entries(max(0, size - 3)):  # the last entries parse whole
            assert entry.payload["pad"] == "x" * (entry.payload["i"] % 700)
        assert store.full_check().size == size  # every leaf, node and checkpoint recomputed
        store.close()
    store = LedgerStore.open(path, signer)
    store.export(tmp_path / "export")
    store.close()
    assert verify_export(tmp_path / "export", signer.verifier()).tree_size == acknowledged + 1


BATCH_WRITER = """
import sys
from safesynth.ledger import Appender, AppendRequest, LedgerStore, Signer
store = LedgerStore.open(sys.argv[1], Signer.from_skey(sys.argv[2]))
mode = sys.argv[3]
b = 0
if mode == "many":  # explicit batches: every entry names its batch and its place in it
    while True:
        n = 1 + b % 97
        payloads = [{"batch": b, "k": k, "n": n, "pad": "y" * (k % 300)} for k in range(n)]
        rs = store.append_many([AppendRequest("spend/v1", p, "w") for p in payloads])
        sys.stdout.write(f"{rs[-1].seq}\\n")
        sys.stdout.flush()
        b += 1
else:  # pipelined: a producer that never waits; each ack is printed when its future resolves
    def ack(f):
        sys.stdout.write(f"{f.result().seq}\\n")
        sys.stdout.flush()
    with Appender(store, max_batch=64) as appender:
        i = 0
        while True:
            appender.submit("spend/v1", {"i": i, "pad": "z" * (i % 500)}, actor="w").add_done_callback(ack)
            i += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["many", "appender"])
def test_sigkill_during_batched_appends(tmp_path: Path, mode: str) -> None:
    """Killed mid-batch: whole batches or nothing, every acknowledged entry durable, the store valid."""
    signer = Signer.generate("crash")
    path = tmp_path / "ledger.db"
    LedgerStore.create(path, signer, origin="test.example/crash").close()
    rng = random.Random(20261124)  # fixed seed for the kill delays (the exact kill points vary with timing)
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", BATCH_WRITER, str(path), signer.skey(), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.strip(), proc.stderr.read() if proc.stderr else "writer produced nothing"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        acked = [int(x) for x in (first + rest).split()]
        assert proc.returncode == -signal.SIGKILL
        store = LedgerStore.open(path, signer)  # self-check and fork guard pass
        size = store.size
        assert max(acked) < size, (round_, max(acked), size)  # every acknowledged entry is durable
        if mode == "many":  # the store ends at a batch boundary: the last batch is whole
            last = store.get(size - 1).payload
            assert last["k"] == last["n"] - 1, last
            batch = [e.payload for e in store.entries(size - last["n"])]
            assert [p["k"] for p in batch] == list(range(last["n"]))
            assert {p["batch"] for p in batch} == {last["batch"]}
        assert store.full_check().size == size  # every leaf, node and checkpoint recomputed
        store.close()
    store = LedgerStore.open(path, signer)
    store.export(tmp_path / "export", checkpoint_interval=7)
    store.close()
    assert verify_export(tmp_path / "export", signer.verifier()).tree_size == size
