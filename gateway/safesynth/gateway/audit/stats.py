"""Statistics of membership scores: AUC with DeLong intervals, TPR at low FPR, advantage, one
permutation p-value over all attacks, and empirical epsilon lower bounds.

Scores are oriented so that *higher means "more likely a member"*. Labels are the audit pool's
membership coins (1 = in the training data).

* AUC: Mann-Whitney with mid-ranks; standard error by DeLong et al. (1988) in the fast form of
  Sun & Xu (2014).
* TPR at FPR <= f: the threshold is the strictest one whose FPR on the non-members is at most f; the
  interval is Clopper-Pearson on the members above it (conditional on the threshold).
* Advantage: max over thresholds of TPR - FPR (Yeom et al. 2018; the Kolmogorov-Smirnov statistic).
* Permutation test: every attack gives two statistics (AUC, advantage), on all pool records and on the
  most isolated ones; each is studentised by its permutation mean and standard deviation, and the
  maximum is compared with its permutation distribution. Membership coins are fair and independent,
  so the test is exact under "the release does not depend on the pool's membership".
* Epsilon lower bounds: the one-run bound of Steinke, Nasr & Jagielski (2023): if the attack makes r
  guesses and W are right, then under epsilon-DP, W is dominated by Binomial(r, e^eps / (1 + e^eps)); and
  the classical Clopper-Pearson bound ln((TPR_lo - delta) / FPR_hi) (Jagielski et al. 2020). Delta is
  handled conservatively by a union bound (the bound holds except with probability beta + 2 m delta).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

__all__ = [
    "PermutationTest",
    "StatColumn",
    "advantage",
    "auc_delong",
    "clopper_pearson",
    "cp_epsilon",
    "midranks",
    "one_run_epsilon",
    "permutation_pvalue",
    "tpr_at_fpr",
]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def midranks(x: F64) -> F64:
    """1-based ranks with ties given their average rank."""
    return np.asarray(sps.rankdata(x, method="average"), dtype=np.float64)


def auc_delong(scores: F64, labels: B) -> tuple[float, float]:
    """``(auc, standard_error)``; (0.5, 0.0) when a class is empty."""
    pos, neg = scores[labels], scores[~labels]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return 0.5, 0.0
    r_all = midranks(np.concatenate([pos, neg]))
    r_pos, r_neg = midranks(pos), midranks(neg)
    auc = float((r_all[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    v10 = (r_all[:m] - r_pos) / n
    v01 = 1.0 - (r_all[m:] - r_neg) / m
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return auc, math.sqrt(max(s10 / m + s01 / n, 0.0))


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided exact ``1 - alpha`` interval for a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def tpr_at_fpr(scores: F64, labels: B, fpr: float) -> tuple[float, int, int]:
    """``(tpr, true_positives, members)`` at the strictest threshold whose FPR is at most ``fpr``."""
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return 0.0, 0, int(pos.size)
    allowed = math.floor(fpr * neg.size + 1e-9)
    neg_sorted = np.sort(neg)[::-1]
    # threshold t: predict member when score > t; the allowed-th largest negative score is the cut.
    thr = neg_sorted[allowed] if allowed < neg.size else -np.inf
    tp = int(np.count_nonzero(pos > thr))
    return tp / pos.size, tp, int(pos.size)


def advantage(scores: F64, labels: B) -> float:
    """max over thresholds of TPR - FPR (ties kept together)."""
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], labels[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(lab)[ends]
    fp = ends + 1 - tp
    return float(max(0.0, np.max(tp / n1 - fp / n0)))


@dataclass(frozen=True)
class StatColumn:
    """One attack's scores on one subset of the pool (``subset`` is a boolean mask)."""

    name: str
    scores: F64
    subset: B


def _column_stats(col: StatColumn, perms: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
    """AUC and advantage of ``col`` under every label row of ``perms`` (shape P x n)."""
    idx = np.flatnonzero(col.subset)
    s = col.scores[idx]
    lab = perms[:, idx]
    n1 = lab.sum(axis=1, dtype=np.int64).astype(np.float64)
    n0 = idx.size - n1
    ok = (n1 > 0) & (n0 > 0)
    safe1, safe0 = np.where(ok, n1, 1.0), np.where(ok, n0, 1.0)
    r = midranks(s)
    auc = np.where(
        ok, (lab.astype(np.float32) @ r.astype(np.float32) - n1 * (n1 + 1) / 2.0) / (safe1 * safe0), 0.5
    )
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    ends = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    tp = np.cumsum(lab[:, order], axis=1, dtype=np.int32)[:, ends].astype(np.float32)
    fp = (ends + 1).astype(np.float32)[None, :] - tp
    adv = np.where(
        ok,
        np.max(tp / safe1[:, None].astype(np.float32) - fp / safe0[:, None].astype(np.float32), axis=1),
        0.0,
    )
    return np.asarray(auc, dtype=np.float64), np.maximum(np.asarray(adv, dtype=np.float64), 0.0)


class PermutationTest:
    """The max-statistic permutation test over attacks, with the label permutations drawn once.

    Each column's studentised statistics under the permutations are cached by name, so that a variant
    of the scores (the power simulation changes a few columns) costs only the changed columns.
    """

    def __init__(self, labels: B, *, n_permutations: int, rng: np.random.Generator) -> None:
        self.labels = labels
        self.perms = np.empty((n_permutations + 1, labels.size), dtype=np.bool_)
        self.perms[0] = labels
        self.perms[1:] = rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1)
        self._cache: dict[str, list[tuple[str, F64]]] = {}

    def z(self, col: StatColumn, rows: int | None = None) -> list[tuple[str, F64]]:
        """Studentised (name, statistic per permutation row) of one column; row 0 is the observed."""
        perms = self.perms if rows is None else self.perms[: rows + 1]
        out: list[tuple[str, F64]] = []
        for stat_name, values in zip(("auc", "advantage"), _column_stats(col, perms), strict=True):
            null = values[1:]
            sd = float(null.std())
            if sd <= 1e-12:
                continue
            out.append((f"{col.name}:{stat_name}", (values - float(null.mean())) / sd))
        return out

    def pvalue(
        self, columns: Sequence[StatColumn], *, changed: Sequence[StatColumn] = (), rows: int | None = None
    ) -> tuple[float, str]:
        """p-value over ``columns`` (cached by name) plus ``changed`` (recomputed, not cached)."""
        if self.labels.sum() == 0 or (~self.labels).sum() == 0:
            return 1.0, ""
        n_rows = self.perms.shape[0] - 1 if rows is None else min(rows, self.perms.shape[0] - 1)
        parts: list[tuple[str, F64]] = []
        for col in columns:
            if col.name not in self._cache:
                self._cache[col.name] = self.z(col)
            parts += [(name, z[: n_rows + 1]) for name, z in self._cache[col.name]]
        for col in changed:
            parts += self.z(col, n_rows)
        if not parts:
            return 1.0, ""
        z = np.vstack([p[1] for p in parts])
        t = z.max(axis=0)
        p = (1.0 + float(np.count_nonzero(t[1:] >= t[0] - 1e-12))) / (n_rows + 1.0)
        return min(1.0, p), parts[int(np.argmax(z[:, 0]))][0]


def permutation_pvalue(
    columns: Sequence[StatColumn],
    labels: B,
    *,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, str]:
    """One p-value across all columns (max of studentised AUC and advantage) and the column that won."""
    if not columns:
        return 1.0, ""
    return PermutationTest(labels, n_permutations=n_permutations, rng=rng).pvalue(columns)


def one_run_epsilon(correct: int, guesses: int, *, beta: float) -> float:
    """Largest epsilon rejected at level ``beta``: P[Bin(r, e^eps/(1+e^eps)) >= W] <= beta (0 if none)."""
    if guesses <= 0 or correct <= 0 or beta <= 0:
        return 0.0

    def tail(eps: float) -> float:
        p = 1.0 / (1.0 + math.exp(-eps))
        return float(sps.binom.sf(correct - 1, guesses, p))

    if tail(0.0) > beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while tail(hi) <= beta and hi < 64:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if tail(mid) <= beta:
            lo = mid
        else:
            hi = mid
    return lo


def cp_epsilon(tp: int, n1: int, fp: int, n0: int, *, beta: float, delta: float) -> float:
    """Clopper-Pearson lower bound on epsilon from one threshold's counts (0 if none)."""
    if n1 == 0 or n0 == 0:
        return 0.0
    # four one-sided bounds at beta/4 each (a two-sided beta/2 interval is one-sided beta/4 per side)
    tpr_lo, _ = clopper_pearson(tp, n1, beta / 2)
    _, fpr_hi = clopper_pearson(fp, n0, beta / 2)
    tnr_lo, _ = clopper_pearson(n0 - fp, n0, beta / 2)
    _, fnr_hi = clopper_pearson(n1 - tp, n1, beta / 2)
    best = 0.0
    for num, den in ((tpr_lo - delta, fpr_hi), (tnr_lo - delta, fnr_hi)):
        if num > 0 and den > 0:
            best = max(best, math.log(num / den))
    return best
