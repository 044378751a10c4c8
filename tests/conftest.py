"""Shared test configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Pin BLAS/OpenMP threads: the machine has 2 cores and tests run beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "2")

#: Real public data sets copied from the workplace's shared data (provenance in tests/data/SOURCES.md).
DATA_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real public data sets (adult, drug reviews, PUMS, SMS spam, sentiment)."""
    return DATA_DIR
