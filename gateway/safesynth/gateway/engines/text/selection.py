"""Post-processing of noisy vote histograms: threshold, parent selection, output selection.

Everything here reads only DP outputs (noisy histograms, noisy counts) and public candidates, with the
engine's non-private random generator; it costs no privacy budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "SELECTION_MODES",
    "SelectionMode",
    "allocate",
    "apply_threshold",
    "select_output",
    "select_parents",
]

SelectionMode = Literal["sample", "rank", "proportional"]

#: The selection modes, in the order the options list them.
SELECTION_MODES: tuple[str, ...] = ("proportional", "rank", "sample")


def apply_threshold(noisy: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.float64]:
    """``max(noisy - threshold, 0)``: counts that noise alone would likely produce are dropped."""
    return np.clip(np.asarray(noisy, dtype=np.float64) - threshold, 0.0, None)


def _weights_or_uniform(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = float(weights.sum())
    if total <= 0.0 or not np.isfinite(total):
        return np.full(weights.shape[0], 1.0 / weights.shape[0])
    return weights / total


def select_parents(
    weights: npt.NDArray[np.float64], n: int, mode: SelectionMode, gen: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``n`` parent indices: sampled with replacement proportionally to ``weights`` ("sample") or the
    top of the ranking, cycled ("rank"). All-zero weights (nothing above the threshold) fall back to
    uniform sampling, i.e. to the previous population."""
    m = weights.shape[0]
    if m == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    if mode == "sample":
        return np.asarray(gen.choice(m, size=n, replace=True, p=_weights_or_uniform(weights)), dtype=np.int64)
    order = _rank(weights, gen)
    return np.asarray(np.resize(order, n), dtype=np.int64)


def _rank(weights: npt.NDArray[np.float64], gen: np.random.Generator) -> npt.NDArray[np.int64]:
    """Indices by decreasing weight, ties broken at random."""
    tie_break = gen.permutation(weights.shape[0])
    order = np.lexsort((tie_break, -weights))
    return np.asarray(order, dtype=np.int64)


def select_output(
    weights: npt.NDArray[np.float64], n: int, mode: SelectionMode, gen: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Indices of ``n`` output rows and, for each, whether it repeats an earlier pick.

    A first pick of a candidate outputs the candidate itself; a repeated pick is to be replaced by a
    fresh variation of that candidate, so the output has no duplicates by construction.
    "sample" draws with replacement proportionally to the weights; "rank" takes the candidates with
    positive weight in decreasing order first, then samples the rest; "proportional" gives each
    candidate ``n * w_i / sum(w)`` rows, rounded by largest remainder (the noisy histogram read as the
    estimate of the private distribution, without the sampling noise of "sample"), in decreasing order of
    weight, a candidate's rows next to each other. "rank" outputs each positive candidate once whatever its
    votes, so the less noise, the more candidates pass the threshold and the closer the output gets to
    the unselected population; "proportional" keeps the vote mass at every noise level.
    """
    m = weights.shape[0]
    if m == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    if mode == "proportional":
        order = _rank(weights, gen)
        rows = np.asarray(allocate(n, _weights_or_uniform(weights)[order].tolist()), dtype=np.int64)
        picks = np.repeat(order, rows)
    elif mode == "rank":
        order = _rank(weights, gen)
        positive = order[weights[order] > 0][:n]
        rest = n - positive.shape[0]
        extra = (
            gen.choice(m, size=rest, replace=True, p=_weights_or_uniform(weights))
            if rest > 0
            else np.zeros(0, dtype=np.int64)
        )
        picks = np.concatenate([positive, np.asarray(extra, dtype=np.int64)])
    else:
        picks = np.asarray(
            gen.choice(m, size=n, replace=True, p=_weights_or_uniform(weights)), dtype=np.int64
        )
    seen: set[int] = set()
    repeat = np.zeros(n, dtype=bool)
    for i, idx in enumerate(picks.tolist()):
        repeat[i] = idx in seen
        seen.add(idx)
    return picks.astype(np.int64), repeat


def allocate(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``shares`` (largest remainder; negatives as 0)."""
    clipped = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
    if total <= 0 or clipped.shape[0] == 0:
        return [0] * len(shares)
    s = float(clipped.sum())
    frac = clipped / s if s > 0 else np.full(clipped.shape[0], 1.0 / clipped.shape[0])
    raw = frac * total
    base = np.floor(raw).astype(np.int64)
    remainder = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:remainder]] += 1
    return [int(x) for x in base]
