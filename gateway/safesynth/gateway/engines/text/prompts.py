"""Prompts for the random and variation generators, built from PUBLIC information only.

Nothing here ever sees a private text. A prompt is made of:

* the public description of the corpus (the schema's text-column description, else the dataset
  description, else a neutral default),
* the public label name and, when given in the request options, a public description of the label,
* one item from fixed public lists of topics, styles and tones (or lists the requester supplies, which
  are public by definition), chosen with the engine's non-private random generator,
* for a variation: the parent text, itself a candidate generated from public prompts and selected by
  the DP histogram (post-processing of a DP output).

The shared instruction (corpus, label, length) comes first and the varying part (topic, style, tone,
parent) last, so that llama.cpp reuses the cached prefix across the prompts of a label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_STYLES",
    "DEFAULT_TONES",
    "DEFAULT_TOPICS",
    "ChatMessages",
    "PromptBuilder",
]

#: One chat prompt: a list of {"role": ..., "content": ...} messages.
ChatMessages = list[dict[str, str]]

DEFAULT_TOPICS: tuple[str, ...] = (
    "family",
    "friends",
    "work",
    "school",
    "money",
    "shopping",
    "food and restaurants",
    "travel",
    "health",
    "sports",
    "movies and TV",
    "music",
    "technology and phones",
    "weather",
    "plans for the weekend",
    "an appointment",
    "a delivery",
    "a product",
    "a service",
    "an offer",
    "a competition or prize",
    "a subscription",
    "a bill or payment",
    "a hotel",
    "a book",
    "a game",
    "a party",
    "a trip home",
    "love and dating",
    "news of the day",
)

DEFAULT_STYLES: tuple[str, ...] = (
    "very short and informal",
    "short, with abbreviations",
    "one plain sentence",
    "two short sentences",
    "casual, like a text message",
    "direct and factual",
    "detailed",
    "enthusiastic",
    "matter-of-fact",
    "a question",
)

DEFAULT_TONES: tuple[str, ...] = (
    "neutral",
    "friendly",
    "annoyed",
    "happy",
    "disappointed",
    "urgent",
    "polite",
    "sarcastic",
    "excited",
    "calm",
)

_SYSTEM = "You write realistic entries for a data set. Reply with the entry only, no explanation."


@dataclass(frozen=True)
class PromptBuilder:
    """Builds chat prompts from the public corpus description, label names and style lists."""

    corpus_description: str
    label_descriptions: Mapping[str, str] = field(default_factory=dict)
    topics: Sequence[str] = DEFAULT_TOPICS
    styles: Sequence[str] = DEFAULT_STYLES
    tones: Sequence[str] = DEFAULT_TONES
    max_chars: int = 280

    def _label_phrase(self, label: str | None) -> str:
        if label is None:
            return ""
        described = self.label_descriptions.get(label)
        if described:
            return f" It must be {described}."
        return f" Its category is {label!r}."

    def _length_phrase(self) -> str:
        words = max(3, self.max_chars // 6)
        return f" At most {words} words."

    def random_prompt(self, label: str | None, gen: np.random.Generator) -> ChatMessages:
        """A prompt for a fresh candidate: corpus kind, label, a random topic, style and tone."""
        topic = self.topics[int(gen.integers(len(self.topics)))]
        style = self.styles[int(gen.integers(len(self.styles)))]
        tone = self.tones[int(gen.integers(len(self.tones)))]
        user = (
            f"Data set: {self.corpus_description}.{self._label_phrase(label)}{self._length_phrase()}\n"
            f"Write one new entry of this data set about {topic}, {style}, in a {tone} tone."
        )
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]

    def variation_prompt(self, parent: str, label: str | None, gen: np.random.Generator) -> ChatMessages:
        """A prompt for a variation of ``parent`` (a public candidate chosen through the DP histogram)."""
        tone = self.tones[int(gen.integers(len(self.tones)))]
        user = (
            f"Data set: {self.corpus_description}.{self._label_phrase(label)}\nRewrite this entry with "
            f"some different words and details, same length, in a {tone} tone.\nEntry: {parent}"
        )
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]
