"""DP bounds always come back finite and ordered, also when all the mass sits in an open end cell."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safesynth.gateway.dp.bounds import bounds_grid, dp_bounds
from safesynth.gateway.dp.rng import RandomSource


@pytest.mark.parametrize("value", [1e20, -1e20, 0.0, 3.0])
def test_bounds_are_finite_ordered_grid_edges(value: float) -> None:
    edges = set(bounds_grid().tolist()) | {0.0}
    for seed in range(5):
        lower, upper = dp_bounds(
            np.full(1000, value), epsilon=1.0, sensitivity=1, rng=RandomSource.seeded(seed)
        )
        assert math.isfinite(lower) and math.isfinite(upper) and lower < upper
        assert lower in edges and upper in edges
