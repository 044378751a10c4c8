"""DP bounds for sum, mean and quantiles over a numeric column without public bounds.

The bounds are a noisy histogram over a public grid (``safesynth.gateway.dp.bounds``), bought with a
documented share of the query's epsilon, planned before any data are read and charged in the same
spend as the statistic. Seeds are fixed; each statistical check states its false-failure rate.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from gw_fixtures import SCHEMA, Home, csv_bytes, make_home, require_dp

from safesynth.gateway.dp.bounds import bounds_event, bounds_grid, dp_bounds
from safesynth.gateway.dp.events import DpEvent, event_from_json
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.service.queries import DP_BOUNDS_SHARE, plan_query, run_query
from safesynth.sdk import models as wire
from safesynth.sdk.schema import DatasetSchema

require_dp()

OUTLIER = 7_777_777.7


def _no_bounds_schema() -> DatasetSchema:
    income = SCHEMA.columns[1].model_copy(update={"lower": None, "upper": None})
    return SCHEMA.model_copy(update={"columns": (SCHEMA.columns[0], income, *SCHEMA.columns[2:])})


def _epsilon(event: DpEvent) -> float:
    data = {key: str(value) for key, value in event.to_json().items()}
    count = float(data.get("count", "1"))
    if "epsilon" in data:
        return float(data["epsilon"]) * count
    return float(data["sensitivity"]) / float(data["scale"]) * count


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = make_home(tmp_path)
    home.gateway.register_dataset(
        home.principal("admin"),
        wire.DatasetCreate(
            id="nb", dataset_schema=_no_bounds_schema(), budget=wire.BudgetSpec(epsilon_total=100.0)
        ),
        upload=csv_bytes(2000),
        filename="x.csv",
    )
    yield home
    home.gateway.close()


# ------------------------------------------------------------------------------ the DP core function
def test_bounds_are_public_grid_edges_and_never_a_data_value() -> None:
    edges = set(bounds_grid()[1:-1].tolist()) | {0.0}
    rng = np.random.default_rng(3)  # test data, not DP noise
    values = np.concatenate([rng.uniform(10.0, 50.0, 5000), [OUTLIER]])
    for seed in range(20):
        lower, upper = dp_bounds(values, epsilon=1.0, sensitivity=1, rng=RandomSource.seeded(seed))
        assert lower in edges and upper in edges and lower < upper
        assert OUTLIER not in (lower, upper)


def test_a_single_row_moves_the_bounds_only_through_the_noisy_counts() -> None:
    """Same noise, data with and without one extreme row: identical bounds.

    The outlier's cell would need a noisy count of about 25 (0.5% of 5000 rows) to matter; with
    epsilon 1 a count of 1 gets there with probability < e^-23 per seed: false-failure rate < 1e-8.
    """
    rng = np.random.default_rng(4)  # test data, not DP noise
    base = rng.uniform(10.0, 50.0, 5000)
    with_outlier = np.concatenate([base, [OUTLIER]])
    for seed in range(20):
        a = dp_bounds(base, epsilon=1.0, sensitivity=1, rng=RandomSource.seeded(seed))
        b = dp_bounds(with_outlier, epsilon=1.0, sensitivity=1, rng=RandomSource.seeded(seed))
        assert a == b
        assert b[1] <= 64.0  # the cell of 50 is [2^5.5, 2^6): nothing from the outlier leaks in


def test_bounds_cover_the_bulk_of_the_data() -> None:
    """At epsilon 1 on 5000 rows, the bounds enclose the 1%..99% range (false-failure rate < 1e-6)."""
    rng = np.random.default_rng(5)  # test data, not DP noise
    values = rng.normal(-300.0, 100.0, 5000)
    lower, upper = dp_bounds(values, epsilon=1.0, sensitivity=1, rng=RandomSource.seeded(1))
    assert lower <= np.quantile(values, 0.01) and upper >= np.quantile(values, 0.99)
    assert lower >= -2048.0 and upper <= 0.0  # tight to a factor of about 2 (all data negative)


def test_bounds_event_epsilon() -> None:
    event = bounds_event(0.5, 3)
    assert _epsilon(event) == pytest.approx(0.5)


# ------------------------------------------------------------------------------ planning and running
@pytest.mark.parametrize(
    ("kind", "extra"),
    [("sum", {}), ("mean", {}), ("quantiles", {"quantiles": (0.25, 0.5, 0.75)})],
)
def test_plan_splits_epsilon_and_ran_equals_charged(kind: str, extra: dict[str, object]) -> None:
    schema = _no_bounds_schema()
    request = wire.QueryRequest.model_validate(
        {"kind": kind, "column": "income", "epsilon": 0.8, "purpose": "p", **extra}
    )
    plan = plan_query(schema, request)  # no data involved
    assert plan.bounds_epsilon == pytest.approx(0.8 * DP_BOUNDS_SHARE)
    assert plan.lower is None and plan.upper is None
    assert _epsilon(plan.events[0]) == pytest.approx(0.8 * DP_BOUNDS_SHARE)
    assert sum(_epsilon(e) for e in plan.events) == pytest.approx(0.8)
    frame = pd.DataFrame(
        {
            "age": [30] * 200,
            "income": np.linspace(0, 1000, 200),
            "city": ["Paris"] * 200,
            "smoker": ["no"] * 200,
        }
    )
    answer = run_query(plan, schema, frame, RandomSource.seeded(2))
    assert [kind for kind, _ in answer.ran] == [e.kind for e in plan.events]
    assert [eps for _, eps in answer.ran] == pytest.approx([_epsilon(e) for e in plan.events])
    assert any(note.startswith("DP bounds") for note in answer.notes)


def test_public_bounds_need_no_dp_bounds() -> None:
    request = wire.QueryRequest(kind="sum", column="income", bounds=(0, 10), epsilon=0.5, purpose="p")
    plan = plan_query(_no_bounds_schema(), request)
    assert plan.bounds_epsilon is None and len(plan.events) == 1


# ------------------------------------------------------------------------------ through the service
@pytest.mark.parametrize(
    ("kind", "extra"),
    [("sum", {}), ("mean", {}), ("quantiles", {"quantiles": (0.5,)})],
)
def test_spend_records_the_bounds_event_in_the_same_entry(
    home: Home, kind: str, extra: dict[str, object]
) -> None:
    admin = home.principal("admin")
    size = home.gateway.ledger.size
    body = wire.QueryRequest.model_validate(
        {"kind": kind, "column": "income", "epsilon": 1.0, "purpose": "p", **extra}
    )
    result = home.gateway.query(admin, "nb", body)
    entries = home.gateway.ledger.entries(start_seq=size)
    assert [e.kind for e in entries] == ["spend/v1"]  # one spend: bounds and statistic together
    events = [event_from_json(obj) for obj in entries[0].payload["events"]]
    assert events == list(plan_query(_no_bounds_schema(), body).events)
    assert events[0].kind == "discrete_laplace/v1" and _epsilon(events[0]) == pytest.approx(DP_BOUNDS_SHARE)
    assert math.isclose(result.epsilon, 1.0, rel_tol=1e-9)
    assert "DP bounds" in result.mechanism


def test_mean_with_dp_bounds_is_accurate_at_large_epsilon(home: Home) -> None:
    """epsilon 40 on 1600 train rows: noise on the mean is tiny; clipping to DP bounds (the 0.5% tails,
    widened to grid cells) moves the mean of a gamma(2, 20000) sample by well under 5%.
    False-failure rate < 1e-6."""
    admin = home.principal("admin")
    train = home.gateway.datasets.load("nb", "train")
    body = wire.QueryRequest(kind="mean", column="income", epsilon=40.0, purpose="p")
    mean = home.gateway.query(admin, "nb", body).value
    assert mean is not None and abs(mean - float(train["income"].mean())) < 0.05 * float(
        train["income"].mean()
    )
