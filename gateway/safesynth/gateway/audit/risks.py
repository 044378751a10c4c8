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


def _matches(
    encoder: MixedEncoder, table: EncodedTable, cols: list[str], source: EncodedTable, row: int, rng_dir: B
) -> B:
    """Rows of ``table`` satisfying the predicate built from ``source`` row ``row`` on ``cols``."""
    ok = np.ones(table.n, dtype=np.bool_)
    for j, col in enumerate(cols):
        if col in table.codes:
            ok &= table.codes[col] == source.codes[col][row]
        else:
            v = source.values[col][row]
            t = table.values[col]
            if math.isnan(v):
                ok &= np.isnan(t)
            elif rng_dir[j]:
                ok &= np.nan_to_num(t, nan=-1.0) >= v
            else:
                ok &= np.nan_to_num(t, nan=2.0) <= v
    return ok


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

    A predicate is a conjunction over 2..6 random columns of one synthetic row's values (equality for
    categories; ``>= v`` or ``<= v`` for numbers, on the side away from the median, as in the paper).
    It succeeds on a set when exactly one record of the set satisfies it. Targets and controls are cut
    to the same size. The baseline draws each predicate value from a different random synthetic row.
    """
    cols = encoder.tabular_columns
    n = min(members.n, controls.n)
    if len(cols) < 2 or n < 2 or synthetic.n < 1:
        return None
    mi = rng.choice(members.n, n, replace=False)
    ci = rng.choice(controls.n, n, replace=False)
    main_t = take(members, mi)
    ctrl_t = take(controls, ci)
    hits_main = np.zeros(n_queries, dtype=np.bool_)
    hits_ctrl = np.zeros(n_queries, dtype=np.bool_)
    hits_base = np.zeros(n_queries, dtype=np.bool_)
    kmax = min(6, len(cols))
    for q in range(n_queries):
        k = int(rng.integers(2, kmax + 1))
        chosen = [cols[i] for i in rng.choice(len(cols), k, replace=False)]
        row = int(rng.integers(0, synthetic.n))
        direction = np.asarray(
            [
                col in synthetic.values
                and not math.isnan(synthetic.values[col][row])
                and synthetic.values[col][row] >= 0.5
                for col in chosen
            ],
            dtype=np.bool_,
        )
        hits_main[q] = _matches(encoder, main_t, chosen, synthetic, row, direction).sum() == 1
        hits_ctrl[q] = _matches(encoder, ctrl_t, chosen, synthetic, row, direction).sum() == 1
        base = _mixed_row(synthetic, chosen, rng)
        hits_base[q] = _matches(encoder, main_t, chosen, base, 0, direction).sum() == 1
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
