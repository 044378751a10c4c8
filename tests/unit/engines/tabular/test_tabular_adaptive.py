"""The adaptive model (AIM-style rounds, Bayesian network of degree 2): candidates, fit, sampling,
and the engine's plan and charged events with ``model="adaptive"``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit.engines.tabular.conftest import small_schema, small_table
from tests.unit.engines.tabular.test_tabular_engine import _instrument

from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import EngineContext, InvalidRequest, SynthesisRequest
from safesynth.gateway.engines.tabular.adaptive import (
    BayesNet,
    Factor,
    _fit_log_linear,
    candidate_sets,
    fit_adaptive,
)
from safesynth.gateway.engines.tabular.engine import TabularEngine
from safesynth.gateway.engines.tabular.model import Measurement
from safesynth.gateway.engines.tabular.planning import group_events
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

ENGINE = TabularEngine()


def _request(epsilon: float, rows: int | None = None, **options: Any) -> SynthesisRequest:
    return SynthesisRequest("tabular", epsilon, 1e-6, rows=rows, options={"model": "adaptive", **options})


# ------------------------------------------------------------------------------------ candidates
def test_first_round_candidates_are_all_pairs() -> None:
    cands = candidate_sets([], 4, [3, 3, 3, 3])
    assert cands == [(1, (0,)), (2, (0,)), (3, (0,)), (2, (1,)), (3, (1,)), (3, (2,))]


def test_later_candidates_are_new_columns_with_one_or_two_placed_parents() -> None:
    cands = candidate_sets([0, 2], 4, [3, 3, 3, 3])
    assert set(cands) == {(c, ps) for c in (1, 3) for ps in ((0,), (2,), (0, 2))}


def test_candidates_respect_the_cell_cap_and_fall_back_to_no_parent() -> None:
    cands = candidate_sets([0, 1], 3, [10, 10, 50], max_cells=600)
    assert set(cands) == {(2, (0,)), (2, (1,))}  # 10 * 10 * 50 = 5000 cells is too many
    assert candidate_sets([0], 2, [10, 1000], max_cells=600) == [(1, ())]


# ----------------------------------------------------------------------------------- fit, sample
def _exact_one_way(codes: np.ndarray, size: int) -> Measurement:
    counts = np.bincount(codes, minlength=size).astype(float)
    return Measurement(values=counts, variance=np.ones(size))


def test_noiseless_rounds_learn_a_three_way_interaction() -> None:
    # c = a XOR b: every pair is independent, only the 3-way marginal shows the structure (a tree
    # model cannot represent it). With exact measurements and an argmax choice, the network must put
    # two parents on the third column and reproduce the XOR in its samples. Deterministic given seed.
    gen = np.random.default_rng(0)
    n = 4000
    a = gen.integers(0, 2, n)
    b = gen.integers(0, 2, n)
    noise = gen.integers(0, 3, n)
    codes = np.stack([a, b, a ^ b, noise], axis=1).astype(np.int64)
    sizes = [2, 2, 2, 3]
    one_way = [_exact_one_way(codes[:, i], sizes[i]) for i in range(4)]
    net = fit_adaptive(
        codes,
        sizes,
        one_way,
        float(n),
        [1.0, 1.0, 1.0],
        lambda r, scores: int(np.argmax(scores)),
        lambda r, counts: counts,
        np.random.default_rng(1),
    )
    structure = net.parents()
    assert len(structure) == 4 and sorted(c for cols, _ in structure for c in cols) == [0, 1, 2, 3]
    with_two = [(cols, pars) for cols, pars in structure if len(pars) == 2]
    assert with_two and set(with_two[0][0] + with_two[0][1]) == {0, 1, 2}
    sample = net.sample(3000, np.random.default_rng(2))
    assert np.mean(sample[:, 2] == (sample[:, 0] ^ sample[:, 1])) > 0.99


def test_bayes_net_sampling_matches_its_tables() -> None:
    root = Factor(columns=(0,), parents=(), table=np.array([[0.25, 0.75]]))
    child = Factor(columns=(1,), parents=(0,), table=np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]))
    net = BayesNet(sizes=(2, 3), factors=(root, child))
    out = net.sample(1000, np.random.default_rng(3))
    # Controlled rounding: the root's counts are exact (250/750), the child's within one per group.
    assert int((out[:, 0] == 0).sum()) == 250
    assert np.all(out[out[:, 0] == 0, 1] == 0)
    assert abs(int((out[:, 1] == 1).sum()) - 375) <= 1


def test_a_pair_factor_round_trips_its_joint() -> None:
    joint = np.array([[0.1, 0.2, 0.0, 0.3, 0.4, 0.0]])  # columns (0, 1) with sizes 2 x 3
    net = BayesNet(sizes=(2, 3), factors=(Factor(columns=(0, 1), parents=(), table=joint),))
    out = net.sample(1000, np.random.default_rng(4))
    counts = np.bincount(out[:, 0] * 3 + out[:, 1], minlength=6)
    assert counts.tolist() == [100, 200, 0, 300, 400, 0]


def test_log_linear_factor_matches_every_measured_table() -> None:
    # Two measured conditionals of c, given a and given b (a, b independent in the sample): the
    # fitted conditional must reproduce both implied tables (iterative proportional fitting).
    gen = np.random.default_rng(8)
    sample = np.zeros((5000, 3), dtype=np.int64)
    sample[:, 0] = gen.integers(0, 2, 5000)
    sample[:, 1] = gen.integers(0, 3, 5000)
    given_a = np.array([[0.9, 0.1], [0.2, 0.8]])
    given_b = np.array([[0.7, 0.3], [0.5, 0.5], [0.4, 0.6]])
    factor = _fit_log_linear(2, [((0,), given_a), ((1,), given_b)], sample, [2, 3, 2], iterations=200)
    probs = np.zeros((5000, 2))
    for ps, theta in zip(factor.parent_sets, factor.thetas, strict=True):
        probs += theta[sample[:, ps[0]]]
    probs = np.exp(probs - probs.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    for col, target in ((0, given_a), (1, given_b)):
        for value in range(target.shape[0]):
            rows = sample[:, col] == value
            implied = probs[rows].mean(axis=0)
            # The two targets are only nearly compatible: allow a small residual.
            assert np.allclose(implied, target[value], atol=0.03)
    assert factor.parents == (0, 1)


# ------------------------------------------------------------------------------------------ engine
def test_too_few_rounds_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        ENGINE.plan(small_schema(), _request(1.0, rounds=2))  # 4 columns need at least 3


def test_adaptive_plan_interleaves_rounds_and_fits_the_budget() -> None:
    plan = ENGINE.plan(small_schema(), _request(1.0))
    assert plan.cost.epsilon <= 1.0
    steps = [item.step for item in plan.transcript]
    rounds = [s for s in steps if s.startswith(("select:", "measure:"))]
    assert rounds == [f"{kind}:{r}" for r in range(1, 7) for kind in ("select", "measure")]  # 2 (d-1)
    assert not any(s.startswith("two_way:") for s in steps)
    assert sum(item.share for item in plan.transcript) == pytest.approx(1.0)


def test_adaptive_charged_events_equal_the_mechanisms_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _instrument(monkeypatch)
    schema = small_schema()
    plan = ENGINE.plan(schema, _request(1.0))
    assert seen == []
    out = ENGINE.run(plan, schema, small_table(), EngineContext(rng=RandomSource.seeded(5)))
    assert group_events(seen) == list(plan.events)
    assert len(seen) == len(plan.transcript) == out.report["steps_run"]
    assert len(out.report["network"]) == 4  # one factor per column


def test_adaptive_engine_keeps_a_three_way_interaction_at_large_epsilon() -> None:
    gen = np.random.default_rng(6)
    n = 3000
    a = gen.choice(np.array(["x", "y"], dtype=object), n)
    b = gen.choice(np.array(["u", "v"], dtype=object), n)
    c = np.where((a == "x") == (b == "u"), "same", "diff").astype(object)
    table = pd.DataFrame({"a": a, "b": b, "c": c, "d": gen.integers(0, 10, n).astype(float)})
    schema = DatasetSchema(
        columns=(
            ColumnSpec(name="a", kind=ColumnKind.CATEGORICAL, categories=("x", "y")),
            ColumnSpec(name="b", kind=ColumnKind.CATEGORICAL, categories=("u", "v")),
            ColumnSpec(name="c", kind=ColumnKind.CATEGORICAL, categories=("same", "diff")),
            ColumnSpec(name="d", kind=ColumnKind.NUMERIC, integer=True, lower=0.0, upper=9.0),
        )
    )
    out = ENGINE.run(
        ENGINE.plan(schema, _request(10.0, rows=3000)),
        schema,
        table,
        EngineContext(rng=RandomSource.seeded(7)),
    ).table
    agree = ((out["a"] == "x") == (out["b"] == "u")) == (out["c"] == "same")
    # An independent or tree model gives ~50%; at epsilon 10 the 3-way table is nearly exact.
    assert agree.mean() > 0.9
