"""Text columns: the local language model writes each cell from the synthetic row alone.

The prompt holds only public facts (the schema's description, the column names and descriptions) and
the *synthetic* row's other (non-text, non-identifier) values, so writing text is post-processing of
the DP release: zero extra epsilon. No private text is ever shown to the model.

Each cell has a length budget: the schema's ``max_length`` (characters) or ``DEFAULT_MAX_CHARS``; the
token budget follows from it and the text is cut at a word boundary to fit.

Optional keyword guidance (option ``text_keywords`` = k > 0): ``keyword_counts`` bounds each privacy
unit to at most k distinct words (random ones among its rows' words, minus stop words) and counts, per
word, the units using it; the engine's planned ``keywords:<col>`` step (DP partition selection: noise
and a threshold) releases the words frequent enough; each prompt then lists a few of them, drawn at
random (post-processing). No word seen only in the private data can appear in a prompt unless it
passed the DP selection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from safesynth.gateway.llm import Runner
    from safesynth.sdk.schema import ColumnSpec, DatasetSchema

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TextStats",
    "build_prompt",
    "clean_text",
    "is_echo",
    "keyword_counts",
    "max_chars",
    "row_words",
    "write_text_columns",
]

#: Length budget (characters) of a text cell whose schema gives no ``max_length``.
DEFAULT_MAX_CHARS = 280
_CHARS_PER_TOKEN = 3.5
_MAX_TOKENS = 512
_FALLBACK = "-"
_HINTS_PER_PROMPT = 6
_WORD = re.compile(r"[^\W\d_][^\W\d_'-]{3,}")
_STOP = frozenset(
    [
        "this",
        "that",
        "with",
        "have",
        "from",
        "they",
        "were",
        "been",
        "will",
        "would",
        "there",
        "their",
        "what",
        "when",
        "which",
        "your",
        "about",
        "just",
        "very",
        "also",
        "than",
        "then",
        "them",
        "into",
        "only",
        "more",
        "most",
        "some",
        "such",
        "much",
        "many",
        "other",
        "over",
        "after",
        "before",
        "because",
        "could",
        "should",
        "does",
        "doesn",
        "didn",
        "don",
        "isn",
        "wasn",
        "really",
        "even",
        "still",
        "like",
        "make",
        "made",
    ]
)


def row_words(text: object, limit: int, gen: np.random.Generator) -> list[str]:
    """At most ``limit`` distinct lower-case words (4+ letters, no stop words) of one cell, at random."""
    if not isinstance(text, str):
        return []
    words = sorted({w.lower() for w in _WORD.findall(text)} - _STOP)
    if len(words) <= limit:
        return words
    return [words[i] for i in gen.choice(len(words), size=limit, replace=False)]


def keyword_counts(
    texts: Sequence[object], units: Sequence[object] | None, limit: int, gen: np.random.Generator
) -> dict[str, int]:
    """Per word, the number of privacy units using it, each unit contributing at most ``limit`` distinct
    words over all its rows (``units`` None: each row is a unit). The input of DP partition selection
    with ``max_partitions_contributed = limit``."""
    per_unit: dict[object, set[str]] = {}
    for i, text in enumerate(texts):
        unit = ("__row__", i) if units is None else units[i]
        if unit is None or (isinstance(unit, float) and unit != unit):
            unit = ("__row__", i)
        per_unit.setdefault(unit, set()).update(row_words(text, limit, gen))
    counts: dict[str, int] = {}
    for words in per_unit.values():
        chosen = sorted(words)
        if len(chosen) > limit:
            chosen = [chosen[i] for i in gen.choice(len(chosen), size=limit, replace=False)]
        for w in chosen:
            counts[w] = counts.get(w, 0) + 1
    return counts


def max_chars(spec: ColumnSpec) -> int:
    """The length budget of a text column, in characters."""
    return int(spec.max_length) if spec.max_length is not None else DEFAULT_MAX_CHARS


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "(missing)"
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"
    return str(value)


def _system_prompt(schema: DatasetSchema, spec: ColumnSpec | None = None) -> str:
    """Author framing from the public schema: small models write the field itself instead of echoing a
    record layout (measured on SmolLM2-135M: the "The record: ..." layout was echoed in most cells)."""
    text = "You are the author of one entry in a data set"
    text += f": {schema.description}" if schema.description else "."
    if spec is not None:
        text += f" You write its '{spec.name}' field" + (
            f": {spec.description}." if spec.description else "."
        )
    text += " Write naturally, as a real author would. Reply with the text only: no labels, no quotes."
    return text


def _known(value: Any) -> bool:
    """A value worth showing to the model (missing values and the ``__other__`` bucket say nothing)."""
    return _format(value) != "(missing)" and str(value) != "__other__"


def build_prompt(
    spec: ColumnSpec, context: Sequence[tuple[ColumnSpec, Any]], limit: int, hints: Sequence[str] = ()
) -> str:
    """The user message for one cell: the row's other values (synthetic), optional DP-selected
    ``hints`` (words common in this field) and the field to write."""
    lines = ["About your entry:"]
    for other, value in context:
        if not _known(value):
            continue
        label = f"{other.name} ({other.description})" if other.description else other.name
        lines.append(f"- {label}: {_format(value)}")
    if hints:
        lines.append(f"Words often used in this field (use some if they fit): {', '.join(hints)}.")
    lines.append(f"Now write your {spec.name} (at most {limit} characters).")
    return "\n".join(lines)


#: outputs that talk about the task or copy the prompt's layout instead of writing the field
_ECHO = re.compile(
    r"the record:|about your entry|at most \d+ characters|^\s*(?:here(?:'s| is)\b|sure\b|certainly\b)",
    re.IGNORECASE,
)


def is_echo(text: str) -> bool:
    """True for an output that echoes the prompt or comments on the task (it is retried)."""
    return bool(_ECHO.search(text))


def clean_text(text: str, name: str, limit: int) -> str:
    """Strip labels, quotes and whitespace; cut at a word boundary to at most ``limit`` characters."""
    if is_echo(text):
        return ""
    out = text.strip()
    out = re.sub(rf"^\s*(?:{re.escape(name)}|text|answer)\s*:\s*", "", out, flags=re.IGNORECASE)
    out = out.strip().strip("\"'“”").strip()
    out = re.sub(r"\s+", " ", out)
    if len(out) > limit:
        cut = out[:limit]
        space = cut.rfind(" ")
        out = (cut[:space] if space > limit // 2 else cut).rstrip()
    return out


@dataclass
class TextStats:
    """What writing the text columns took (aggregates only)."""

    cells: int = 0
    retries: int = 0
    fallbacks: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "cells": self.cells,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "cells_per_second": round(self.cells / self.seconds, 4) if self.seconds > 0 else None,
        }


def write_text_columns(
    table: pd.DataFrame,
    schema: DatasetSchema,
    text_columns: Sequence[ColumnSpec],
    context_columns: Sequence[ColumnSpec],
    runner: Runner,
    *,
    seed: int,
    batch_size: int = 8,
    temperature: float = 0.8,
    progress: Callable[[float], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    keywords: Mapping[str, Sequence[str]] | None = None,
) -> TextStats:
    """Fill ``table``'s text columns in place, batch by batch; returns the aggregate stats.
    ``keywords`` maps a text column to its DP-selected words (prompt hints, a few per cell)."""
    import time

    hint_gen = np.random.default_rng(seed)

    stats = TextStats()
    started = time.perf_counter()
    total = len(table) * len(text_columns)
    done = 0
    for spec in text_columns:
        system = _system_prompt(schema, spec)
        limit = max_chars(spec)
        max_tokens = max(8, min(_MAX_TOKENS, math.ceil(limit / _CHARS_PER_TOKEN) + 4))
        rows = table[[c.name for c in context_columns]].to_dict("records") if context_columns else None
        values: list[str] = []
        for start in range(0, len(table), batch_size):
            if check_cancelled is not None:
                check_cancelled()
            stop = min(start + batch_size, len(table))
            vocabulary = list((keywords or {}).get(spec.name, ()))
            prompts = [
                build_prompt(
                    spec,
                    [(c, rows[i][c.name]) for c in context_columns] if rows else [],
                    limit,
                    [
                        vocabulary[j]
                        for j in sorted(
                            hint_gen.choice(
                                len(vocabulary), size=min(_HINTS_PER_PROMPT, len(vocabulary)), replace=False
                            )
                        )
                    ]
                    if vocabulary
                    else (),
                )
                for i in range(start, stop)
            ]
            batch_seed = (seed + start * 7919 + len(values)) % (2**31)
            result = runner.generate_batch(
                prompts, max_tokens=max_tokens, temperature=temperature, seed=batch_seed, system=system
            )
            texts = [clean_text(g.text, spec.name, limit) for g in result]
            stats.completion_tokens += sum(g.completion_tokens for g in result)
            for k, text in enumerate(texts):
                attempt = 0
                while not text and attempt < 2:
                    attempt += 1
                    stats.retries += 1
                    again = runner.generate_batch(
                        [prompts[k]],
                        max_tokens=max_tokens,
                        temperature=min(1.2, temperature + 0.2 * attempt),
                        seed=(batch_seed + 104729 * attempt + k) % (2**31),
                        system=system,
                    )
                    stats.completion_tokens += again[0].completion_tokens
                    text = clean_text(again[0].text, spec.name, limit)
                if not text:
                    stats.fallbacks += 1
                    text = _FALLBACK
                values.append(text)
            done += stop - start
            stats.cells += stop - start
            if progress is not None and total:
                progress(done / total)
        table[spec.name] = pd.Series(values, index=table.index, dtype=object)
    stats.seconds = time.perf_counter() - started
    return stats
