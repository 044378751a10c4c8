"""The adaptive model (``model="adaptive"``): AIM-style rounds that grow a Bayesian network of degree 2.

MST measures a fixed kind of marginal (the 2-ways of a spanning tree). AIM (McKenna et al. 2022)
instead selects, round after round, the marginal where the current model is most wrong, and measures
it. This module does the same with a model that stays cheap to fit and sample: a Bayesian network
whose nodes have at most two parents, grown one column per round.

Each round r = 1 .. d-1 (the number of rounds and each round's noise are fixed by the plan):

1. *candidates*: every (new column c, parent set P) with P one or two already placed columns (round 1:
   every pair of columns, both new);
2. *score* (AIM's): ``|| X_{c,P} - N q_P p_c ||_1 - sqrt(2/pi) sigma n_cells``, where X is the private
   count table, ``q_P`` the current model's distribution of the parents, ``p_c`` the (DP) 1-way estimate
   of c (the model does not know c yet, so it treats c as independent) and the second term the
   expected L1 error of measuring a table of ``n_cells`` cells with the round's Gaussian noise. The L1
   error term has sensitivity 1 per row of the privacy unit; the penalty is public;
3. *select* with the exponential mechanism (one planned event per round);
4. *measure* the chosen marginal with the Gaussian mechanism (one planned event per round);
5. *fit* the conditional table ``p(c | P)``: the noisy table is projected onto the simplex of the
   estimated total and raked to the model's parent distribution and to c's combined 1-way estimate
   (inverse-variance weighting of the 1-way measurement and the table's margin), then normalised row
   by row; the running synthetic sample gains column c, drawn from it (controlled rounding).

Everything except the ``choose`` and ``measure`` callbacks is post-processing of DP releases. The
final sample is drawn ancestrally from the network (root pair, then each column given its parents).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.tabular.model import Measurement, allocate, project_simplex

__all__ = ["MAX_CELLS", "BayesNet", "Factor", "candidate_sets", "fit_adaptive"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Largest candidate marginal (cells) a round may measure: bounds memory and time (public constant).
MAX_CELLS = 1 << 16


@dataclass(frozen=True)
class Factor:
    """One node group of the network: ``columns`` drawn given ``parents`` from ``table``.

    ``table`` has one row per parent configuration (row index = mixed-radix code of the parents'
    values, first parent most significant; one row when there are no parents) and one column per
    configuration of ``columns`` (same coding), each row a probability vector.
    """

    columns: tuple[int, ...]
    parents: tuple[int, ...]
    table: FloatArray


def _config_codes(codes: IntArray, columns: Sequence[int], sizes: Sequence[int]) -> IntArray:
    """Mixed-radix code of ``codes[:, columns]`` (first column most significant)."""
    out = np.zeros(codes.shape[0], dtype=np.int64)
    for c in columns:
        out = out * sizes[c] + codes[:, c]
    return out


def _n_configs(columns: Sequence[int], sizes: Sequence[int]) -> int:
    return int(np.prod([sizes[c] for c in columns], dtype=np.int64)) if columns else 1


def _draw(out: IntArray, factor: Factor, sizes: Sequence[int], gen: np.random.Generator) -> None:
    """Fill ``out[:, factor.columns]`` given the parents already in ``out`` (controlled rounding)."""
    n = out.shape[0]
    parent_codes = _config_codes(out, factor.parents, sizes)
    n_parent = factor.table.shape[0]
    by_value = np.argsort(parent_codes, kind="stable")
    bounds = np.searchsorted(parent_codes[by_value], np.arange(n_parent + 1))
    joint = np.empty(n, dtype=np.int64)
    n_child = factor.table.shape[1]
    for a in range(n_parent):
        start, stop = int(bounds[a]), int(bounds[a + 1])
        if stop == start:
            continue
        values = np.repeat(np.arange(n_child, dtype=np.int64), allocate(stop - start, factor.table[a], gen))
        gen.shuffle(values)
        joint[by_value[start:stop]] = values
    for c in reversed(factor.columns):  # undo the mixed-radix code, least significant first
        out[:, c] = joint % sizes[c]
        joint //= sizes[c]


@dataclass(frozen=True)
class BayesNet:
    """A Bayesian network over compressed column codes: ``factors`` in sampling order."""

    sizes: tuple[int, ...]
    factors: tuple[Factor, ...]

    def sample(self, n: int, gen: np.random.Generator) -> IntArray:
        """``n`` rows of codes (n x columns), ancestrally, with controlled rounding."""
        out = np.zeros((n, len(self.sizes)), dtype=np.int64)
        for factor in self.factors:
            _draw(out, factor, self.sizes, gen)
        return out

    def parents(self) -> list[tuple[list[int], list[int]]]:
        """(columns, parents) of each factor, for reports."""
        return [(list(f.columns), list(f.parents)) for f in self.factors]


def candidate_sets(
    placed: Sequence[int], n_columns: int, sizes: Sequence[int], max_cells: int = MAX_CELLS
) -> list[tuple[int, tuple[int, ...]]]:
    """The round's candidates as (new column, parents): with nothing placed, every pair (the first
    column of the pair is its parent); else every unplaced column with one or two placed parents.
    Candidates above ``max_cells`` cells are left out (public: depends on domain sizes only); a column
    left with no candidate gets the empty parent set (its 1-way is measured again)."""
    out: list[tuple[int, tuple[int, ...]]] = []
    if not placed:
        for a, b in combinations(range(n_columns), 2):
            if sizes[a] * sizes[b] <= max_cells:
                out.append((b, (a,)))
        return out or [(c, ()) for c in range(n_columns)]
    done = set(placed)
    ordered = sorted(placed)
    parent_sets: list[tuple[int, ...]] = [(p,) for p in ordered] + list(combinations(ordered, 2))
    for c in range(n_columns):
        if c in done:
            continue
        mine = [(c, ps) for ps in parent_sets if _n_configs(ps, sizes) * sizes[c] <= max_cells]
        out.extend(mine or [(c, ())])  # a column too large for any pair is measured alone
    return out


def _rake(table: FloatArray, rows: FloatArray, cols: FloatArray, iterations: int = 50) -> FloatArray:
    """Iterative proportional fitting of a non-negative 2-D table to the given margins."""
    total = max(float(rows.sum()), 1e-12)
    t = table + 1e-6 * np.outer(rows, cols) / total
    for _ in range(iterations):
        rs = t.sum(axis=1)
        t *= np.divide(rows, rs, out=np.zeros_like(rows), where=rs > 0)[:, None]
        cs = t.sum(axis=0)
        t *= np.divide(cols, cs, out=np.zeros_like(cols), where=cs > 0)[None, :]
        if np.abs(t.sum(axis=1) - rows).max() <= 1e-6 * total:
            break
    return t


def _normalise_rows(table: FloatArray, fallback: FloatArray) -> FloatArray:
    sums = table.sum(axis=1, keepdims=True)
    out: FloatArray = np.where(sums > 0, table / np.where(sums > 0, sums, 1.0), fallback[None, :])
    return out


def fit_adaptive(
    codes: IntArray,
    sizes: Sequence[int],
    one_way: Sequence[Measurement],
    total: float,
    sigmas: Sequence[float],
    choose: Callable[[int, FloatArray], int],
    measure: Callable[[int, FloatArray], FloatArray],
    gen: np.random.Generator,
) -> BayesNet:
    """Run the planned rounds and return the fitted network.

    ``codes`` are the private rows' compressed codes; ``one_way[i]`` the DP 1-way measurement of
    column i; ``total`` a DP estimate of the row count; ``sigmas[r]`` round r's public Gaussian sigma
    (``len(sigmas)`` = number of rounds = columns - 1). ``choose(r, scores)`` is round r's exponential
    mechanism and ``measure(r, counts)`` its Gaussian mechanism: the only calls that touch private
    values besides the counts they are given.
    """
    d = len(sizes)
    n_model = max(round(total), 1)
    p1: list[FloatArray] = []
    for i in range(d):
        p = project_simplex(one_way[i].values, total)
        p1.append(p / p.sum() if p.sum() > 0 else np.full(sizes[i], 1.0 / sizes[i]))
    synthetic = np.zeros((n_model, d), dtype=np.int64)
    placed: list[int] = []
    factors: list[Factor] = []
    for r, sigma in enumerate(sigmas):
        candidates = candidate_sets(placed, d, sizes)
        scores = np.empty(len(candidates), dtype=np.float64)
        model_cache: dict[tuple[int, ...], FloatArray] = {}
        private_cache: dict[tuple[int, ...], IntArray] = {}
        for k, (c, ps) in enumerate(candidates):
            n_par = _n_configs(ps, sizes)
            if ps not in private_cache:
                private_cache[ps] = _config_codes(codes, ps, sizes)
            truth = np.bincount(
                private_cache[ps] * sizes[c] + codes[:, c], minlength=n_par * sizes[c]
            ).astype(np.float64)
            if placed or not ps:
                if ps not in model_cache:
                    q = np.bincount(_config_codes(synthetic, ps, sizes), minlength=n_par).astype(np.float64)
                    model_cache[ps] = q / max(q.sum(), 1e-12)
                q_par = model_cache[ps]
            else:
                q_par = p1[ps[0]]
            est = total * np.outer(q_par, p1[c]).ravel()
            penalty = math.sqrt(2.0 / math.pi) * sigma * n_par * sizes[c]
            scores[k] = float(np.abs(truth - est).sum()) - penalty
        c, ps = candidates[choose(r, scores)]
        n_par = _n_configs(ps, sizes)
        truth = np.bincount(
            _config_codes(codes, ps, sizes) * sizes[c] + codes[:, c], minlength=n_par * sizes[c]
        ).astype(np.float64)
        noisy = measure(r, truth).reshape(n_par, sizes[c])
        # The child's marginal: inverse-variance mix of its 1-way measurement and this table's margin.
        m1 = one_way[c]
        margin = noisy.sum(axis=0)
        var_margin = n_par * sigma**2
        child = (m1.values / m1.variance + margin / var_margin) / (1.0 / m1.variance + 1.0 / var_margin)
        child = project_simplex(child, total)
        table = project_simplex(noisy.ravel(), total).reshape(n_par, sizes[c])
        if not ps:
            factor = Factor(columns=(c,), parents=(), table=(child / max(child.sum(), 1e-12))[None, :])
        elif placed:
            q = np.bincount(_config_codes(synthetic, ps, sizes), minlength=n_par).astype(np.float64)
            parent_rows = total * q / max(q.sum(), 1e-12)
            raked = _rake(table, parent_rows, child)
            factor = Factor(columns=(c,), parents=ps, table=_normalise_rows(raked, child / child.sum()))
        else:
            # Round 1: both columns are new; the parent's marginal mixes its 1-way and the margin too.
            a = ps[0]
            ma = one_way[a]
            var_a = sizes[c] * sigma**2
            parent = (ma.values / ma.variance + noisy.sum(axis=1) / var_a) / (1.0 / ma.variance + 1.0 / var_a)
            raked = _rake(table, project_simplex(parent, total), child)
            joint = raked.ravel() / max(raked.sum(), 1e-12)
            factor = Factor(columns=(a, c), parents=(), table=joint[None, :])
            p1[a] = project_simplex(parent, total) / max(project_simplex(parent, total).sum(), 1e-12)
            placed.append(a)
        p1[c] = child / max(child.sum(), 1e-12)
        _draw(synthetic, factor, sizes, gen)
        placed.append(c)
        factors.append(factor)
    # Columns never placed (a single column, or none of the rounds reached them): independent.
    for i in range(d):
        if i not in placed:
            factors.append(Factor(columns=(i,), parents=(), table=p1[i][None, :]))
    return BayesNet(sizes=tuple(sizes), factors=tuple(factors))
