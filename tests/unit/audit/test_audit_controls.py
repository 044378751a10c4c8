"""The audit validated on Adult: leaky releases FAIL, honest ones do not.

Each case runs on fixed seeds, so the outcome is deterministic. By construction the false-FAIL rate of
an independent release is <= alpha_fail = 1% (exact permutation / Fisher tests); the positive controls
were each flagged in 20/20 seeds in ``benchmarks/audit.py``, so a fixed seed failing here would be a
real regression, not bad luck.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import Scenario, adult_schema, scenario

from safesynth.gateway.audit import Verdict, run_audit
from safesynth.gateway.audit import controls as ctl

SCHEMA = adult_schema()
N_REG, N_IND = 4000, 2000

Control = Callable[[Scenario, np.random.Generator], pd.DataFrame]

POSITIVE: dict[str, Control] = {
    "verbatim": lambda s, r: ctl.verbatim_copies(s.train, N_IND, r),
    "mixed_5pct": lambda s, r: ctl.mixed_copies(s.train, s.independent, 0.05, r),
    "mixed_30pct": lambda s, r: ctl.mixed_copies(s.train, s.independent, 0.30, r),
    "jittered": lambda s, r: ctl.jittered_copies(s.train, SCHEMA, N_IND, r),
    "dp_1000x_too_little_noise": lambda s, r: ctl.randomized_response(
        s.train, SCHEMA, epsilon=1.0, rng=r, noise_factor=1e-3
    ),
}
NEGATIVE: dict[str, Control] = {
    "independent": lambda s, r: s.independent,
    "honest_ldp_eps1": lambda s, r: ctl.randomized_response(s.train, SCHEMA, epsilon=1.0, rng=r),
}


def _audit(seed: int, control: Control, claim: float | None = 1.0):  # type: ignore[no-untyped-def]
    s = scenario(seed, n_registered=N_REG, n_independent=N_IND)
    release = control(s, np.random.default_rng(1000 + seed))
    return run_audit(
        train=s.train,
        holdout=s.holdout,
        synthetic=release,
        schema=SCHEMA,
        design=s.design,
        accountant_epsilon=claim,
        delta=1e-6,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_positive_controls_fail(name: str) -> None:
    report = _audit(11, POSITIVE[name])
    assert report.verdict is Verdict.FAIL, report.reason
    assert report.rule in {"dp-claim-refuted", "membership-signal"}
    if name == "verbatim":
        em = report.exact_matches[0]
        assert em.column == "<row>"
        assert em.synthetic_copy_share == pytest.approx(1.0)
        assert em.train_matched >= N_IND * 0.99 and em.fisher_p < 1e-100
        assert report.attack("exact_match").auc > 0.6
        assert report.epsilon_bound.value > 1.0
        # the Anonymeter-style risks see the copies too: each interval lies above 0
        assert {r.name for r in report.risks} == {"inference", "linkability", "singling_out"}
        assert all(r.risk_low > 0 for r in report.risks), report.risks


@pytest.mark.slow
def test_positive_control_fails_without_a_dp_claim() -> None:
    report = _audit(12, POSITIVE["mixed_5pct"], claim=None)
    assert report.verdict is Verdict.FAIL and report.rule == "membership-signal"
    assert report.combined_p <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "seed"), [("independent", 21), ("independent", 22), ("honest_ldp_eps1", 23)]
)
def test_negative_controls_do_not_fail(name: str, seed: int) -> None:
    report = _audit(seed, NEGATIVE[name])
    assert report.verdict is not Verdict.FAIL, report.reason
    # The empirical bound of an honest release never exceeds its epsilon (here: no signal at all).
    assert report.epsilon_bound.value <= 1.0
    assert report.power >= 0.8  # 4000 rows are enough to see 5% verbatim copying
