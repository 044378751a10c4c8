"""Post-processing of noisy histograms: threshold, allocation, parent and output selection."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.engines.text.selection import allocate, apply_threshold, select_output, select_parents


def test_threshold_subtracts_and_clips() -> None:
    out = apply_threshold(np.array([5.0, 1.0, -3.0, 2.5]), 2.0)
    assert out.tolist() == [3.0, 0.0, 0.0, 0.5]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5000), st.lists(st.floats(-10, 1000, allow_nan=False), min_size=1, max_size=20))
def test_allocate_sums_to_total_and_ignores_negative_shares(total: int, shares: list[float]) -> None:
    parts = allocate(total, shares)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    if any(s > 0 for s in shares):
        assert all(p == 0 for p, s in zip(parts, shares, strict=True) if s <= 0)


def test_allocate_is_proportional() -> None:
    assert allocate(10, [3.0, 1.0, 1.0]) == [6, 2, 2]


def test_select_output_first_pick_is_candidate_and_repeats_are_flagged() -> None:
    gen = np.random.default_rng(0)
    picks, repeat = select_output(np.array([0.0, 10.0, 0.0]), 4, "sample", gen)
    assert picks.tolist() == [1, 1, 1, 1]  # only one candidate has weight
    assert repeat.tolist() == [False, True, True, True]


def test_rank_takes_positive_weights_in_order_first() -> None:
    gen = np.random.default_rng(1)
    picks, repeat = select_output(np.array([1.0, 0.0, 7.0, 3.0]), 3, "rank", gen)
    assert picks.tolist() == [2, 3, 0]
    assert not repeat.any()


def test_all_zero_weights_fall_back_to_uniform() -> None:
    gen = np.random.default_rng(2)
    picks = select_parents(np.zeros(5), 2000, "sample", gen)
    counts = np.bincount(picks, minlength=5)
    # each count ~ Binomial(2000, 0.2): mean 400, sd ~18; 300 is > 5 sd away (false failure < 1e-6)
    assert counts.min() > 300


def test_rank_parents_cycle_through_the_ranking() -> None:
    gen = np.random.default_rng(3)
    assert select_parents(np.array([0.0, 2.0, 1.0]), 5, "rank", gen).tolist()[:3] == [1, 2, 0]


def test_empty_population_selects_nothing() -> None:
    gen = np.random.default_rng(4)
    picks, repeat = select_output(np.zeros(0), 5, "sample", gen)
    assert picks.size == 0 and repeat.size == 0


def test_proportional_gives_rows_in_proportion_to_the_votes() -> None:
    gen = np.random.default_rng(5)
    # 10 rows over votes 6 : 3 : 1 : 0 -> 6, 3, 1, 0 rows, most-voted first, repeats flagged
    picks, repeat = select_output(np.array([3.0, 6.0, 0.0, 1.0]), 10, "proportional", gen)
    assert picks.tolist() == [1] * 6 + [0] * 3 + [3]
    assert repeat.tolist() == [False] + [True] * 5 + [False, True, True, False]


def test_proportional_does_not_flatten_as_the_noise_falls() -> None:
    # "rank" outputs every positive candidate once: with 3 candidates above the threshold and 3 rows,
    # a candidate with 100 votes and one with 1 vote each get one row; "proportional" keeps the mass
    weights = np.array([100.0, 1.0, 1.0])
    rank, _ = select_output(weights, 3, "rank", np.random.default_rng(6))
    prop, _ = select_output(weights, 3, "proportional", np.random.default_rng(6))
    assert sorted(rank.tolist()) == [0, 1, 2]
    assert prop.tolist() == [0, 0, 0]


@given(
    weights=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=40),
    n=st.integers(0, 300),
)
def test_proportional_rows_sum_to_n_and_stay_within_one_of_the_quota(weights: list[float], n: int) -> None:
    w = np.array(weights)
    picks, repeat = select_output(w, n, "proportional", np.random.default_rng(7))
    assert picks.shape[0] == n and repeat.shape[0] == n
    counts = np.bincount(picks, minlength=w.shape[0])
    quota = n * w / w.sum() if w.sum() > 0 else np.full(w.shape[0], n / w.shape[0])
    assert np.all(np.abs(counts - quota) < 1.0 + 1e-9)
    assert int((~repeat).sum()) == len(set(picks.tolist()))
