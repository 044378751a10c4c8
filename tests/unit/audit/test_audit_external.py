"""Audits of external tables: what stays meaningful without the dataset's audit design.

Fixed seeds. An independent sample and an honest DP release are negative controls: their FAIL rate
is at most alpha_fail = 1% (Bonferroni over the copy check, the near-copy check and the split's
combined p-value), so each such test fails by chance with probability <= 1%. The copy controls are
far beyond any threshold (p-values below 1e-6).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import Scenario, adult_schema, scenario

from safesynth.gateway.audit import AuditOptions, ColumnsMismatch, Verdict
from safesynth.gateway.audit import controls as ctl
from safesynth.gateway.audit.external import (
    CAVEATS,
    EXTERNAL_SCOPE,
    ExternalAuditReport,
    copy_check,
    run_external_audit,
)
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines import get_engine
from safesynth.gateway.engines.base import EngineContext, SynthesisRequest

FAST = AuditOptions(power_replicates=5, power_permutations=99)


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return scenario(21, n_registered=3000, n_independent=1500)


def _run(
    sc: Scenario, external: pd.DataFrame, *, claimed_epsilon: float | None = None, claimed_delta: float = 0.0
) -> ExternalAuditReport:
    return run_external_audit(
        train=sc.train,
        holdout=sc.holdout,
        external=external,
        schema=adult_schema(),
        design=sc.design,
        options=FAST,
        claimed_epsilon=claimed_epsilon,
        claimed_delta=claimed_delta,
    )


def test_independent_sample_is_inconclusive_not_pass(sc: Scenario) -> None:
    report = _run(sc, sc.independent)
    assert report.verdict is Verdict.INCONCLUSIVE and report.rule == "external-no-signal"
    assert report.scope == EXTERNAL_SCOPE and report.caveats == CAVEATS


@pytest.mark.parametrize("source", ["registered", "train"])
def test_copies_are_flagged_whatever_the_tool_saw(sc: Scenario, source: str) -> None:
    # A tool trained on the whole registered table (it cannot know the private split) or on the train part.
    table = (sc.registered if source == "registered" else sc.train).sample(1500, random_state=3)
    report = _run(sc, table)
    assert report.verdict is Verdict.FAIL and report.rule == "verbatim-copies"
    assert report.copies.copy_share == 1.0


def test_ten_percent_copies_of_the_whole_table_are_flagged(sc: Scenario) -> None:
    mixed = pd.concat([sc.independent.iloc[:1350], sc.registered.sample(150, random_state=4)])
    report = _run(sc, mixed)
    assert report.verdict is Verdict.FAIL
    assert report.copies.copy_share > report.copies.natural_duplicate_share + 0.05


def test_jittered_copies_are_near_copies(sc: Scenario) -> None:
    rng = np.random.default_rng(8)
    mixed = pd.concat(
        [sc.independent.iloc[:1350], ctl.jittered_copies(sc.registered, adult_schema(), 150, rng)]
    )
    report = _run(sc, mixed)
    assert report.verdict is Verdict.FAIL and report.rule == "near-copies"
    assert report.near is not None and report.near.near_share > report.near.natural_share + 0.02
    assert report.copies.copy_share < 0.01  # no exact copy: only the near-copy check sees them


def test_honest_dp_output_of_the_whole_table_is_not_flagged(sc: Scenario) -> None:
    # "Another tool" trained on the whole registered table, honestly DP: no alarm (false-alarm rate <= 1%).
    schema = adult_schema()
    plan = get_engine("tabular").plan(schema, SynthesisRequest(engine="tabular", epsilon=4.0, delta=1e-6))
    out = get_engine("tabular").run(plan, schema, sc.registered, EngineContext(rng=RandomSource.seeded(4)))
    report = _run(sc, out.table)
    assert report.verdict is not Verdict.FAIL, report.reason


def test_extra_columns_are_ignored_and_listed_missing_ones_refused(sc: Scenario) -> None:
    report = _run(sc, sc.independent.assign(tool_score=1.0))
    assert report.ignored_columns == ("tool_score",)
    with pytest.raises(ColumnsMismatch) as info:
        _run(sc, sc.independent.drop(columns=["age"]))
    assert info.value.code == "columns_mismatch" and info.value.detail["missing"] == ["age"]


def test_claimed_epsilon_is_checked_under_the_assumption(sc: Scenario) -> None:
    report = _run(sc, sc.train.sample(1500, random_state=5), claimed_epsilon=0.1, claimed_delta=1e-6)
    assert report.verdict is Verdict.FAIL and report.rule == "claimed-epsilon-refuted"
    assert "holdout" in report.reason


def test_ledger_payload_is_aggregates_only(sc: Scenario) -> None:
    report = _run(sc, sc.independent.iloc[:200])
    payload = report.to_ledger_json()
    text = json.dumps(payload)
    assert "meaningful" not in payload and "caveats" not in payload
    assert sc.design.commitment in text
    membership = "".join("1" if m else "0" for m in sc.design.membership)
    assert membership not in text

    def longest(obj: object) -> int:
        if isinstance(obj, list):
            return max([len(obj), *(longest(v) for v in obj)])
        if isinstance(obj, dict):
            return max([0, *(longest(v) for v in obj.values())])
        return 0

    assert longest(payload) <= 64  # no per-record list anywhere


def test_copy_check_counts() -> None:
    reg = adult_schema()
    sc = scenario(22, n_registered=400, n_independent=100)
    dup = pd.concat([sc.registered, sc.registered.iloc[:10]])
    check = copy_check(dup, sc.registered.iloc[:50], reg)
    assert check.external_copies == 50 and check.copy_share == 1.0
    assert check.natural_duplicates >= 20  # the 10 duplicated rows and their originals
    assert check.fisher_p < 1e-20
