"""The real bundled model writes candidates and variations (tiny sizes: a few short generations)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from safesynth.gateway.engines.text.generate import CandidateGenerator, GenerationBudget
from safesynth.gateway.engines.text.prompts import PromptBuilder

pytestmark = [pytest.mark.model, pytest.mark.slow]

_PRIVATE = [
    "Hey Marta, the keys are under the blue flowerpot, back at 9 after my shift at the bakery",
    "URGENT! You have won a 2000 GBP bonus. Call 09061701461 before midnight, claim code KL341",
]


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _shares_long_ngram(text: str, n: int = 6) -> bool:
    return any(_ngrams(text, n) & _ngrams(p, n) for p in _PRIVATE)


@pytest.fixture(scope="module")
def runner() -> Any:
    from safesynth.gateway.llm import get_runner

    return get_runner()


def test_random_and_variations_within_budget_and_free_of_private_text(runner: Any) -> None:
    builder = PromptBuilder("SMS text messages", {"spam": "an unsolicited advert"}, max_chars=80)
    budget = GenerationBudget(max_tokens=16, max_chars=80)
    generator = CandidateGenerator(runner, builder, budget, batch_size=4)
    gen = np.random.default_rng(0)
    texts = generator.random("spam", 3, gen)
    varied = generator.variations(texts[:2], "spam", gen)
    assert texts and len(varied) == min(2, len(texts))
    for text in [*texts, *varied]:
        assert 0 < len(text) <= 80
        assert text not in _PRIVATE and not _shares_long_ngram(text)
    assert generator.stats.completion_tokens <= 16 * generator.stats.calls
    assert generator.stats.calls >= 5


def test_engine_end_to_end_with_the_real_model(runner: Any, sms_schema: Any) -> None:
    import pandas as pd

    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines.base import EngineContext, SynthesisRequest
    from safesynth.gateway.engines.text.engine import TextEngine

    frame = pd.DataFrame({"label": ["ham", "spam"] * 10, "text": _PRIVATE * 10})
    request = SynthesisRequest(
        engine="text",
        epsilon=8.0,
        delta=1e-5,
        rows=4,
        options={"iterations": 1, "candidates": 4, "min_candidates_per_label": 2, "max_tokens": 12},
    )
    engine = TextEngine()
    plan = engine.plan(sms_schema, request)
    out = engine.run(plan, sms_schema, frame, EngineContext(rng=RandomSource.seeded(3), runner=runner))
    assert len(out.table) == 4
    for text in out.table["text"]:
        assert 0 < len(text) <= 160
        assert text not in _PRIVATE and not _shares_long_ngram(text)
    assert out.report["model"]["sha256"] == runner.info.sha256
    assert len(out.report["mechanisms_run"]) == 2
