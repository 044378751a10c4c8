"""The text engine around the model (fake runner): plan, events, the private-data boundary, bad input."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import pytest

from safesynth.gateway.dp import mechanisms
from safesynth.gateway.dp.accountant import compose
from safesynth.gateway.dp.events import GaussianEvent
from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import (
    DataMismatch,
    EngineContext,
    ModelUnavailable,
    PlanMismatch,
    SynthesisRequest,
)
from safesynth.gateway.engines.text.accounting import calibrate, gdp_epsilon
from safesynth.gateway.engines.text.engine import TextEngine
from safesynth.gateway.engines.text.errors import InvalidTextOption, NoTextColumn, SizeGateFailed
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

_OPTS = {"max_tokens": 8, "label_descriptions": {"spam": "an advert"}}


def _request(eps: float = 4.0, rows: int | None = 20, **options: Any) -> SynthesisRequest:
    return SynthesisRequest(engine="text", epsilon=eps, delta=1e-5, rows=rows, options={**_OPTS, **options})


class _Recorder:
    """Wraps dp.mechanisms.gaussian_mechanism: records each call; can replace its input."""

    def __init__(self, replace_inputs: list[np.ndarray] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.inputs: list[np.ndarray] = []
        self._replace = replace_inputs
        self._real = mechanisms.gaussian_mechanism

    def __call__(self, values: Any, *, sensitivity: float, sigma: float, rng: RandomSource) -> Any:
        values = np.asarray(values, dtype=np.float64)
        self.inputs.append(values.copy())
        if self._replace is not None:
            values = self._replace[len(self.inputs) - 1]
        self.calls.append({"sigma": sigma, "sensitivity": sensitivity, "size": values.shape[0]})
        return self._real(values, sensitivity=sensitivity, sigma=sigma, rng=rng)


def _run(
    schema: DatasetSchema, frame: pd.DataFrame, runner: Any, request: SynthesisRequest, seed: int = 5
) -> Any:
    engine = TextEngine()
    plan = engine.plan(schema, request)
    return plan, engine.run(plan, schema, frame, EngineContext(rng=RandomSource.seeded(seed), runner=runner))


def test_plan_reads_no_data_and_fixes_count_and_votes(sms_schema: DatasetSchema) -> None:
    assert "data" not in inspect.signature(TextEngine.plan).parameters
    plan = TextEngine().plan(sms_schema, _request(iterations=3))
    assert [type(e) for e in plan.events] == [GaussianEvent, GaussianEvent]
    votes = plan.events[1]
    assert isinstance(votes, GaussianEvent) and votes.count == 3
    assert plan.cost.epsilon <= 4.0
    assert [t.step for t in plan.transcript] == ["text.label_count", "text.vote_histogram"]
    assert plan.to_json()["events"][1]["kind"] == "gaussian/v1"


def test_calibration_spends_the_budget_and_never_beats_exact_gdp() -> None:
    for eps in (1.0, 10.0):
        noise = calibrate(epsilon=eps, delta=1e-5, iterations=3, sensitivity=1, count_share=0.1)
        from safesynth.gateway.engines.text.accounting import noise_events

        charged = compose(list(noise_events(noise)), delta=1e-5).epsilon
        assert 0.98 * eps <= charged <= eps
        # Gaussian mechanisms compose exactly as mu-GDP: a sound accountant is never below it
        assert gdp_epsilon(noise.mu, 1e-5) <= charged * (1 + 1e-6)
        assert noise.mu == pytest.approx(np.sqrt(3 / noise.sigma_vote**2 + 1 / noise.sigma_count**2))  # type: ignore[operator]


def test_labels_compose_in_parallel_not_in_sum(sms_schema: DatasetSchema) -> None:
    unlabelled = DatasetSchema(columns=(ColumnSpec(name="text", kind=ColumnKind.TEXT),))
    with_labels = TextEngine().plan(sms_schema, _request())
    without = TextEngine().plan(unlabelled, _request())
    assert with_labels.events == without.events
    assert with_labels.cost.epsilon == without.cost.epsilon


def test_charged_events_equal_the_mechanisms_run(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(mechanisms, "gaussian_mechanism", recorder)
    plan, out = _run(sms_schema, make_sms(), fake_runner, _request(iterations=2))
    ran = [(c["sigma"], c["sensitivity"]) for c in recorder.calls]
    events = [e for e in plan.events if isinstance(e, GaussianEvent)]
    assert len(events) == len(plan.events)
    charged = [(e.sigma, e.sensitivity) for e in events for _ in range(e.count)]
    assert ran == charged
    assert len(out.report["mechanisms_run"]) == len(charged)
    assert len(out.table) == 20


def test_private_texts_influence_nothing_but_the_histogram_inputs(
    sms_schema: DatasetSchema, make_sms: Any, runner_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = make_sms()
    swapped = frame.copy()
    swapped.loc[3, "text"] = "zebra quantum xylophone harbour"
    first = _Recorder()
    monkeypatch.setattr(mechanisms, "gaussian_mechanism", first)
    runner_a = runner_factory()
    _, out_a = _run(sms_schema, frame, runner_a, _request())
    # the same seeds, one private text swapped, the histogram inputs of the first run substituted
    second = _Recorder(replace_inputs=first.inputs)
    monkeypatch.setattr(mechanisms, "gaussian_mechanism", second)
    runner_b = runner_factory()
    _, out_b = _run(sms_schema, swapped, runner_b, _request())
    assert any(not np.array_equal(a, b) for a, b in zip(first.inputs, second.inputs, strict=True))
    pd.testing.assert_frame_equal(out_a.table, out_b.table)
    assert runner_a.prompts == runner_b.prompts
    report_a = {k: v for k, v in out_a.report.items() if k != "seconds"}
    report_b = {k: v for k, v in out_b.report.items() if k != "seconds"}
    assert report_a == report_b


@pytest.mark.parametrize(
    "texts",
    [
        [],
        ["only one text"],
        ["x" * 100_000, "y " * 50_000],
        [b"caf\xe9 \xff\xfe broken bytes", "fine text"],
    ],
    ids=["empty", "one", "100kB", "non-utf8"],
)
def test_bad_corpora_still_run_within_budget(
    sms_schema: DatasetSchema, fake_runner: Any, texts: list[Any]
) -> None:
    frame = pd.DataFrame({"label": ["ham"] * len(texts), "text": pd.Series(texts, dtype=object)})
    _, out = _run(sms_schema, frame, fake_runner, _request(rows=6))
    assert len(out.table) == 6
    assert all(0 < len(t) <= 160 for t in out.table["text"])
    assert set(out.table["label"]) <= {"ham", "spam"}


def test_a_label_with_one_member(sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any) -> None:
    _, out = _run(sms_schema, make_sms(n_ham=50, n_spam=1), fake_runner, _request(rows=10))
    assert len(out.table) == 10


def test_rows_none_uses_the_dp_count(sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any) -> None:
    _, out = _run(sms_schema, make_sms(n_ham=30, n_spam=10), fake_runner, _request(eps=10.0, rows=None))
    # 40 rows, count noise sigma ~1.4 at eps 10: within +-10 with probability > 1 - 1e-11
    assert 30 <= len(out.table) <= 50
    assert out.report["rows"] == len(out.table)


def test_size_gate_refuses_before_spending_and_proposes(sms_schema: DatasetSchema) -> None:
    with pytest.raises(SizeGateFailed) as caught:
        TextEngine().plan(sms_schema, _request(eps=1.0, min_rows=20))
    err = caught.value
    assert err.code == "text_size_gate"
    assert err.proposals["max_candidates"] < 8
    eps_needed = err.proposals["epsilon_needed"]
    assert eps_needed > 1.0
    plan = TextEngine().plan(sms_schema, _request(eps=eps_needed, min_rows=20))
    assert plan.options["derived"]["size_gate"]["status"] == "passed"


def test_size_gate_sizes_candidates_from_a_public_bound(sms_schema: DatasetSchema) -> None:
    plan = TextEngine().plan(sms_schema, _request(eps=4.0, rows=500, min_rows=1000))
    gate = plan.options["derived"]["size_gate"]
    assert gate["expected_votes_per_candidate"] >= plan.options["derived"]["sigma_vote"]
    assert gate["candidates"] <= 600  # default cap: 1.2 x the 500 rows asked for


def test_bad_requests_are_typed(sms_schema: DatasetSchema) -> None:
    with pytest.raises(InvalidTextOption):
        TextEngine().plan(sms_schema, _request(bogus=1))
    with pytest.raises(InvalidTextOption):
        TextEngine().plan(sms_schema, _request(iterations=0))
    no_text = DatasetSchema(columns=(ColumnSpec(name="a", kind=ColumnKind.NUMERIC),))
    with pytest.raises(NoTextColumn):
        TextEngine().plan(no_text, _request())


def test_run_checks_plan_columns_and_runner(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any
) -> None:
    engine = TextEngine()
    plan = engine.plan(sms_schema, _request())
    ctx = EngineContext(rng=RandomSource.seeded(1), runner=fake_runner)
    with pytest.raises(DataMismatch):
        engine.run(plan, sms_schema, make_sms().drop(columns=["text"]), ctx)
    with pytest.raises(ModelUnavailable):
        engine.run(plan, sms_schema, make_sms(), EngineContext(rng=RandomSource.seeded(1)))
    other = DatasetSchema(columns=(ColumnSpec(name="text", kind=ColumnKind.TEXT),))
    with pytest.raises(PlanMismatch):
        engine.run(plan, other, make_sms(), ctx)


def test_report_names_noise_model_and_embedding(
    sms_schema: DatasetSchema, fake_runner: Any, make_sms: Any
) -> None:
    plan, out = _run(sms_schema, make_sms(), fake_runner, _request())
    report = out.report
    assert report["sigma_vote"] == plan.options["derived"]["sigma_vote"]
    # the defaults are the configuration benchmarks/results/text.md measured
    assert (report["iterations"], report["output_selection"], report["label_mix"]) == (
        1,
        "proportional",
        "balanced",
    )
    assert (report["hubness"], plan.options["resolved"]["max_candidates"]) == ("csls", 24)
    assert report["model"]["sha256"] == "0" * 64
    assert report["embedding"].startswith("hashing/")
    assert report["per_label"]["ham"]["candidates"]
