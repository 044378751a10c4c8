"""Statistics of the audit against reference implementations and theorems."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn.metrics import roc_auc_score, roc_curve

from safesynth.gateway.audit.stats import (
    StatColumn,
    advantage,
    auc_delong,
    clopper_pearson,
    cp_epsilon,
    one_run_epsilon,
    permutation_pvalue,
    tpr_at_fpr,
)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 200),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_auc_and_advantage_match_sklearn(n: int, seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    labels[0], labels[1] = True, False
    scores = rng.normal(size=n) + labels * rng.random()
    if ties:
        scores = np.round(scores)
    auc, se = auc_delong(scores, labels)
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    assert se >= 0
    fpr, tpr, _ = roc_curve(labels, scores)
    assert advantage(scores, labels) == pytest.approx(max(0.0, float(np.max(tpr - fpr))))


def test_delong_se_matches_reference_value() -> None:
    # Hanley & McNeil (1982) style check: for separated normals the DeLong SE is close to the
    # bootstrap SE (500 resamples: the bootstrap SE's own relative error is about 3%; fixed seed).
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    auc, se = auc_delong(scores, labels)
    boots = []
    for _ in range(500):
        p = rng.choice(pos, 300)
        q = rng.choice(neg, 300)
        boots.append(auc_delong(np.r_[p, q], labels)[0])
    assert auc == pytest.approx(0.76, abs=0.04)
    assert se == pytest.approx(float(np.std(boots)), rel=0.1)


def test_tpr_at_fpr_respects_the_fpr_limit() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(5000) < 0.5
    scores = rng.normal(size=5000) + labels
    for f in (0.01, 0.1):
        tpr, tp, n1 = tpr_at_fpr(scores, labels, f)
        thr = np.sort(scores[~labels])[::-1][math.floor(f * (~labels).sum())]
        assert np.mean(scores[~labels] > thr) <= f
        assert tp == int(np.sum(scores[labels] > thr)) and tpr == tp / n1


def test_clopper_pearson_reference_values() -> None:
    # Reference: the exact interval for 0/10 at 95% is [0, 0.3085]; for 5/10 it is [0.1871, 0.8129].
    assert clopper_pearson(0, 10, 0.05) == pytest.approx((0.0, 0.30850), abs=1e-4)
    lo, hi = clopper_pearson(5, 10, 0.05)
    assert lo == pytest.approx(0.18709, abs=1e-4) and hi == pytest.approx(0.81291, abs=1e-4)


def test_one_run_bound_solves_the_binomial_tail() -> None:
    eps = one_run_epsilon(90, 100, beta=0.05)
    p = 1 / (1 + math.exp(-eps))
    assert sps.binom.sf(89, 100, p) == pytest.approx(0.05, rel=1e-3)
    assert one_run_epsilon(50, 100, beta=0.05) == 0.0
    assert one_run_epsilon(0, 0, beta=0.05) == 0.0
    # 1000 right out of 1000: P[Bin >= 1000] = p^1000 <= 0.05  =>  eps = logit(0.05^(1/1000)).
    q = 0.05 ** (1 / 1000)
    assert one_run_epsilon(1000, 1000, beta=0.05) == pytest.approx(math.log(q / (1 - q)), rel=1e-6)


def test_cp_epsilon_is_zero_without_signal_and_positive_with() -> None:
    assert cp_epsilon(10, 1000, 10, 1000, beta=0.05, delta=0.0) == 0.0
    assert cp_epsilon(500, 1000, 5, 1000, beta=0.05, delta=0.0) > 3.0


def test_one_run_bound_is_valid_and_tight_on_an_exact_dp_mechanism() -> None:
    # Randomised response on each canary's membership bit is exactly eps-DP in that bit. An attack that
    # reads the released bit guesses right with probability e^eps/(1+e^eps): the bound must stay below
    # eps (it fails with probability <= 5% per seed by the theorem; 3 fixed seeds) and get close to it.
    eps, m = 2.0, 4000
    p_keep = math.exp(eps) / (1 + math.exp(eps))
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        member = rng.random(m) < 0.5
        released = np.where(rng.random(m) < p_keep, member, ~member)
        score = released.astype(float)
        order = np.lexsort((rng.random(m), -score))
        k = int(released.sum())
        correct = int(member[order[:k]].sum()) + int((~member[order[k:]]).sum())
        bound = one_run_epsilon(correct, m, beta=0.05)
        assert 1.5 < bound <= eps


def test_permutation_pvalue_is_uniform_under_the_null_and_small_under_signal() -> None:
    # Under the null the p-value is uniform: P[p <= 0.1] = 0.1; 200 draws, a band of 0.1 +- 0.07 fails
    # with probability < 0.2% (binomial sd 0.021).
    rng = np.random.default_rng(7)
    n = 200
    small = 0
    for _ in range(200):
        labels = rng.random(n) < 0.5
        cols = [StatColumn(f"a{j}", rng.normal(size=n), np.ones(n, bool)) for j in range(3)]
        p, _ = permutation_pvalue(cols, labels, n_permutations=99, rng=rng)
        small += p <= 0.1
    assert 0.03 <= small / 200 <= 0.17
    labels = rng.random(n) < 0.5
    cols = [StatColumn("leak", rng.normal(size=n) + 1.5 * labels, np.ones(n, bool))]
    p, top = permutation_pvalue(cols, labels, n_permutations=199, rng=rng)
    assert p == pytest.approx(1 / 200) and top.startswith("leak")
