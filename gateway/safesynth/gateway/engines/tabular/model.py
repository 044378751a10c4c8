"""The MST-style tree model in numpy: consistent marginals on a spanning tree, and sampling from it.

Given noisy 1-way marginals of every column and noisy 2-way marginals on the edges of a tree (all of
them DP releases), the model

1. estimates each column's 1-way marginal by inverse-variance weighting of every measurement that
   covers it (its own 1-way and the margins of the incident 2-ways), then projects it onto the
   simplex of the estimated total (non-negative, summing to N);
2. makes each edge table non-negative (simplex projection) and rakes it (iterative proportional
   fitting) to the two estimated 1-ways, so that all marginals are mutually consistent;
3. samples root to leaves: p(root) * prod p(child | parent), with controlled rounding (each group of
   rows gets its expected count of each value, rounded at random) to keep sampling noise small.

For a tree, locally consistent marginals are the marginals of exactly one tree-structured
distribution, which is what we sample (McKenna, Miklau & Sheldon 2021 solve the same estimation
problem with Private-PGM; the raking here is a fast approximation of its least-squares fit).
Everything here is post-processing of DP releases; ``select_tree`` is the only step that touches
private counts, through the exponential mechanism handed in as ``choose``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Measurement",
    "TreeModel",
    "allocate",
    "fit_tree_model",
    "independence_scores",
    "project_simplex",
    "rake",
    "select_tree",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def project_simplex(values: FloatArray, total: float) -> FloatArray:
    """The Euclidean projection of ``values`` onto ``{x >= 0, sum(x) = total}`` (``total`` >= 0).

    Sort-based algorithm (Duchi et al. 2008). Keeps large cells, zeroes noise-only cells.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if total <= 0 or v.size == 0:
        return np.zeros_like(v)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - total
    ind = np.arange(1, v.size + 1)
    cond = u - css / ind > 0
    rho = int(ind[cond][-1]) if cond.any() else 1
    theta = css[rho - 1] / rho
    out: FloatArray = np.maximum(v - theta, 0.0)
    return out


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: ``values`` (shape = the compressed domain sizes of its columns) and the noise
    variance of each cell (``variance``, same shape)."""

    values: FloatArray
    variance: FloatArray


def independence_scores(
    pairs: Sequence[tuple[int, int]],
    true_counts: Callable[[int, int], FloatArray],
    probs: Sequence[FloatArray],
    total: float,
) -> FloatArray:
    """MST's edge weights: ``|| X_ij - N p_i p_j^T ||_1`` per pair, where X is the private 2-way count
    table and p the (already DP) 1-way estimates. Sensitivity: 1 per row the privacy unit holds."""
    scores = np.empty(len(pairs), dtype=np.float64)
    for k, (i, j) in enumerate(pairs):
        est = total * np.outer(probs[i], probs[j])
        scores[k] = float(np.abs(true_counts(i, j) - est).sum())
    return scores


def select_tree(
    n_columns: int,
    scores: Mapping[tuple[int, int], float],
    choose: Callable[[FloatArray], int],
) -> list[tuple[int, int]]:
    """A spanning tree picked edge by edge (Kruskal order) with ``choose`` (the exponential
    mechanism) among the edges joining two different components: ``n_columns - 1`` calls."""
    parent = list(range(n_columns))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges: list[tuple[int, int]] = []
    for _ in range(n_columns - 1):
        candidates = [e for e in sorted(scores) if find(e[0]) != find(e[1])]
        picked = candidates[choose(np.array([scores[e] for e in candidates], dtype=np.float64))]
        edges.append(picked)
        parent[find(picked[0])] = find(picked[1])
    return edges


def allocate(n: int, p: FloatArray, gen: np.random.Generator) -> IntArray:
    """Counts summing to ``n`` with expectation exactly ``n * p``: floors plus a systematic random
    rounding of the fractional parts (in a random order), so that each count is the floor or the
    ceiling of its expectation and is rounded up with probability equal to its fractional part."""
    p = np.asarray(p, dtype=np.float64)
    s = p.sum()
    p = np.full(p.size, 1.0 / p.size) if not s > 0 else p / s
    expected = n * p
    base = np.floor(expected).astype(np.int64)
    rest = int(n - base.sum())
    if rest > 0:
        frac = np.clip(expected - base, 0.0, 1.0)
        order = gen.permutation(p.size)
        cum = np.cumsum(frac[order])
        cum *= rest / cum[-1] if cum[-1] > 0 else 1.0
        u = float(gen.random())
        picks = np.diff(np.floor(np.concatenate([[0.0], cum]) + u)).astype(np.int64)
        picks = np.minimum(picks, 1)
        short = rest - int(picks.sum())
        if short:  # floating-point edge: fix up among the largest fractional parts
            ranked = np.argsort(-frac[order] if short > 0 else frac[order], kind="stable")
            for k in ranked:
                if short == 0:
                    break
                if short > 0 and picks[k] == 0:
                    picks[k], short = 1, short - 1
                elif short < 0 and picks[k] == 1:
                    picks[k], short = 0, short + 1
        base[order] += picks
    return base


def rake(table: FloatArray, rows: FloatArray, cols: FloatArray, iterations: int = 100) -> FloatArray:
    """Iterative proportional fitting of a non-negative table to the given margins."""
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


@dataclass(frozen=True)
class TreeModel:
    """A tree-structured distribution over compressed column codes.

    ``sizes[i]`` is column i's domain size; ``marginals[i]`` its probability vector; ``edges`` maps
    (parent, child) to the joint table of the pair (rows: parent values), both consistent.
    ``order`` lists (parent or -1, node) in sampling order.
    """

    sizes: tuple[int, ...]
    marginals: tuple[FloatArray, ...]
    joints: Mapping[tuple[int, int], FloatArray]
    order: tuple[tuple[int, int], ...]
    total: float

    def sample(self, n: int, gen: np.random.Generator) -> IntArray:
        """``n`` rows of codes (n x columns), root to leaves, with controlled rounding."""
        out = np.zeros((n, len(self.sizes)), dtype=np.int64)
        for parent, node in self.order:
            if parent < 0:
                counts = allocate(n, self.marginals[node], gen)
                column = np.repeat(np.arange(self.sizes[node], dtype=np.int64), counts)
                gen.shuffle(column)
                out[:, node] = column
                continue
            joint = self.joints[(parent, node)]
            pcodes = out[:, parent]
            rows_by_value = np.argsort(pcodes, kind="stable")
            bounds = np.searchsorted(pcodes[rows_by_value], np.arange(self.sizes[parent] + 1))
            child = np.empty(n, dtype=np.int64)
            for a in range(self.sizes[parent]):
                start, stop = int(bounds[a]), int(bounds[a + 1])
                if stop == start:
                    continue
                cond = joint[a]
                if not cond.sum() > 0:
                    cond = self.marginals[node]
                values = np.repeat(
                    np.arange(self.sizes[node], dtype=np.int64), allocate(stop - start, cond, gen)
                )
                gen.shuffle(values)
                child[rows_by_value[start:stop]] = values
            out[:, node] = child
        return out


def _combined_total(estimates: Sequence[tuple[float, float]]) -> float:
    """Inverse-variance weighted mean of (value, variance) estimates of the row count, at least 1."""
    weights = np.array([1.0 / max(v, 1e-12) for _, v in estimates])
    values = np.array([x for x, _ in estimates])
    return max(float((weights * values).sum() / weights.sum()), 1.0)


def fit_tree_model(
    sizes: Sequence[int],
    one_way: Mapping[int, Measurement],
    two_way: Mapping[tuple[int, int], Measurement],
    total_estimates: Sequence[tuple[float, float]],
) -> TreeModel:
    """A consistent tree model from noisy marginals (post-processing).

    ``one_way`` must cover every column; ``two_way`` keys are the tree (or forest) edges;
    ``total_estimates`` are (value, variance) estimates of the number of rows (e.g. a DP count);
    the sums of the marginals are added to them.
    """
    d = len(sizes)
    estimates = list(total_estimates)
    for m in (*one_way.values(), *two_way.values()):
        estimates.append((float(m.values.sum()), float(m.variance.sum())))
    total = _combined_total(estimates)

    # 1. Node marginals: inverse-variance weighting of all measurements covering the node.
    marginals: list[FloatArray] = []
    for i in range(d):
        m1 = one_way[i]
        num = m1.values / m1.variance
        den = 1.0 / m1.variance
        for (a, b), m2 in two_way.items():
            if i not in (a, b):
                continue
            axis = 1 if i == a else 0
            val = m2.values.sum(axis=axis)
            var = m2.variance.sum(axis=axis)
            num = num + val / var
            den = den + 1.0 / var
        marginals.append(project_simplex(num / den, total))

    # 2. Edge tables: non-negative, then raked to the node marginals.
    adjacency: dict[int, list[int]] = {i: [] for i in range(d)}
    raw: dict[tuple[int, int], FloatArray] = {}
    for (a, b), m2 in two_way.items():
        table = project_simplex(m2.values, total).reshape(m2.values.shape)
        raw[(a, b)] = rake(table, marginals[a], marginals[b])
        adjacency[a].append(b)
        adjacency[b].append(a)

    # 3. Sampling order: breadth first from the highest-degree node of each component.
    order: list[tuple[int, int]] = []
    joints: dict[tuple[int, int], FloatArray] = {}
    seen: set[int] = set()
    for root in sorted(range(d), key=lambda k: (-len(adjacency[k]), k)):
        if root in seen:
            continue
        seen.add(root)
        order.append((-1, root))
        queue = [root]
        while queue:
            node = queue.pop(0)
            for child in sorted(adjacency[node]):
                if child in seen:
                    continue
                seen.add(child)
                order.append((node, child))
                table = raw[(node, child)] if (node, child) in raw else raw[(child, node)].T
                joints[(node, child)] = table
                queue.append(child)
    probs = tuple(m / m.sum() if m.sum() > 0 else np.full(m.size, 1.0 / m.size) for m in marginals)
    return TreeModel(sizes=tuple(sizes), marginals=probs, joints=joints, order=tuple(order), total=total)
