"""Shared test configuration."""

from __future__ import annotations

import os

# Pin BLAS/OpenMP threads: the machine has 2 cores and tests run beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "2")
