"""The output label mix: "balanced" is a public post-processing choice (same events, same cost)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from safesynth.gateway.dp import mechanisms
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import EngineContext, SynthesisRequest
from safesynth.gateway.engines.text.engine import TextEngine
from safesynth.gateway.engines.text.errors import InvalidTextOption
from safesynth.sdk.schema import DatasetSchema


def _request(rows: int | None = 20, **options: Any) -> SynthesisRequest:
    opts = {"max_tokens": 8, "iterations": 2, **options}
    return SynthesisRequest(engine="text", epsilon=4.0, delta=1e-5, rows=rows, options=opts)


def _run(schema: DatasetSchema, frame: pd.DataFrame, runner: Any, request: SynthesisRequest) -> Any:
    engine = TextEngine()
    plan = engine.plan(schema, request)
    return plan, engine.run(plan, schema, frame, EngineContext(rng=RandomSource.seeded(3), runner=runner))


def test_balanced_gives_exactly_equal_rows_per_label(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any
) -> None:
    # 90 % ham: DP shares would give about 18 of 20 rows to ham
    _, out = _run(sms_schema, make_sms(n_ham=180, n_spam=20), fake_runner, _request(label_mix="balanced"))
    assert out.table["label"].value_counts().to_dict() == {"ham": 10, "spam": 10}
    assert out.report["label_mix"] == "balanced"


def test_dp_shares_follow_the_noisy_counts(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any
) -> None:
    _, out = _run(sms_schema, make_sms(n_ham=180, n_spam=20), fake_runner, _request(label_mix="dp_shares"))
    counts = out.table["label"].value_counts().to_dict()
    # count noise sigma ~3.4 at eps 4: the spam share 20/200 moves by < 0.1 with probability > 1 - 1e-6,
    # so spam gets at most 4 of 20 rows (false-failure rate < 1e-6)
    assert counts["ham"] >= 16 and counts["ham"] + counts.get("spam", 0) == 20
    assert out.report["label_mix"] == "dp_shares"


def test_balanced_costs_nothing_and_keeps_the_events(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[float, float, int]] = []
    real = mechanisms.gaussian_mechanism

    def record(values: Any, *, sensitivity: float, sigma: float, rng: RandomSource) -> Any:
        calls.append((sigma, sensitivity, len(values)))
        return real(values, sensitivity=sensitivity, sigma=sigma, rng=rng)

    monkeypatch.setattr(mechanisms, "gaussian_mechanism", record)
    engine = TextEngine()
    shares = engine.plan(sms_schema, _request())
    balanced = engine.plan(sms_schema, _request(label_mix="balanced"))
    assert balanced.events == shares.events
    assert balanced.cost == shares.cost
    assert [t.step for t in balanced.transcript] == [t.step for t in shares.transcript]
    _run(sms_schema, make_sms(), fake_runner, _request(label_mix="balanced"))
    # the same mechanisms as charged: one count, then T = 2 vote histograms, with the planned sigmas
    sigma_count = balanced.options["derived"]["sigma_count"]
    sigma_vote = balanced.options["derived"]["sigma_vote"]
    assert [(c[0], c[1]) for c in calls] == [(sigma_count, 1.0), (sigma_vote, 1.0), (sigma_vote, 1.0)]


def test_unknown_label_mix_is_refused(sms_schema: DatasetSchema) -> None:
    with pytest.raises(InvalidTextOption) as caught:
        TextEngine().plan(sms_schema, _request(label_mix="equalish"))
    assert caught.value.code == InvalidTextOption.code


def test_hubness_choice_is_reported_and_free(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any
) -> None:
    engine = TextEngine()
    assert (
        engine.plan(sms_schema, _request(hubness="none")).events == engine.plan(sms_schema, _request()).events
    )
    _, plain = _run(sms_schema, make_sms(), fake_runner, _request(hubness="none"))
    _, csls = _run(sms_schema, make_sms(), fake_runner, _request())
    assert (plain.report["hubness"], csls.report["hubness"]) == ("none", "csls")
    assert len(plain.table) == len(csls.table) == 20
    with pytest.raises(InvalidTextOption):
        engine.plan(sms_schema, _request(hubness="mutual"))
