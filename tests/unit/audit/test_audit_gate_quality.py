"""The release gate and the quality report."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import DATA, adult_schema, scenario

from safesynth.gateway.audit import (
    AuditReport,
    GatePolicy,
    InvalidAuditInput,
    Verdict,
    gate,
    quality_report,
    run_audit,
)
from safesynth.gateway.audit import controls as ctl
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

SCHEMA = adult_schema()


def _report(kind: str) -> AuditReport:
    s = scenario(41, n_registered=2000, n_independent=1000)
    rel = (
        s.independent
        if kind == "honest"
        else ctl.mixed_copies(s.train, s.independent, 0.3, np.random.default_rng(1))
    )
    return run_audit(train=s.train, holdout=s.holdout, synthetic=rel, schema=SCHEMA, design=s.design)


@pytest.mark.slow
def test_gate_withholds_a_failing_release_and_releases_an_honest_one() -> None:
    bad, good = _report("leaky"), _report("honest")
    assert bad.verdict is Verdict.FAIL
    d = gate(bad, GatePolicy())
    assert not d.release and d.rule.startswith("audit-fail") and "FAIL" in d.reason
    assert gate(good, GatePolicy(max_advantage=0.2, max_auc=0.6)).release
    # A FAIL may be let through only by an explicit policy; the advantage limit still applies.
    lax = GatePolicy(withhold_on_fail=False, max_advantage=0.01)
    d2 = gate(bad, lax)
    assert not d2.release and d2.rule == "max-advantage"
    assert gate(bad, GatePolicy(withhold_on_fail=False)).release


def test_gate_auc_limit_uses_the_interval_and_inconclusive_policy() -> None:
    good = _report("honest")
    strict = dataclasses.replace(
        good, attacks=tuple(dataclasses.replace(a, auc_low=0.9) for a in good.attacks)
    )
    d = gate(strict, GatePolicy(max_auc=0.8))
    assert not d.release and d.rule == "max-auc"
    inconclusive = dataclasses.replace(good, verdict=Verdict.INCONCLUSIVE, rule="low-power")
    assert gate(inconclusive).release
    assert not gate(inconclusive, GatePolicy(withhold_on_inconclusive=True)).release


def test_gate_policy_validation() -> None:
    with pytest.raises(InvalidAuditInput):
        GatePolicy(max_auc=0.3)
    with pytest.raises(InvalidAuditInput):
        GatePolicy.from_mapping({"max_advantge": 0.1})
    assert GatePolicy.from_mapping({"max_advantage": "0.1"}).max_advantage == 0.1


@pytest.mark.slow
def test_quality_tells_a_good_release_from_a_bad_one() -> None:
    s = scenario(42, n_registered=4000, n_independent=2000)
    good = quality_report(s.train, s.holdout, s.independent, SCHEMA, target="income")
    rng = np.random.default_rng(3)
    shuffled = pd.DataFrame({c: rng.permutation(s.independent[c].to_numpy()) for c in s.independent.columns})
    bad = quality_report(s.train, s.holdout, shuffled, SCHEMA, target="income")
    # An independent sample: small marginal error; column-wise shuffling keeps 1-way marginals but
    # destroys the joint: 2-way error, association error and the discriminator see it.
    assert good.tvd_1way_mean < 0.05 and bad.tvd_1way_mean < 0.05
    assert bad.tvd_2way_mean > 1.5 * good.tvd_2way_mean
    assert bad.association_diff is not None and good.association_diff is not None
    assert bad.association_diff > good.association_diff
    assert good.discriminator_auc is not None and good.discriminator_auc < 0.6
    assert bad.discriminator_auc is not None and bad.discriminator_auc > 0.7

    def acc(r, src: str) -> float:  # type: ignore[no-untyped-def]
        return next(
            u.value
            for u in r.utility
            if u.trained_on == src and u.metric == "accuracy" and u.model == "hist_gradient_boosting"
        )

    assert acc(good, "synthetic") > 0.8 and acc(good, "real") > 0.8
    assert acc(bad, "synthetic") < acc(good, "synthetic")
    json.dumps(good.to_json())


@pytest.mark.slow
def test_quality_text_and_errors() -> None:
    sms = pd.read_csv(DATA / "sms_spam.csv")
    schema = DatasetSchema(
        columns=(
            ColumnSpec(name="label", kind=ColumnKind.CATEGORICAL, categories=("ham", "spam")),
            ColumnSpec(name="text", kind=ColumnKind.TEXT),
        )
    )
    real, test, syn = sms.iloc[:1500], sms.iloc[1500:2000], sms.iloc[2000:3000]
    q = quality_report(real, test, syn, schema, target="label")
    t = q.text["text"]
    assert t.centroid_cosine > 0.9 and t.embedding_mmd < 0.01
    assert abs(t.real_chars_mean - t.synthetic_chars_mean) < 20
    text_acc = {u.trained_on: u.value for u in q.utility if u.model == "text_logistic_regression"}
    majority = float((test["label"] == "ham").mean())
    assert text_acc["synthetic"] is not None and text_acc["real"] is not None
    assert text_acc["synthetic"] > majority and text_acc["synthetic"] > text_acc["real"] - 0.05
    blank = syn.assign(text="")
    assert quality_report(real, test, blank, schema).text["text"].empty_share_synthetic == 1.0
    with pytest.raises(InvalidAuditInput):
        quality_report(real, test, syn, schema, target="nope")
