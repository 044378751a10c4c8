"""Random and variation generators on the LLM runner (PE's RANDOM_API and VARIATION_API).

Prompts come from :class:`~safesynth.gateway.engines.text.prompts.PromptBuilder` (public information
only); generation is batched through ``runner.generate_batch`` with seeds drawn from the engine's
non-private generator, so a seeded run is reproducible. Every output is cleaned (chat preambles,
quotes and line breaks removed) and held to the length budget: at most ``max_tokens`` generated
tokens and ``max_chars`` characters (cut at a word boundary). An output that talks about the task
instead of doing it (``is_prompt_echo``: "Here is a revised entry...", "Rewrite this...") is treated as
empty: a random candidate is retried once, a variation falls back to its parent. The test reads only the
generated text and a fixed public list of phrases, so it is post-processing of public candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from safesynth.gateway.engines.text.prompts import ChatMessages, PromptBuilder

__all__ = [
    "CandidateGenerator",
    "GenerationBudget",
    "GenerationLike",
    "GenerationRunner",
    "GenerationStats",
    "clean_generation",
    "is_prompt_echo",
]


class GenerationLike(Protocol):
    """What the generator reads from one runner result (``safesynth.gateway.llm.Generation``)."""

    @property
    def text(self) -> str:
        """The generated text."""
        ...

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens."""
        ...

    @property
    def completion_tokens(self) -> int:
        """Generated tokens."""
        ...

    @property
    def seconds(self) -> float:
        """Wall time of the call."""
        ...


class GenerationRunner(Protocol):
    """The part of ``safesynth.gateway.llm.Runner`` the generator uses."""

    def generate_batch(
        self,
        prompts: Sequence[str | Sequence[Mapping[str, str]]],
        *,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = ...,
        stop: Sequence[str] | None = ...,
    ) -> Sequence[GenerationLike]:
        """One generation per prompt, in order; prompt ``i`` uses ``seed + i``."""
        ...


@dataclass(frozen=True)
class GenerationBudget:
    """Length and sampling limits for every generation."""

    max_tokens: int = 64
    max_chars: int = 280
    temperature: float = 1.0
    top_p: float = 0.95


@dataclass
class GenerationStats:
    """Totals over all generation calls of a run (for the report and the benchmark)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    empty: int = 0
    echoes: int = 0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of generation wall time."""
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, float | int]:
        """A JSON-ready view."""
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "empty_outputs": self.empty,
            "prompt_echoes": self.echoes,
        }


_PREAMBLE = re.compile(
    r"^\s*(sure|okay|ok|certainly|here(?:'s| is| are)|example|text|message|review|rewritten|new example|entry"
    r"|new entry|sms|answer|output|response)[^:\n]{0,100}:\s*",
    re.IGNORECASE,
)
_LABEL_PREFIX = re.compile(r"^\s*(label|topic|style|tone)\s*:[^\n]*\n", re.IGNORECASE)
_QUOTES = "\"'“”‘’«»`"
_ECHO = re.compile(
    r"\b(data ?sets?|rewrit(e|es|ten|ing)|revised|rephras(e|ed|ing)|original (sentence|entry|text|message)"
    r"|(new|revised|edited|this) entry|different words|same length|in an? \w+ tone|as an ai"
    r"|i'?d be (happy|glad) to|i'?m (happy|glad) to help|here (is|are) (a|an|the|some|one)"
    r"|here'?s (a|an|the|one|my))\b",
    re.IGNORECASE,
)


def is_prompt_echo(text: str) -> bool:
    """True for an output that talks about the task (instructions, "revised entry", offers of help)."""
    return bool(_ECHO.search(text))


def clean_generation(text: str, max_chars: int) -> str:
    """A model output as one clean line of at most ``max_chars`` characters (cut at a word boundary)."""
    out = text.replace("\r", "\n")
    for _ in range(3):
        out = _LABEL_PREFIX.sub("", out)
        stripped = _PREAMBLE.sub("", out, count=1)
        if stripped == out:
            break
        out = stripped
    out = " ".join(out.split())
    if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1].strip()
    out = out.strip(_QUOTES + " ")
    if len(out) > max_chars:
        cut = out[:max_chars]
        space = cut.rfind(" ")
        out = cut[:space] if space >= max_chars // 2 else cut
        out = out.rstrip()
    return out


@dataclass
class CandidateGenerator:
    """Generates candidates (random) and variations of parents, batched, within a length budget."""

    runner: GenerationRunner
    prompts: PromptBuilder
    budget: GenerationBudget = field(default_factory=GenerationBudget)
    batch_size: int = 16
    on_batch: Callable[[int], None] | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)

    def _generate(self, prompts: Sequence[ChatMessages], base_seed: int) -> list[str]:
        """Generate in batches; prompt ``j`` always uses seed ``base_seed + j`` (batching-independent)."""
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            results = self.runner.generate_batch(
                list(chunk),
                max_tokens=self.budget.max_tokens,
                temperature=self.budget.temperature,
                top_p=self.budget.top_p,
                seed=base_seed + start,
                stop=["\n\n"],
            )
            for r in results:
                self.stats.calls += 1
                self.stats.prompt_tokens += int(r.prompt_tokens)
                self.stats.completion_tokens += int(r.completion_tokens)
                self.stats.seconds += float(r.seconds)
                cleaned = clean_generation(r.text, self.budget.max_chars)
                if cleaned and is_prompt_echo(cleaned):
                    self.stats.echoes += 1
                    cleaned = ""
                self.stats.empty += int(not cleaned)
                out.append(cleaned)
            if self.on_batch is not None:
                self.on_batch(len(chunk))
        return out

    def random(self, label: str | None, n: int, gen: np.random.Generator) -> list[str]:
        """``n`` fresh candidates for ``label`` (empty outputs retried once, then dropped)."""
        if n <= 0:
            return []
        base_seed = _base_seed(gen)
        # the j-th prompt and seed depend only on the first j draws: a larger n extends a smaller one
        texts = self._generate([self.prompts.random_prompt(label, gen) for _ in range(n)], base_seed)
        missing = [i for i, t in enumerate(texts) if not t]
        if missing:
            retry = self._generate([self.prompts.random_prompt(label, gen) for _ in missing], _base_seed(gen))
            for i, t in zip(missing, retry, strict=True):
                texts[i] = t
        return [t for t in texts if t]

    def variations(self, parents: Sequence[str], label: str | None, gen: np.random.Generator) -> list[str]:
        """One variation per parent, in order (an empty output falls back to the parent itself)."""
        if not parents:
            return []
        base_seed = _base_seed(gen)
        texts = self._generate([self.prompts.variation_prompt(p, label, gen) for p in parents], base_seed)
        return [t if t else p for t, p in zip(texts, parents, strict=True)]


def _base_seed(gen: np.random.Generator) -> int:
    """A generation seed with room for ``+ j`` offsets below llama.cpp's 32-bit limit."""
    return int(gen.integers(0, 2**31))
