"""The final raking step (post-processing of DP releases), the unbiased controlled rounding, and the
decoding of codes to values without added multinomial noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.engines.tabular.conftest import small_schema

import safesynth.gateway.dp.mechanisms as mechanisms
import safesynth.gateway.engines.tabular.engine as engine_module
import safesynth.gateway.engines.tabular.raking as raking
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import EngineContext, SynthesisRequest
from safesynth.gateway.engines.tabular.adaptive import BayesNet
from safesynth.gateway.engines.tabular.domains import Compression, NumericDomain
from safesynth.gateway.engines.tabular.engine import TabularEngine
from safesynth.gateway.engines.tabular.grids import fine_grid
from safesynth.gateway.engines.tabular.model import Measurement, allocate
from safesynth.gateway.engines.tabular.raking import combine_one_way, rake_rows

ENGINE = TabularEngine()


# ------------------------------------------------------------------------------------ allocate
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 500),
    p=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_allocate_rounds_each_expectation_down_or_up_and_sums_to_n(n: int, p: list[float], seed: int) -> None:
    probs = np.array(p)
    counts = allocate(n, probs, np.random.default_rng(seed))
    assert counts.sum() == n
    share = probs / probs.sum() if probs.sum() > 0 else np.full(probs.size, 1.0 / probs.size)
    assert np.all(counts >= np.floor(n * share - 1e-9)) and np.all(counts <= np.ceil(n * share + 1e-9))


def test_allocate_is_unbiased_even_when_half_the_cells_round_up() -> None:
    # 20,000 draws of 7 rows over 5 cells: the mean count per cell is within 0.01 of 7 p (the standard
    # error is ~0.0035, so a false failure has probability < 1e-6). Sampling the extra rows without
    # replacement by their fractional parts (the former method) pulls the means towards uniform.
    gen = np.random.default_rng(0)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    mean = np.mean([allocate(7, p, gen) for _ in range(20_000)], axis=0)
    assert np.abs(mean - 7 * p).max() < 0.01


# ------------------------------------------------------------------------------ combine_one_way
def test_combine_one_way_is_the_inverse_variance_mean_of_all_measurements() -> None:
    one_way = [
        Measurement(values=np.array([10.0, 20.0]), variance=np.ones(2)),
        Measurement(values=np.array([5.0, 10.0, 15.0]), variance=np.full(3, 2.0)),
    ]
    table = np.array([[1.0, 5.0, 7.0], [3.0, 7.0, 7.0]])  # margins (13, 17) and (4, 12, 14)
    out = combine_one_way([2, 3], one_way, [((0, 1), table.ravel(), 1.0)], total=30.0)
    # Column 0: (y / 1 + margin / 3) / (1 + 1/3); column 1: (y / 2 + margin / 2) / (1/2 + 1/2).
    assert np.allclose(out[0], [10.75, 19.25])
    assert np.allclose(out[1], [4.5, 11.0, 14.5])


def test_combine_one_way_adds_extra_measurements_and_skips_unmeasured_cells() -> None:
    one_way = [Measurement(values=np.array([10.0, 20.0, 6.0]), variance=np.full(3, 4.0))]
    extra = Measurement(values=np.array([14.0, 16.0, 0.0]), variance=np.array([4.0, 12.0, np.inf]))
    out = combine_one_way([3], one_way, [], total=36.0, extra=[(0, extra)])
    # Cell 0: (10/4 + 14/4) / (1/2) = 12; cell 1: (20/4 + 16/12) / (1/4 + 1/12) = 19; cell 2: only 6.
    assert np.allclose(out[0], np.array([12.0, 19.0, 6.0]) - 1.0 / 3.0)  # then onto the simplex of 36


def test_an_extra_measurement_reduces_the_error_of_the_one_way_targets() -> None:
    # 400 draws of two independent noisy measurements of the same counts (sigma 10 and 15): the mean
    # squared error of the combination is ~0.69 of the 1-way's alone (1 / (1 + 100/225)); with 400 x 8
    # cells the ratio's standard error is ~0.02, so the bound 0.8 fails with probability < 1e-6.
    gen = np.random.default_rng(11)
    truth = np.array([500.0, 300.0, 120.0, 80.0, 60.0, 40.0, 500.0, 400.0])
    alone, both = [], []
    for _ in range(400):
        y1 = truth + gen.normal(0, 10.0, truth.size)
        y2 = truth + gen.normal(0, 15.0, truth.size)
        m1 = [Measurement(values=y1, variance=np.full(truth.size, 100.0))]
        m2 = Measurement(values=y2, variance=np.full(truth.size, 225.0))
        alone.append(((combine_one_way([8], m1, [], truth.sum())[0] - truth) ** 2).mean())
        both.append(((combine_one_way([8], m1, [], truth.sum(), extra=[(0, m2)])[0] - truth) ** 2).mean())
    assert np.mean(both) < 0.8 * np.mean(alone)


def test_combine_one_way_projects_onto_the_simplex_of_the_total() -> None:
    one_way = [Measurement(values=np.array([-30.0, 50.0, 100.0]), variance=np.ones(3))]
    out = combine_one_way([3], one_way, [], total=120.0)
    assert out[0].min() >= 0.0 and np.isclose(out[0].sum(), 120.0) and out[0][0] == 0.0


# ------------------------------------------------------------------------------------ rake_rows
def _skewed_sample(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows drawn from the wrong margins, and noisy targets of the right ones (sigma 20)."""
    gen = np.random.default_rng(seed)
    a = gen.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    b = (a + gen.choice(3, n, p=[0.6, 0.3, 0.1])) % 5
    truth_a = np.array([0.1, 0.2, 0.3, 0.4]) * n
    truth_b = np.array([0.25, 0.2, 0.2, 0.2, 0.15]) * n
    noisy = [np.maximum(t + gen.normal(0, 20.0, t.size), 0.0) for t in (truth_a, truth_b)]
    return np.stack([a, b], axis=1).astype(np.int64), noisy


def _mismatch(sample: np.ndarray, targets: list[np.ndarray]) -> float:
    return sum(
        float(np.abs(np.bincount(sample[:, i], minlength=t.size) / len(sample) - t / t.sum()).sum())
        for i, t in enumerate(targets)
    )


def test_raking_reduces_the_mismatch_to_the_noisy_marginals() -> None:
    sample, targets = _skewed_sample(5000, seed=1)
    out = rake_rows(sample, [4, 5], [((0,), targets[0]), ((1,), targets[1])], 5000, np.random.default_rng(2))
    assert out.shape == (5000, 2)
    before, after = _mismatch(sample, targets), _mismatch(out, targets)
    assert before > 0.5 and after < 0.02  # deterministic given the seeds
    # Rows are rows of the sample (its support is kept, nothing new is made up).
    assert {tuple(r) for r in out.tolist()} <= {tuple(r) for r in sample.tolist()}


def test_raking_is_deterministic_given_the_seed_and_sizes_the_output() -> None:
    sample, targets = _skewed_sample(800, seed=3)
    goals = [((0,), targets[0]), ((1,), targets[1]), ((0, 1), np.ones(20))]
    first = rake_rows(sample, [4, 5], goals, 300, np.random.default_rng(7))
    again = rake_rows(sample, [4, 5], goals, 300, np.random.default_rng(7))
    assert np.array_equal(first, again) and first.shape == (300, 2)
    assert rake_rows(sample[:0], [4, 5], goals, 0, np.random.default_rng(7)).shape == (0, 2)


# --------------------------------------------------------------------- in the engine: inputs only DP
def test_the_engine_rakes_only_dp_releases_and_the_model_sample(
    monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame
) -> None:
    """Every input of the raking step is a mechanism's output (or computed from them) or the model's
    sample: the private table is never passed to it."""
    gaussian_outputs: list[np.ndarray] = []
    real_gaussian = mechanisms.gaussian_mechanism

    def recorded(*args: Any, **kwargs: Any) -> Any:
        out = real_gaussian(*args, **kwargs)
        gaussian_outputs.append(np.asarray(out, dtype=float).ravel().copy())
        return out

    monkeypatch.setattr(mechanisms, "gaussian_mechanism", recorded)
    samples: list[np.ndarray] = []
    real_sample = BayesNet.sample

    def sample(self: BayesNet, n: int, gen: np.random.Generator) -> np.ndarray:
        out = real_sample(self, n, gen)
        samples.append(out.copy())
        return out

    monkeypatch.setattr(BayesNet, "sample", sample)
    calls: dict[str, Any] = {}
    real_combine, real_rake = raking.combine_one_way, raking.rake_rows

    def combine(*args: Any, **kwargs: Any) -> Any:
        calls["combine"] = (args, kwargs)
        calls["targets"] = real_combine(*args, **kwargs)
        return calls["targets"]

    def rake(*args: Any, **kwargs: Any) -> Any:
        calls["rake"] = (args, kwargs)
        return real_rake(*args, **kwargs)

    monkeypatch.setattr(engine_module, "combine_one_way", combine)
    monkeypatch.setattr(engine_module, "rake_rows", rake)
    schema = small_schema(public=True)
    plan = ENGINE.plan(
        schema, SynthesisRequest("tabular", 1.0, 1e-6, rows=250, options={"model": "adaptive"})
    )
    ENGINE.run(plan, schema, table, EngineContext(rng=RandomSource.seeded(5)))

    sizes, one_way, tables, _ = calls["combine"][0]
    assert not any(isinstance(a, pd.DataFrame | pd.Series) for a in calls["combine"][0] + calls["rake"][0])
    for m in one_way:  # compressed noisy 1-ways: sums of the cells of one Gaussian release
        assert any(np.isclose(m.values.sum(), g.sum()) for g in gaussian_outputs)
    assert tables, "the adaptive rounds measured tables"
    for _, values, _sigma in tables:  # each round's table is exactly one Gaussian release
        assert any(g.shape == values.shape and np.array_equal(g, values) for g in gaussian_outputs)
    extra = calls["combine"][1]["extra"]
    assert extra, "the numeric columns' fine histograms are used as 1-way measurements"
    for _, m in extra:  # a fine histogram's bin sums (null: 0, unmeasured): one Gaussian release, regrouped
        assert np.isinf(m.variance).any()
        assert any(np.isclose(m.values.sum(), g.sum()) for g in gaussian_outputs)
    rake_sample, rake_sizes, goals, n_out, _ = calls["rake"][0]
    assert np.array_equal(rake_sample, samples[-1]) and list(rake_sizes) == list(sizes) and n_out == 250
    assert all(np.array_equal(t, calls["targets"][i]) for i, (_, t) in enumerate(goals))


# ------------------------------------------------------------- decoding: no multinomial noise added
def test_numeric_decoding_spreads_each_bin_over_its_cells_by_controlled_rounding() -> None:
    grid = fine_grid(0.0, 9.0, integer=True, cells=64)  # unit cells 0..9
    cell_to_bin = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], dtype=np.int64)
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0, 1.0, 1.0, 6.0])
    dom = NumericDomain(name="x", grid=grid, cell_to_bin=cell_to_bin, cell_weights=weights)
    codes = np.array([0] * 1001 + [1] * 500 + [dom.null_code] * 3, dtype=np.int64)
    values = dom.decode(codes, np.random.default_rng(4))
    assert np.isnan(values[-3:]).all()
    counts = np.bincount(values[:-3].astype(np.int64), minlength=10)
    expected = np.concatenate([1001 * weights[:4] / 10.0, 500 * weights[4:] / 10.0])
    assert np.all(counts >= np.floor(expected)) and np.all(counts <= np.ceil(expected))
    again = dom.decode(codes, np.random.default_rng(4))
    assert np.array_equal(values, again, equal_nan=True)  # deterministic given the seed


def test_the_rare_code_is_expanded_by_controlled_rounding() -> None:
    comp = Compression(
        keep=np.array([0], dtype=np.int64),
        rare=np.array([1, 2, 3], dtype=np.int64),
        rare_weights=np.array([5.0, 3.0, 2.0]),
        original_size=4,
    )
    out = comp.expand(np.array([0] * 10 + [1] * 997, dtype=np.int64), np.random.default_rng(9))
    counts = np.bincount(out, minlength=4)
    assert counts[0] == 10
    expected = 997 * np.array([0.5, 0.3, 0.2])
    assert np.all(counts[1:] >= np.floor(expected)) and np.all(counts[1:] <= np.ceil(expected))
