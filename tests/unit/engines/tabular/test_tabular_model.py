"""The pure-numpy pieces of the tabular engine: grids, domains, the tree model and its sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.engines.tabular.domains import OTHER, CategoricalDomain, NumericDomain, compress
from safesynth.gateway.engines.tabular.grids import (
    bounds_from_histogram,
    clean_histogram,
    fine_grid,
    log_grid,
    project_histogram,
    quantile_bins,
    within_bin_weights,
)
from safesynth.gateway.engines.tabular.model import (
    Measurement,
    allocate,
    fit_tree_model,
    project_simplex,
    select_tree,
)


# ------------------------------------------------------------------------------------------ grids
def test_log_grid_bounds_enclose_the_data_without_noise() -> None:
    grid = log_grid()
    values = np.array([17.0, 25, 33, 40, 52, 90] * 50)
    hist = np.bincount(grid.assign(values), minlength=grid.size).astype(float)
    lo, hi = bounds_from_histogram(grid, hist, sigma=1.0, tail=0.001)
    assert 8 <= lo <= 17 and 90 <= hi <= 181  # within one grid cell (factor sqrt 2) of the data


def test_log_grid_bounds_snap_to_zero_for_non_negative_data() -> None:
    grid = log_grid()
    values = np.array([0.0] * 900 + [5000.0] * 100)
    hist = np.bincount(grid.assign(values), minlength=grid.size).astype(float)
    lo, hi = bounds_from_histogram(grid, hist, sigma=1.0, tail=0.001)
    assert lo == 0.0 and 5000 <= hi <= 7100


def test_log_grid_assigns_infinities_to_the_end_cells() -> None:
    grid = log_grid()
    cells = grid.assign(np.array([-np.inf, np.inf, 0.0]))
    assert cells[0] == 0 and cells[1] == grid.size - 1


def test_clean_histogram_keeps_one_cell_when_all_is_noise() -> None:
    out = clean_histogram(np.array([0.5, -1.0, 2.0]), sigma=10.0)
    assert out.tolist() == [0.0, 0.0, 1.0]


def test_integer_fine_grid_has_unit_cells_and_rounds() -> None:
    grid = fine_grid(17, 90, integer=True, cells=256)
    assert grid.size == 74 and not grid.zero_point
    cells = grid.assign(np.array([17.0, 18.4, 90.0, 500.0, -3.0]))
    assert cells.tolist() == [0, 1, 73, 73, 0]
    values = grid.sample(cells, np.full(5, 0.999))
    assert values.tolist() == [17, 18, 90, 90, 17]


def test_wide_fine_grid_has_a_zero_point_cell() -> None:
    grid = fine_grid(0, 99_999, integer=True, cells=64)
    assert grid.zero_point and grid.size == 65
    cells = grid.assign(np.array([0.0, 1.0, 99_999.0]))
    assert cells[0] == 64 and cells[1] == 0 and cells[2] == 63
    assert grid.sample(np.array([64]), np.array([0.7])).tolist() == [0.0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1000), min_size=8, max_size=300),
    st.integers(2, 40),
)
def test_quantile_bins_are_contiguous_and_cover_every_cell(mass: list[float], n_bins: int) -> None:
    grid = fine_grid(0, 1, integer=False, cells=len(mass))
    weights = np.array([*mass, 3.0])  # + the zero point cell
    cell_to_bin = quantile_bins(grid, weights, n_bins)
    assert cell_to_bin.size == grid.size
    interval = cell_to_bin[: grid.n_interval]
    assert np.all(np.diff(interval) >= 0) and np.all(np.diff(interval) <= 1)
    assert interval[0] == 0 and interval.max() + 1 <= n_bins
    assert cell_to_bin[-1] == interval.max() + 1  # the zero point is a bin of its own


# ---------------------------------------------------------------------------------------- domains
def test_categorical_domain_maps_unknown_values_to_other_and_keeps_nulls() -> None:
    dom = CategoricalDomain(name="c", categories=("a", "b"))
    codes = dom.encode(pd.Series(["a", "z", None, "b", np.nan], dtype=object))
    assert codes.tolist() == [0, 2, 3, 1, 3]
    assert dom.decode(codes).tolist() == ["a", OTHER, None, "b", None]


_CELLS = st.one_of(
    st.sampled_from(["a", "b", "c", "1", "2", "True", "nan", " a", "é", ""]),
    st.none(),
    st.just(float("nan")),
    st.sampled_from([1, 2, 0, -1, 1.0, 2.5, -0.0, True, False]),
)


@st.composite
def _columns(draw: st.DrawFn) -> pd.Series:
    kind = draw(st.sampled_from(["object", "string", "text-object", "float", "int", "bool", "category"]))
    n = draw(st.integers(0, 30))
    if kind == "object":
        return pd.Series(draw(st.lists(_CELLS, min_size=n, max_size=n)), dtype=object)
    text = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "1", "2", "True", " a", "é", ""]))
    if kind in ("string", "text-object", "category"):
        values = draw(st.lists(text, min_size=n, max_size=n))
        dtype = {"string": "string", "text-object": object, "category": "category"}[kind]
        return pd.Series(values, dtype=dtype)
    if kind == "float":
        floats = st.one_of(st.just(float("nan")), st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, 1e20, -3.0]))
        return pd.Series(draw(st.lists(floats, min_size=n, max_size=n)), dtype="float64")
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype="int64")
    return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)


@settings(max_examples=300, deadline=None)
@given(
    column=_columns(),
    categories=st.lists(
        st.sampled_from(["a", "b", "1", "2", "-1", "0", "2.5", "True", "False", "é", ""]), unique=True
    ),
    closed=st.booleans(),
)
def test_categorical_encode_equals_the_value_by_value_reference(
    column: pd.Series, categories: list[str], closed: bool
) -> None:
    dom = CategoricalDomain(name="c", categories=tuple(categories), closed=closed)
    codes = dom.encode(column)
    assert codes.dtype == np.int64
    assert codes.tolist() == dom.encode_each(column).tolist()


def test_categorical_encode_keeps_equal_values_that_print_differently_apart() -> None:
    dom = CategoricalDomain(name="c", categories=("True", "1"))
    assert dom.encode(pd.Series([True, 1, 1.0, "1"], dtype=object)).tolist() == [0, 1, 1, 1]


def test_closed_categorical_domain_has_no_other_code() -> None:
    dom = CategoricalDomain(name="c", categories=("a", "b"), closed=True)
    assert dom.size == 3 and dom.null_code == 2
    codes = dom.encode(pd.Series(["a", "z", None, "b"], dtype=object))
    assert codes.tolist() == [0, 2, 2, 1]
    assert OTHER not in dom.decode(np.arange(dom.size)).tolist()


def test_numeric_domain_round_trip_stays_in_bins() -> None:
    grid = fine_grid(0, 100, integer=True, cells=256)
    weights = np.ones(grid.size)
    dom = NumericDomain(
        name="x", grid=grid, cell_to_bin=quantile_bins(grid, weights, 10), cell_weights=weights
    )
    values = np.array([3.0, 55.0, np.nan, 100.0])
    codes = dom.encode(values)
    assert codes[2] == dom.null_code
    back = dom.decode(codes, np.random.default_rng(0))
    assert np.isnan(back[2])
    assert np.array_equal(dom.encode(back), codes)


def test_compress_merges_low_counts_and_expands_back_among_them() -> None:
    noisy = np.array([100.0, 2.0, 50.0, -3.0, 1.0])
    comp = compress(noisy, sigma=5.0)
    assert comp.keep.tolist() == [0, 2] and comp.rare.tolist() == [1, 3, 4] and comp.size == 3
    assert comp.mapping().tolist() == [0, 2, 1, 2, 2]
    assert comp.compress_values(noisy).tolist() == [100.0, 50.0, 0.0]
    expanded = comp.expand(np.array([0, 1, 2, 2, 2, 2]), np.random.default_rng(1))
    assert expanded[:2].tolist() == [0, 2]
    # The rare members' noisy counts (2, -3, 1) differ less than the noise (sigma 5): James-Stein
    # shrinks them to their mean (0 here: uniform expansion among the members).
    assert set(expanded[2:].tolist()) <= {1, 3, 4}
    assert comp.rare_weights.tolist() == [0.0, 0.0, 0.0]
    # Members that differ more than the noise keep their order (shrunk by 1 - 1/2.7 here).
    wide = compress(np.array([500.0, 2.9, 0.0, -1.0]), sigma=1.0)
    assert wide.rare.tolist() == [1, 2, 3]
    assert wide.rare_weights[0] > 5 * wide.rare_weights[1] > 0.0 == wide.rare_weights[2]


# ------------------------------------------------------------------------------------------ model
@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=50), st.floats(0.5, 1e5))
def test_project_simplex_is_the_euclidean_projection(values: list[float], total: float) -> None:
    v = np.array(values)
    x = project_simplex(v, total)
    assert np.all(x >= 0) and x.sum() == pytest.approx(total, rel=1e-9, abs=1e-6)
    # KKT: x = max(v - theta, 0) for one theta.
    pos = x > 0
    theta = float(np.mean(v[pos] - x[pos]))
    assert np.allclose(x, np.maximum(v - theta, 0), atol=1e-6 * max(1.0, total))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 500), st.lists(st.floats(0, 10), min_size=1, max_size=20))
def test_allocate_sums_to_n_within_one_of_the_expectation(n: int, weights: list[float]) -> None:
    p = np.array(weights)
    counts = allocate(n, p, np.random.default_rng(0))
    assert counts.sum() == n and np.all(counts >= 0)
    q = p / p.sum() if p.sum() > 0 else np.full(p.size, 1 / p.size)
    assert np.all(np.abs(counts - n * q) < 1.0 + 1e-9)


def test_select_tree_with_argmax_is_the_maximum_spanning_tree() -> None:
    rng = np.random.default_rng(3)
    d = 6
    scores = {(i, j): float(rng.random()) for i in range(d) for j in range(i + 1, d)}
    edges = select_tree(d, scores, lambda s: int(np.argmax(s)))
    assert len(edges) == d - 1
    best = 0.0
    for combo in itertools.combinations(scores, d - 1):  # brute force over spanning trees
        parent = list(range(d))

        def find(a: int, parent: list[int] = parent) -> int:
            while parent[a] != a:
                a = parent[a]
            return a

        ok = True
        for a, b in combo:
            ra, rb = find(a), find(b)
            if ra == rb:
                ok = False
                break
            parent[ra] = rb
        if ok:
            best = max(best, sum(scores[e] for e in combo))
    assert sum(scores[e] for e in edges) == pytest.approx(best)


def _exact(values: np.ndarray) -> Measurement:
    return Measurement(values=values.astype(float), variance=np.ones(values.shape))


def test_tree_model_reproduces_exact_tree_marginals() -> None:
    # A chain a -> b -> c; with exact (noise-free) marginals the model is the true distribution.
    rng = np.random.default_rng(5)
    n = 20_000
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(0, 2, n)) % 4
    c = (b * 2 + (rng.random(n) < 0.2)) % 5
    cols = [a, b, c]
    sizes = [3, 4, 5]
    one = {i: _exact(np.bincount(cols[i], minlength=sizes[i])) for i in range(3)}

    def joint(i: int, j: int) -> np.ndarray:
        return np.bincount(cols[i] * sizes[j] + cols[j], minlength=sizes[i] * sizes[j]).reshape(
            sizes[i], sizes[j]
        )

    two = {(0, 1): _exact(joint(0, 1)), (1, 2): _exact(joint(1, 2))}
    model = fit_tree_model(sizes, one, two, [(float(n), 1.0)])
    assert model.total == pytest.approx(n)
    sample = model.sample(n, np.random.default_rng(6))
    for i, j in [(0, 1), (1, 2)]:
        real = joint(i, j) / n
        synth = np.bincount(sample[:, i] * sizes[j] + sample[:, j], minlength=sizes[i] * sizes[j]) / n
        # Controlled rounding: each cell within a few rows of its expectation (no sampling noise).
        assert 0.5 * np.abs(real.ravel() - synth).sum() < 0.005
    # The non-edge pair (a, c) follows the chain's conditional independence: impossible pairs stay 0.
    ac = np.bincount(sample[:, 0] * 5 + sample[:, 2], minlength=15).reshape(3, 5)
    real_ac = np.bincount(a * 5 + c, minlength=15).reshape(3, 5)
    assert np.all(ac[real_ac == 0] <= 0.01 * n)


def test_tree_model_makes_noisy_marginals_consistent_and_non_negative() -> None:
    rng = np.random.default_rng(8)
    sizes = [4, 3]
    one = {
        0: Measurement(np.array([50.0, -5.0, 30.0, 20.0]), np.full(4, 25.0)),
        1: Measurement(np.array([40.0, 60.0, -2.0]), np.full(3, 25.0)),
    }
    two = {(0, 1): Measurement(rng.normal(10, 5, (4, 3)), np.full((4, 3), 25.0))}
    model = fit_tree_model(sizes, one, two, [])
    for p in model.marginals:
        assert np.all(p >= 0) and p.sum() == pytest.approx(1.0)
    (edge,) = model.joints.values()
    assert np.all(edge >= 0)
    parent, child = next((p, c) for p, c in model.order if p >= 0)
    assert edge.sum(axis=1) / model.total == pytest.approx(model.marginals[parent], abs=1e-6)
    assert edge.sum(axis=0) / model.total == pytest.approx(model.marginals[child], abs=1e-6)


def test_project_histogram_zeroes_noise_tails_and_keeps_the_total() -> None:
    # A narrow true distribution on a wide grid plus Gaussian noise (sigma 10) in the empty cells.
    gen = np.random.default_rng(3)
    true = np.zeros(200)
    true[20:30] = 100.0
    noisy = true + gen.normal(0.0, 10.0, true.size)
    out = project_histogram(noisy)
    assert out.min() >= 0.0
    assert abs(out.sum() - noisy.sum()) < 1e-6
    # The positive parts of the noise put ~800 rows in the empty tail; the projection far fewer.
    assert out[40:].sum() < 0.25 * np.maximum(noisy[40:], 0.0).sum()
    assert project_histogram(np.array([-5.0, -1.0, -3.0])).tolist() == [0.0, 1.0, 0.0]


def test_within_bin_weights_project_each_bin_on_its_own_total() -> None:
    noisy = np.array([50.0, -4.0, 6.0, 30.0, 30.0, -10.0, -2.0])
    cell_to_bin = np.array([0, 0, 0, 1, 1, 2, 2])
    w = within_bin_weights(noisy, cell_to_bin, sigma=0.0)
    assert np.allclose(w[:3].sum(), 52.0) and w[1] == 0.0 and w[0] > w[2]
    assert np.allclose(w[3:5], [30.0, 30.0])
    assert w[5:].tolist() == [0.0, 0.0]  # non-positive bin total: uniform at decoding


def test_within_bin_weights_shrink_noise_only_differences_to_uniform() -> None:
    # Cells that differ by less than the noise (sigma 10) become uniform; a bin whose cells differ far
    # more than the noise keeps its shape (James-Stein factor close to 1).
    flat = np.array([52.0, 47.0, 55.0, 46.0])
    steep = np.array([400.0, 5.0, 0.0, -3.0])
    w = within_bin_weights(np.concatenate([flat, steep]), np.array([0, 0, 0, 0, 1, 1, 1, 1]), sigma=10.0)
    assert np.allclose(w[:4], flat.mean())
    assert w[4] > 0.95 * steep.sum() and np.isclose(w[4:].sum(), steep.sum())
