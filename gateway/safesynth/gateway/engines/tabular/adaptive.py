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

from safesynth.gateway.engines.tabular.model import Measurement, allocate, project_simplex, rake

__all__ = ["MAX_CELLS", "BayesNet", "Factor", "LogLinearFactor", "candidate_sets", "fit_adaptive"]

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
    return math.prod(sizes[c] for c in columns)


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
class LogLinearFactor:
    """A column with several measured parent sets: ``p(c | u) ∝ exp(sum_i thetas[i][P_i(u), c])``,
    the maximum-entropy combination of its measured tables (``thetas[i]`` has one row per
    configuration of ``parent_sets[i]``)."""

    column: int
    parent_sets: tuple[tuple[int, ...], ...]
    thetas: tuple[FloatArray, ...]

    @property
    def columns(self) -> tuple[int, ...]:
        """The one column this factor draws."""
        return (self.column,)

    @property
    def parents(self) -> tuple[int, ...]:
        """Every parent (union of the parent sets, in first-seen order)."""
        return tuple(dict.fromkeys(p for ps in self.parent_sets for p in ps))

    def draw(self, out: IntArray, sizes: Sequence[int], gen: np.random.Generator) -> None:
        """Fill ``out[:, column]`` row by row from the conditional given the parents in ``out``."""
        n = out.shape[0]
        logits = np.zeros((n, sizes[self.column]))
        for ps, theta in zip(self.parent_sets, self.thetas, strict=True):
            logits += theta[_config_codes(out, ps, sizes)]
        logits -= logits.max(axis=1, keepdims=True)
        cdf = np.cumsum(np.exp(logits), axis=1)
        u = np.asarray(gen.random(n), dtype=np.float64)[:, None] * cdf[:, -1:]
        out[:, self.column] = np.minimum((cdf < u).sum(axis=1), sizes[self.column] - 1)


@dataclass(frozen=True)
class BayesNet:
    """A Bayesian network over compressed column codes: ``factors`` in sampling order."""

    sizes: tuple[int, ...]
    factors: tuple[Factor | LogLinearFactor, ...]
    #: The rounds' noisy tables as (columns, flat values, noise sigma): DP releases, kept for the final
    #: raking (:mod:`.raking`).
    measured: tuple[tuple[tuple[int, ...], FloatArray, float], ...] = ()

    def sample(self, n: int, gen: np.random.Generator) -> IntArray:
        """``n`` rows of codes (n x columns), ancestrally (controlled rounding for single tables)."""
        out = np.zeros((n, len(self.sizes)), dtype=np.int64, order="F")
        for factor in self.factors:
            if isinstance(factor, Factor):
                _draw(out, factor, self.sizes, gen)
            else:
                factor.draw(out, self.sizes, gen)
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


def _normalise_rows(table: FloatArray, fallback: FloatArray) -> FloatArray:
    sums = table.sum(axis=1, keepdims=True)
    out: FloatArray = np.where(sums > 0, table / np.where(sums > 0, sums, 1.0), fallback[None, :])
    return out


def _mixed_marginal(
    m1: Measurement, noisy: FloatArray, axis: int, n_other: int, sigma: float, total: float
) -> FloatArray:
    """Inverse-variance mix of a 1-way measurement and a noisy table's margin, on the simplex."""
    margin = noisy.sum(axis=axis)
    var_margin = n_other * sigma**2
    mixed = (m1.values / m1.variance + margin / var_margin) / (1.0 / m1.variance + 1.0 / var_margin)
    return project_simplex(mixed, total)


def _fit_log_linear(
    column: int,
    tables: Sequence[tuple[tuple[int, ...], FloatArray]],
    sample: IntArray,
    sizes: Sequence[int],
    iterations: int = 30,
) -> LogLinearFactor:
    """The maximum-entropy conditional ``p(c | parents)`` whose implied ``(c, P_i)`` tables, over the
    parents in ``sample``, match each measured conditional ``tables[i] = (P_i, p(c | P_i))``:
    iterative proportional fitting of a log-linear model (post-processing). Works on the distinct
    parent configurations of ``sample`` weighted by their counts."""
    k = sizes[column]
    union = tuple(dict.fromkeys(p for ps, _ in tables for p in ps))
    if math.prod(sizes[p] for p in union) < 2**62:  # distinct rows by one integer key (fast)
        _, first, weights = np.unique(
            _config_codes(sample, union, sizes), return_index=True, return_counts=True
        )
        configs = [_config_codes(sample[first], ps, sizes) for ps, _ in tables]
    else:
        raw = np.stack([_config_codes(sample, ps, sizes) for ps, _ in tables], axis=1)
        unique, weights = np.unique(raw, axis=0, return_counts=True)
        configs = [np.ascontiguousarray(unique[:, i]) for i in range(len(tables))]
    w = weights.astype(np.float64)
    targets = []
    for (_, cond), cfg in zip(tables, configs, strict=True):
        counts = np.bincount(cfg, weights=w, minlength=cond.shape[0])
        targets.append(cond * counts[:, None])
    thetas = [np.zeros_like(cond) for _, cond in tables]
    thetas[0] = np.log(np.maximum(tables[0][1], 1e-12))
    logits = thetas[0][configs[0]].copy()
    for _ in range(iterations):
        worst = 0.0
        for i, (cfg, target) in enumerate(zip(configs, targets, strict=True)):
            shifted = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(shifted)
            probs *= (w / probs.sum(axis=1))[:, None]
            implied = np.stack(
                [np.bincount(cfg, weights=probs[:, j], minlength=target.shape[0]) for j in range(k)], axis=1
            )
            ratio = np.log(np.maximum(target, 1e-9)) - np.log(np.maximum(implied, 1e-9))
            step = np.where(implied > 0, ratio, 0.0)
            new = np.clip(thetas[i] + step, -40.0, 40.0)
            logits += (new - thetas[i])[cfg]
            thetas[i] = new
            worst = max(worst, float(np.abs(target - implied).max()))
        if worst <= 0.5:  # within half a row of every target count
            break
    return LogLinearFactor(column=column, parent_sets=tuple(ps for ps, _ in tables), thetas=tuple(thetas))


def _node_factor(
    column: int,
    tables: Sequence[tuple[tuple[int, ...], FloatArray]],
    sample: IntArray,
    sizes: Sequence[int],
) -> Factor | LogLinearFactor:
    if len(tables) == 1:
        ps, cond = tables[0]
        return Factor(columns=(column,), parents=ps, table=cond)
    return _fit_log_linear(column, tables, sample, sizes)


def _redraw(
    sample: IntArray, factor: Factor | LogLinearFactor, sizes: Sequence[int], gen: np.random.Generator
) -> None:
    if isinstance(factor, Factor):
        _draw(sample, factor, sizes, gen)
    else:
        factor.draw(sample, sizes, gen)


def _covered(ps: tuple[int, ...], measured: Sequence[tuple[int, ...]]) -> bool:
    return any(set(ps) <= set(m) for m in measured)


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
    (``len(sigmas)`` = number of rounds, at least columns - 1). ``choose(r, scores)`` is round r's
    exponential mechanism and ``measure(r, counts)`` its Gaussian mechanism: the only calls that touch
    private values besides the counts they are given.

    The first rounds may place new columns or refine placed ones; once the rounds left equal the
    columns not yet placed, only placements compete (so every column is placed).
    """
    d = len(sizes)
    n_model = max(round(total), 1)
    p1: list[FloatArray] = []
    for i in range(d):
        p = project_simplex(one_way[i].values, total)
        p1.append(p / p.sum() if p.sum() > 0 else np.full(sizes[i], 1.0 / sizes[i]))
    synthetic = np.zeros((n_model, d), dtype=np.int64, order="F")  # column access is contiguous
    codes = np.asfortranarray(codes)
    order: list[int] = []
    tables: dict[int, list[tuple[tuple[int, ...], FloatArray]]] = {}
    factors: dict[int, Factor | LogLinearFactor] = {}
    private_cache: dict[tuple[int, ...], IntArray] = {}

    truth_cache: dict[tuple[int, tuple[int, ...]], FloatArray] = {}
    releases: list[tuple[tuple[int, ...], FloatArray, float]] = []

    def private_table(c: int, ps: tuple[int, ...]) -> FloatArray:
        if (c, ps) not in truth_cache:
            if ps not in private_cache:
                private_cache[ps] = _config_codes(codes, ps, sizes)
            n_par = _n_configs(ps, sizes)
            flat = private_cache[ps] * sizes[c] + codes[:, c]
            truth_cache[(c, ps)] = np.bincount(flat, minlength=n_par * sizes[c]).astype(np.float64)
        return truth_cache[(c, ps)]

    n_rounds = len(sigmas)
    for r, sigma in enumerate(sigmas):
        unplaced = d - len(order)
        candidates: list[tuple[int, tuple[int, ...]]] = candidate_sets(order, d, sizes) if unplaced else []
        if order and n_rounds - r > unplaced:  # refinements may compete
            for pos, c in enumerate(order):
                measured = [ps for ps, _ in tables[c]]
                before = sorted(order[:pos])
                parent_sets: list[tuple[int, ...]] = [(p,) for p in before]
                parent_sets += list(combinations(before, 2))
                for pset in parent_sets:
                    if not _covered(pset, measured) and _n_configs(pset, sizes) * sizes[c] <= MAX_CELLS:
                        candidates.append((c, pset))
        if not candidates:  # nothing left to refine: re-measure the largest table of the last column
            c = order[-1]
            candidates = [(c, max((ps for ps, _ in tables[c]), key=len))]
        scores = np.empty(len(candidates), dtype=np.float64)
        model_cache: dict[tuple[int, ...], FloatArray] = {}
        synthetic_cache: dict[tuple[int, ...], IntArray] = {}
        for k, (c, ps) in enumerate(candidates):
            n_par = _n_configs(ps, sizes)
            truth = private_table(c, ps)
            if c in factors:  # the model's own estimate of the (c, P) table
                if ps not in synthetic_cache:
                    synthetic_cache[ps] = _config_codes(synthetic, ps, sizes)
                est = np.bincount(
                    synthetic_cache[ps] * sizes[c] + synthetic[:, c], minlength=truth.size
                ).astype(np.float64)
                est *= total / max(est.sum(), 1e-12)
            else:  # c is not in the model yet: independent of its parents
                if ps not in model_cache:
                    if order:
                        q = np.bincount(_config_codes(synthetic, ps, sizes), minlength=n_par).astype(
                            np.float64
                        )
                        model_cache[ps] = q / max(q.sum(), 1e-12)
                    else:
                        model_cache[ps] = p1[ps[0]]
                est = total * np.outer(model_cache[ps], p1[c]).ravel()
            penalty = math.sqrt(2.0 / math.pi) * sigma * n_par * sizes[c]
            scores[k] = float(np.abs(truth - est).sum()) - penalty
        c, ps = candidates[choose(r, scores)]
        n_par = _n_configs(ps, sizes)
        noisy = measure(r, private_table(c, ps)).reshape(n_par, sizes[c])
        releases.append(((*ps, c), noisy.ravel().copy(), float(sigma)))
        child = _mixed_marginal(one_way[c], noisy, 0, n_par, sigma, total)
        table = project_simplex(noisy.ravel(), total).reshape(n_par, sizes[c])
        if not order and ps:  # round 1: a pair of new columns, parent first
            a = ps[0]
            parent = _mixed_marginal(one_way[a], noisy, 1, sizes[c], sigma, total)
            raked = rake(table, parent, child, iterations=50)
            p1[a] = parent / max(parent.sum(), 1e-12)
            tables[a] = [((), p1[a][None, :])]
            factors[a] = _node_factor(a, tables[a], synthetic, sizes)
            _redraw(synthetic, factors[a], sizes, gen)
            order.append(a)
        elif ps:
            q = np.bincount(_config_codes(synthetic, ps, sizes), minlength=n_par).astype(np.float64)
            raked = rake(table, total * q / max(q.sum(), 1e-12), child, iterations=50)
        else:
            raked = child[None, :]
        p1[c] = child / max(child.sum(), 1e-12)
        cond = _normalise_rows(raked, p1[c])
        cond = (1.0 - 1e-3) * cond + 1e-3 * p1[c][None, :]  # no hard zeros between measurements
        tables.setdefault(c, []).append((ps, cond))
        factors[c] = _node_factor(c, tables[c], synthetic, sizes)
        if c not in order:
            order.append(c)
            _redraw(synthetic, factors[c], sizes, gen)
        else:  # a refined column: redraw it and everything after it
            for later in order[order.index(c) :]:
                _redraw(synthetic, factors[later], sizes, gen)
    # Columns never placed (a single column, or no rounds): independent.
    for i in range(d):
        if i not in factors:
            factors[i] = Factor(columns=(i,), parents=(), table=p1[i][None, :])
            order.append(i)
    return BayesNet(sizes=tuple(sizes), factors=tuple(factors[i] for i in order), measured=tuple(releases))
