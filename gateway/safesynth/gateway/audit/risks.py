"""Singling-out, linkability and inference risks in the manner of Giomi et al. (2023), "A unified
framework for quantifying privacy risk in synthetic data" (Anonymeter), re-implemented from the paper.

Each attack is run on *targets* from the training data (audit-pool members) and, as a control, on
records the engine never saw (pool non-members, the same number in expectation and drawn the same
way). A baseline attack that ignores the release's joint structure shows whether the attack works at
all. The risk is the success on targets beyond the control, normalised:
``risk = (rate_main - rate_control) / (1 - rate_control)``; its interval combines Wilson intervals of
both rates (95%). EDPB/WP29 Opinion 05/2014 names these three criteria.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from safesynth.gateway.audit.encoding import EncodedTable, MixedEncoder, take

__all__ = ["RiskEstimate", "risk_from_rates", "singling_out", "wilson"]

B = npt.NDArray[np.bool_]
_Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RiskEstimate:
    """One Anonymeter-style risk with its rates (aggregates only)."""

    name: str
    n_main: int
    n_control: int
    main_rate: float
    control_rate: float
    baseline_rate: float
    risk: float
    risk_low: float
    risk_high: float


def _norm(main: float, control: float) -> float:
    return 0.0 if control >= 1.0 else (main - control) / (1.0 - control)


def risk_from_rates(name: str, main: B, control: B, baseline: B) -> RiskEstimate:
    """Risk from per-attempt success indicators on targets, controls and the baseline."""
    km, nm = int(main.sum()), int(main.size)
    kc, nc = int(control.sum()), int(control.size)
    rm = km / nm if nm else 0.0
    rc = kc / nc if nc else 0.0
    rb = float(baseline.mean()) if baseline.size else 0.0
    m_lo, m_hi = wilson(km, nm)
    c_lo, c_hi = wilson(kc, nc)
    return RiskEstimate(
        name=name,
        n_main=nm,
        n_control=nc,
        main_rate=rm,
        control_rate=rc,
        baseline_rate=rb,
        risk=_norm(rm, rc),
        risk_low=max(-1.0, _norm(m_lo, c_hi)),
        risk_high=min(1.0, _norm(m_hi, c_lo)),
    )


def _match_col(table: EncodedTable, col: str, source: EncodedTable, row: int) -> B:
    """Rows of ``table`` whose ``col`` equals ``source``'s (numbers: the same reference mid-rank)."""
    if col in table.codes:
        return np.asarray(table.codes[col] == source.codes[col][row], dtype=np.bool_)
    v = source.values[col][row]
    t = table.values[col]
    if math.isnan(v):
        return np.asarray(np.isnan(t), dtype=np.bool_)
    return np.asarray(np.abs(np.nan_to_num(t, nan=9.0) - v) <= 1e-9, dtype=np.bool_)


def _count(table: EncodedTable, cols: list[str], source: EncodedTable, row: int) -> int:
    ok = np.ones(table.n, dtype=np.bool_)
    for col in cols:
        ok &= _match_col(table, col, source, row)
    return int(ok.sum())


def singling_out(
    encoder: MixedEncoder,
    synthetic: EncodedTable,
    members: EncodedTable,
    controls: EncodedTable,
    *,
    n_queries: int,
    rng: np.random.Generator,
) -> RiskEstimate | None:
    """Multivariate singling out: predicates read off synthetic rows, scored on equal-sized sets.

    A predicate is a conjunction of one synthetic row's values (categories, and numbers at the same
    reference mid-rank) over columns added in random order until it holds for that row alone in the
    release (Giomi et al. 2023 keep the predicates that single out in the synthetic data). It succeeds
    on a set when exactly one record of the set satisfies it. Targets (training rows) and controls
    (rows no engine saw) are cut to the same size. The baseline builds each predicate from values of
    different random synthetic rows.
    """
    cols = encoder.tabular_columns
    n = min(members.n, controls.n)
    if len(cols) < 2 or n < 2 or synthetic.n < 1:
        return None
    main_t = take(members, rng.choice(members.n, n, replace=False))
    ctrl_t = take(controls, rng.choice(controls.n, n, replace=False))
    hits_main = np.zeros(n_queries, dtype=np.bool_)
    hits_ctrl = np.zeros(n_queries, dtype=np.bool_)
    hits_base = np.zeros(n_queries, dtype=np.bool_)
    for q in range(n_queries):
        row = int(rng.integers(0, synthetic.n))
        ok = np.ones(synthetic.n, dtype=np.bool_)
        chosen: list[str] = []
        for i in rng.permutation(len(cols)):
            chosen.append(cols[int(i)])
            ok &= _match_col(synthetic, cols[int(i)], synthetic, row)
            if len(chosen) >= 2 and ok.sum() <= 1:
                break
        hits_main[q] = _count(main_t, chosen, synthetic, row) == 1
        hits_ctrl[q] = _count(ctrl_t, chosen, synthetic, row) == 1
        hits_base[q] = _count(main_t, chosen, _mixed_row(synthetic, chosen, rng), 0) == 1
    return risk_from_rates("singling_out", hits_main, hits_ctrl, hits_base)


def _mixed_row(synthetic: EncodedTable, cols: list[str], rng: np.random.Generator) -> EncodedTable:
    rows = rng.integers(0, synthetic.n, size=len(cols))
    codes = {c: synthetic.codes[c][[r]] for c, r in zip(cols, rows, strict=True) if c in synthetic.codes}
    values = {c: synthetic.values[c][[r]] for c, r in zip(cols, rows, strict=True) if c in synthetic.values}
    return EncodedTable(
        n=1,
        embedding=np.zeros((1, 0), dtype=np.float32),
        codes=codes,
        values=values,
        row_hash=np.zeros(1, dtype=np.uint64),
        texts={},
    )
