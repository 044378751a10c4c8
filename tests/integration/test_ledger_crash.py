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
