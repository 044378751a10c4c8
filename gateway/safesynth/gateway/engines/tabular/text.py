"""Text columns: the local language model writes each cell from the synthetic row alone.

The prompt holds only public facts (the schema's description, the column names and descriptions) and
the *synthetic* row's other (non-text, non-identifier) values, so writing text is post-processing of
the DP release: zero extra epsilon. No private text is ever shown to the model.

Each cell has a length budget: the schema's ``max_length`` (characters) or ``DEFAULT_MAX_CHARS``; the
token budget follows from it and the text is cut at a word boundary to fit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from safesynth.gateway.llm import Runner
    from safesynth.sdk.schema import ColumnSpec, DatasetSchema

__all__ = ["DEFAULT_MAX_CHARS", "TextStats", "build_prompt", "clean_text", "max_chars", "write_text_columns"]

#: Length budget (characters) of a text cell whose schema gives no ``max_length``.
DEFAULT_MAX_CHARS = 280
_CHARS_PER_TOKEN = 3.5
_MAX_TOKENS = 512
_FALLBACK = "-"


def max_chars(spec: ColumnSpec) -> int:
    """The length budget of a text column, in characters."""
    return int(spec.max_length) if spec.max_length is not None else DEFAULT_MAX_CHARS


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "(missing)"
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"
    return str(value)


def _system_prompt(schema: DatasetSchema) -> str:
    text = (
        "You write one field of a record in a data set. Write natural, plausible and varied text "
        "that fits the record. Reply with the text of the field only, no quotes, no labels."
    )
    if schema.description:
        text += f"\nThe data set: {schema.description}"
    return text


def build_prompt(spec: ColumnSpec, context: Sequence[tuple[ColumnSpec, Any]], limit: int) -> str:
    """The user message for one cell: the row's other values (synthetic) and the field to write."""
    lines = ["The record:"]
    for other, value in context:
        label = f"{other.name} ({other.description})" if other.description else other.name
        lines.append(f"- {label}: {_format(value)}")
    what = f"'{spec.name}'" + (f" ({spec.description})" if spec.description else "")
    lines.append(f"Write the {what} field of this record, at most {limit} characters.")
    return "\n".join(lines)


def clean_text(text: str, name: str, limit: int) -> str:
    """Strip labels, quotes and whitespace; cut at a word boundary to at most ``limit`` characters."""
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
) -> TextStats:
    """Fill ``table``'s text columns in place, batch by batch; returns the aggregate stats."""
    import time

    stats = TextStats()
    started = time.perf_counter()
    system = _system_prompt(schema)
    total = len(table) * len(text_columns)
    done = 0
    for spec in text_columns:
        limit = max_chars(spec)
        max_tokens = max(8, min(_MAX_TOKENS, math.ceil(limit / _CHARS_PER_TOKEN) + 4))
        rows = table[[c.name for c in context_columns]].to_dict("records") if context_columns else None
        values: list[str] = []
        for start in range(0, len(table), batch_size):
            if check_cancelled is not None:
                check_cancelled()
            stop = min(start + batch_size, len(table))
            prompts = [
                build_prompt(spec, [(c, rows[i][c.name]) for c in context_columns] if rows else [], limit)
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
