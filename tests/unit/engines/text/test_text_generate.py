"""Prompts from public information, cleaning, and the length budget (with a fake runner)."""

from __future__ import annotations

import numpy as np

from safesynth.gateway.engines.text.generate import CandidateGenerator, GenerationBudget, clean_generation
from safesynth.gateway.engines.text.prompts import PromptBuilder


def test_clean_removes_preambles_quotes_and_line_breaks() -> None:
    assert clean_generation('Sure! Here is the message:\n"Call me later"', 100) == "Call me later"
    assert clean_generation("Entry: hello   there\nfriend", 100) == "hello there friend"


def test_clean_cuts_at_a_word_boundary_within_max_chars() -> None:
    out = clean_generation("word " * 100, 23)
    assert len(out) <= 23 and out.endswith("word")


def test_prompts_hold_only_public_inputs() -> None:
    builder = PromptBuilder("SMS messages", {"spam": "an unsolicited advert"}, max_chars=100)
    gen = np.random.default_rng(0)
    prompt = builder.random_prompt("spam", gen)
    user = prompt[-1]["content"]
    assert "SMS messages" in user and "an unsolicited advert" in user
    variation = builder.variation_prompt("a public candidate", "spam", gen)[-1]["content"]
    assert variation.endswith("a public candidate")


def test_generator_batches_and_respects_the_budget(fake_runner) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder("SMS messages", max_chars=30)
    generator = CandidateGenerator(
        fake_runner, builder, GenerationBudget(max_tokens=5, max_chars=30), batch_size=4
    )
    gen = np.random.default_rng(0)
    texts = generator.random("ham", 10, gen)
    assert len(texts) == 10
    assert all(0 < len(t) <= 30 and len(t.split()) <= 5 for t in texts)
    varied = generator.variations(texts[:3], "ham", gen)
    assert len(varied) == 3
    assert generator.stats.calls == 13
    assert len(fake_runner.prompts) == 13


def test_generation_is_reproducible_with_the_same_seed(fake_runner) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder("SMS messages")
    a = CandidateGenerator(fake_runner, builder).random("ham", 5, np.random.default_rng(7))
    b = CandidateGenerator(fake_runner, builder).random("ham", 5, np.random.default_rng(7))
    assert a == b


def test_prompt_echoes_are_recognised_and_real_texts_are_not() -> None:
    from safesynth.gateway.engines.text.generate import is_prompt_echo

    for echo in (
        "Here is a revised entry with some different words and details.",
        "Rewrite this entry: call me",
        "I'd be happy to help you with your data set!",
        "The original sentence is now shorter.",
    ):
        assert is_prompt_echo(echo), echo
    for real in (
        "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
        "Ok lar... Joking wif u oni...",
        "The food was great and the service was fast.",
        "Here we go again, another dull movie.",
    ):
        assert not is_prompt_echo(real), real


def test_an_echo_counts_as_empty_and_a_variation_falls_back_to_its_parent() -> None:
    from dataclasses import dataclass

    import numpy as np

    from safesynth.gateway.engines.text.prompts import PromptBuilder

    @dataclass(frozen=True)
    class _Gen:
        text: str
        prompt_tokens: int = 1
        completion_tokens: int = 1
        seconds: float = 0.0

    class _Echo:
        def generate_batch(self, prompts, **kw):  # type: ignore[no-untyped-def]
            return [_Gen("I would rewrite the entry with different words") for _ in prompts]

    gen = CandidateGenerator(_Echo(), PromptBuilder("SMS"), GenerationBudget(max_tokens=8))  # type: ignore[arg-type]
    assert gen.variations(["parent text"], None, np.random.default_rng(0)) == ["parent text"]
    assert gen.random(None, 3, np.random.default_rng(0)) == []
    assert gen.stats.echoes == 1 + 6 and gen.stats.to_json()["prompt_echoes"] == 7
