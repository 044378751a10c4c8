"""Fixtures for the ledger tests: a signer and a fresh store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safesynth.ledger import LedgerStore, Signer


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("test-log")


@pytest.fixture
def store(tmp_path: Path, signer: Signer) -> Iterator[LedgerStore]:
    s = LedgerStore.create(tmp_path / "ledger.db", signer, origin="test.example/ledger")
    yield s
    s.close()
