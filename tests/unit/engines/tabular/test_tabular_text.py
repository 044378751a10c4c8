"""Text columns: prompts from public facts and the synthetic row, length budgets, the real model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from safesynth.gateway.dp.rng import RandomSource
from safesynth.gateway.engines.base import EngineContext
from safesynth.gateway.engines.tabular.demo import drug_reviews_schema, run_tabular_demo
from safesynth.gateway.engines.tabular.text import (
    DEFAULT_MAX_CHARS,
    build_prompt,
    clean_text,
    is_echo,
    keyword_counts,
    max_chars,
    row_words,
    write_text_columns,
)
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

DATA = Path(__file__).resolve().parents[3] / "data" / "drug_reviews_sample.csv"


@dataclass
class _Gen:
    text: str
    completion_tokens: int = 5


class FakeRunner:
    """Answers from a script; records the prompts it was shown."""

    def __init__(self, answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.calls = 0

    def generate_batch(self, prompts: Sequence[str], **kwargs: Any) -> list[_Gen]:
        self.prompts.extend(prompts)
        out = []
        for _ in prompts:
            out.append(_Gen(self.answers[self.calls % len(self.answers)]))
            self.calls += 1
        return out


SCHEMA = DatasetSchema(
    description="Product reviews",
    columns=(
        ColumnSpec(name="product", kind=ColumnKind.CATEGORICAL, description="the product"),
        ColumnSpec(name="stars", kind=ColumnKind.NUMERIC, integer=True, lower=1, upper=5),
        ColumnSpec(name="review", kind=ColumnKind.TEXT, description="the review", max_length=40),
    ),
)


def test_clean_text_strips_labels_quotes_and_cuts_at_a_word() -> None:
    assert clean_text('review: "Great phone."', "review", 100) == "Great phone."
    cut = clean_text("one two three four five six seven", "review", 16)
    assert cut == "one two three" and len(cut) <= 16
    assert clean_text("   ", "review", 10) == ""
    assert max_chars(ColumnSpec(name="t", kind=ColumnKind.TEXT)) == DEFAULT_MAX_CHARS


def test_prompt_holds_only_schema_facts_and_the_synthetic_row() -> None:
    spec = SCHEMA.column("review")
    prompt = build_prompt(spec, [(SCHEMA.column("product"), "lamp"), (SCHEMA.column("stars"), 4.0)], 40)
    assert "product (the product): lamp" in prompt and "stars: 4" in prompt
    assert "write your review" in prompt and "40 characters" in prompt
    # missing values and the __other__ bucket are not shown
    other = build_prompt(spec, [(SCHEMA.column("product"), "__other__"), (SCHEMA.column("stars"), None)], 40)
    assert "__other__" not in other and "stars" not in other


def test_prompt_echoes_are_refused_and_retried() -> None:
    assert is_echo("The record: - product (the product): lamp")
    assert is_echo("Here's a review of the lamp")
    assert clean_text("About your entry: - stars: 4", "review", 100) == ""
    assert not is_echo("Bright lamp, the switch broke after a week.")


def test_text_cells_respect_the_budget_and_never_stay_empty() -> None:
    table = pd.DataFrame({"product": ["lamp", "desk", "chair"], "stars": [4, 1, 5]})
    runner = FakeRunner(["x" * 10 + " " + "y" * 100, "", "", "", "fine chair"])
    stats = write_text_columns(
        table,
        SCHEMA,
        [SCHEMA.column("review")],
        [SCHEMA.column("product"), SCHEMA.column("stars")],
        runner,  # type: ignore[arg-type]
        seed=1,
        batch_size=2,
    )
    texts = table["review"].tolist()
    assert all(0 < len(t) <= 40 for t in texts)
    # No word boundary in the second half of the budget: a hard cut at the budget.
    assert texts[0] == "x" * 10 + " " + "y" * 29
    assert stats.cells == 3 and stats.retries >= 2
    assert any("lamp" in p for p in runner.prompts)


@pytest.mark.model
@pytest.mark.slow
def test_the_real_model_writes_reviews_without_copying_training_text() -> None:
    from safesynth.gateway.llm import get_runner

    data = pd.read_csv(DATA)
    schema = drug_reviews_schema(review_max_length=120)
    ctx = EngineContext(rng=RandomSource.seeded(11), runner=get_runner())
    result = run_tabular_demo(data, schema, epsilon=1.0, rows=2, ctx=ctx)
    reviews = result.table["review"].tolist()
    assert len(reviews) == 2
    assert all(isinstance(r, str) and 0 < len(r.strip()) <= 120 for r in reviews)
    assert result.epsilon <= 1.0
    training = [str(t) for t in data["review"]]
    assert not set(reviews) & set(training)

    def grams(text: str, n: int = 10) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    train_grams: set[tuple[str, ...]] = set()
    for t in training:
        train_grams |= grams(t)
    for r in reviews:
        assert not grams(r) & train_grams  # no 10-word sequence shared with any training review
    assert result.report["text"]["cells"] == 2


# ------------------------------------------------------------------------------ keyword guidance
def test_row_words_and_keyword_counts_bound_each_unit() -> None:
    gen = np.random.default_rng(0)
    words = row_words("The battery lasts, the BATTERY is great and cheap 2024 ok", 10, gen)
    assert words == ["battery", "cheap", "great", "lasts"]  # distinct, lower case, 4+ letters, no digits
    assert len(row_words("alpha bravo charlie delta echo foxtrot", 2, gen)) == 2
    assert row_words(None, 3, gen) == []
    # One person writing three rows counts once per word and for at most `limit` words in all.
    texts = ["alpha bravo", "charlie delta", "alpha echo", "alpha"]
    counts = keyword_counts(texts, ["p1", "p1", "p1", "p2"], 2, gen)
    assert sum(counts.values()) == 3 and counts.get("alpha", 0) <= 2
    assert keyword_counts(texts, None, 5, gen)["alpha"] == 3


def _review_table(n: int = 1000) -> pd.DataFrame:
    gen = np.random.default_rng(3)
    products = gen.choice(np.array(["lamp", "desk"], dtype=object), n)
    reviews = [f"excellent sturdy {p} overall" for p in products]
    reviews[5] = "excellent zqxsecretword lamp"
    return pd.DataFrame({"product": products, "stars": gen.integers(1, 6, n), "review": reviews})


def test_keyword_guidance_is_planned_charged_and_only_shows_selected_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.unit.engines.tabular.test_tabular_engine import _instrument

    from safesynth.gateway.engines.base import SynthesisRequest
    from safesynth.gateway.engines.tabular.engine import TabularEngine
    from safesynth.gateway.engines.tabular.planning import group_events

    schema = DatasetSchema(
        description="Product reviews",
        columns=(
            ColumnSpec(name="product", kind=ColumnKind.CATEGORICAL, categories=("lamp", "desk")),
            ColumnSpec(name="stars", kind=ColumnKind.NUMERIC, integer=True, lower=1, upper=5),
            ColumnSpec(name="review", kind=ColumnKind.TEXT, max_length=40),
        ),
    )
    engine = TabularEngine()
    off = engine.plan(schema, SynthesisRequest("tabular", 4.0, 1e-6, rows=6))
    assert not any(item.step.startswith("keywords:") for item in off.transcript)
    plan = engine.plan(schema, SynthesisRequest("tabular", 4.0, 1e-6, rows=6, options={"text_keywords": 3}))
    step = next(item for item in plan.transcript if item.step == "keywords:review")
    assert step.mechanism == "partition_selection" and step.noise["max_partitions_contributed"] == 3
    assert plan.cost.epsilon <= 4.0
    seen = _instrument(monkeypatch)
    runner = FakeRunner(["a fine lamp"])
    ctx = EngineContext(rng=RandomSource.seeded(2), runner=runner)  # type: ignore[arg-type]
    out = engine.run(plan, schema, _review_table(), ctx)
    assert group_events(seen) == list(plan.events)
    assert out.report["keywords_selected"]["review"] >= 2
    hints = " ".join(p for p in runner.prompts if "Words often used" in p)
    # "excellent" is in every row (~750 of 1000 rows keep it; the threshold is ~284 with discrete
    # Laplace noise of scale ~17: selected except with negligible probability); the word of
    # one row passes the threshold with probability below the planned delta share (~1e-7).
    assert "excellent" in hints
    assert "zqxsecretword" not in " ".join(runner.prompts)
