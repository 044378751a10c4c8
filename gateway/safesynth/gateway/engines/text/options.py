"""The text engine's options: parsed from the request and the public schema, validated, JSON-ready.

Options (all public; unknown keys are refused):

=====================  =========================================================================
``text_column``        the text column (default: the schema's only ``text`` column)
``label_column``       a categorical column with public ``categories`` (default: the only such
                       column, if exactly one; ``""`` for none)
``label_descriptions`` {label: public description used in prompts}, e.g. {"1": "a positive review"}
``corpus_description`` what the texts are (default: the text column's or the dataset's description)
``topics``/``styles``/``tones``  lists replacing the fixed public lists of prompt ingredients
``iterations``         T, the number of noisy vote histograms (default 1, the measured setting:
                       see benchmarks/results/text.md)
``candidates``         candidates per iteration, all labels together (default: from the size gate,
                       at most ``max_candidates``)
``max_candidates``     cap of the automatic choice (default: 1.2 x the rows asked for, else 600)
``k``                  nearest candidates each private text votes for (default 1; weight 1/sqrt(k))
``threshold_sigmas``   threshold on noisy votes, in units of sigma (default 1.0)
``selection``          parents (T > 1): "sample", "rank" or "proportional" (default "sample")
``output_selection``   output rows: "proportional" (default: rows per candidate proportional to its
                       noisy votes, largest remainder), "rank" (each positive candidate once) or
                       "sample" (multinomial); see ``selection.select_output``
``label_mix``          output rows per label: "balanced" (default: equal rows for every label with a
                       positive noisy count; a public choice, i.e. post-processing: costs nothing, same
                       events) or "dp_shares" (proportional to the noisy label counts)
``embedding``          "hashing" or "model" (default "hashing", see benchmarks/results/text.md)
``hubness``            "csls" (default: votes corrected for hub candidates, see ``embed.hubness_penalty``)
                       or "none" (plain nearest neighbours)
``max_tokens``         generated tokens per text (default 64)
``max_chars``          characters per text, also the truncation of private texts (default: the
                       column's ``max_length``, else 280)
``temperature``        sampling temperature (default 1.0)
``count_share``        share of the privacy budget (GDP mu^2) for the noisy label count (default 0.1)
``gate_factor``        the size gate: expected votes per candidate >= gate_factor * sigma (default 1)
``min_rows``           a public lower bound on the number of private rows (for the size gate)
``dp_count``           a DP count of the rows released earlier (post-processing: free)
``max_rows``           cap on the output size when ``rows`` is None (default 10000)
``min_candidates_per_label``  (default 4)
=====================  =========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safesynth.gateway.engines.text.embed import EMBEDDINGS
from safesynth.gateway.engines.text.errors import InvalidTextOption, NoTextColumn
from safesynth.gateway.engines.text.prompts import DEFAULT_STYLES, DEFAULT_TONES, DEFAULT_TOPICS
from safesynth.gateway.engines.text.selection import SELECTION_MODES
from safesynth.sdk.schema import ColumnKind, DatasetSchema

__all__ = ["LABEL_MIXES", "TextOptions", "resolve_options"]

#: How the output rows are split over the labels (see the module docstring).
LABEL_MIXES: tuple[str, ...] = ("dp_shares", "balanced")

_DEFAULT_MAX_CHARS = 280


@dataclass(frozen=True)
class TextOptions:
    """Resolved options (JSON round-trip through :meth:`to_json` / :meth:`from_json`)."""

    text_column: str
    label_column: str | None
    labels: tuple[str, ...] | None
    corpus_description: str
    label_descriptions: dict[str, str] = field(default_factory=dict)
    topics: tuple[str, ...] = DEFAULT_TOPICS
    styles: tuple[str, ...] = DEFAULT_STYLES
    tones: tuple[str, ...] = DEFAULT_TONES
    iterations: int = 1
    candidates: int | None = None
    max_candidates: int = 600
    k: int = 1
    threshold_sigmas: float = 1.0
    selection: str = "sample"
    output_selection: str = "proportional"
    label_mix: str = "balanced"
    embedding: str = "hashing"
    hubness: str = "csls"
    max_tokens: int = 64
    max_chars: int = _DEFAULT_MAX_CHARS
    temperature: float = 1.0
    count_share: float = 0.1
    gate_factor: float = 1.0
    min_rows: int | None = None
    dp_count: int | None = None
    max_rows: int = 10_000
    min_candidates_per_label: int = 4
    person_column: str | None = None
    max_rows_per_person: int = 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TextOptions:
        """Inverse of :meth:`to_json`."""
        values = dict(obj)
        for key in ("labels", "topics", "styles", "tones"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["label_descriptions"] = dict(values.get("label_descriptions") or {})
        return cls(**values)

    @property
    def label_keys(self) -> list[str | None]:
        """The per-label runs: the public labels, or one run without a label."""
        return list(self.labels) if self.labels is not None else [None]


_INT_OPTIONS: dict[str, tuple[int, int]] = {
    "iterations": (1, 20),
    "candidates": (1, 100_000),
    "max_candidates": (1, 100_000),
    "k": (1, 64),
    "max_tokens": (1, 2048),
    "max_chars": (1, 100_000),
    "min_rows": (0, 10**9),
    "dp_count": (0, 10**9),
    "max_rows": (1, 10_000_000),
    "min_candidates_per_label": (1, 1000),
}
_FLOAT_OPTIONS: dict[str, tuple[float, float]] = {
    "threshold_sigmas": (0.0, 10.0),
    "temperature": (0.0, 2.0),
    "count_share": (0.001, 0.9),
    "gate_factor": (0.0, 100.0),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "selection": SELECTION_MODES,
    "output_selection": SELECTION_MODES,
    "label_mix": LABEL_MIXES,
    "hubness": ("csls", "none"),
    "embedding": EMBEDDINGS,
}
_TEXT_LISTS = ("topics", "styles", "tones")
_OTHER = ("text_column", "label_column", "label_descriptions", "corpus_description")
_KNOWN = frozenset(_INT_OPTIONS) | frozenset(_FLOAT_OPTIONS) | frozenset(_CHOICES) | frozenset(_TEXT_LISTS)
_KNOWN = _KNOWN | frozenset(_OTHER)


def _default_max_candidates(rows: int | None) -> int:
    """1.2 candidates per requested row (600 without a row count): the selection needs more candidates
    than rows to choose from, and each candidate costs one generation, like a row."""
    return 600 if rows is None else max(1, math.ceil(1.2 * rows))


def _int(name: str, value: object) -> int:
    low, high = _INT_OPTIONS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidTextOption(f"option {name!r} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float(name: str, value: object) -> float:
    low, high = _FLOAT_OPTIONS[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTextOption(f"option {name!r} must be a number in [{low}, {high}], got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidTextOption(f"option {name!r} must be a number in [{low}, {high}], got {value!r}")
    return number


def _text_list(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise InvalidTextOption(f"option {name!r} must be a non-empty list of strings")
    items = tuple(value)
    if not all(isinstance(x, str) and 0 < len(x) <= 200 for x in items) or len(items) > 1000:
        raise InvalidTextOption(f"option {name!r} must hold 1-1000 strings of 1-200 characters")
    return items


def _text_column(schema: DatasetSchema, requested: object) -> str:
    texts = [c.name for c in schema.columns if c.kind is ColumnKind.TEXT]
    if requested is not None:
        if not isinstance(requested, str) or requested not in texts:
            raise NoTextColumn(
                f"text_column {requested!r} is not a text column of the schema (text: {texts})"
            )
        return requested
    if len(texts) != 1:
        raise NoTextColumn(
            f"the text engine needs exactly one text column or the option text_column; the schema has {texts}"
        )
    return texts[0]


def _label_column(schema: DatasetSchema, requested: object) -> tuple[str | None, tuple[str, ...] | None]:
    candidates = [c for c in schema.columns if c.kind is ColumnKind.CATEGORICAL and c.categories]
    if requested == "":
        return None, None
    if requested is not None:
        match = [c for c in candidates if c.name == requested]
        if not match:
            raise InvalidTextOption(
                f"label_column {requested!r} must be a categorical column with public categories"
            )
        spec = match[0]
    elif len(candidates) == 1:
        spec = candidates[0]
    else:
        return None, None
    assert spec.categories is not None
    return spec.name, tuple(spec.categories)


def resolve_options(schema: DatasetSchema, options: Mapping[str, Any], rows: int | None) -> TextOptions:
    """Validate ``options`` against the schema; defaults filled in. Reads no private data."""
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise InvalidTextOption(f"unknown option(s) for the text engine: {', '.join(unknown)}")
    text_column = _text_column(schema, options.get("text_column"))
    label_column, labels = _label_column(schema, options.get("label_column"))
    spec = schema.column(text_column)
    description = options.get("corpus_description") or spec.description or schema.description or "short texts"
    if not isinstance(description, str) or len(description) > 500:
        raise InvalidTextOption("option 'corpus_description' must be a string of at most 500 characters")
    label_descriptions = options.get("label_descriptions") or {}
    if not isinstance(label_descriptions, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= 300 for k, v in label_descriptions.items()
    ):
        raise InvalidTextOption("option 'label_descriptions' must map label names to strings (<= 300 chars)")
    values: dict[str, Any] = {
        "text_column": text_column,
        "label_column": label_column,
        "labels": labels,
        "corpus_description": description,
        "label_descriptions": dict(label_descriptions),
        "max_chars": spec.max_length or _DEFAULT_MAX_CHARS,
        "max_candidates": _default_max_candidates(rows),
    }
    for name in _INT_OPTIONS:
        if options.get(name) is not None:
            values[name] = _int(name, options[name])
    for name in _FLOAT_OPTIONS:
        if options.get(name) is not None:
            values[name] = _float(name, options[name])
    for name, choices in _CHOICES.items():
        if name in options:
            if options[name] not in choices:
                raise InvalidTextOption(f"option {name!r} must be one of {', '.join(choices)}")
            values[name] = options[name]
    for name in _TEXT_LISTS:
        if name in options:
            values[name] = _text_list(name, options[name])
    unit = schema.privacy_unit
    if unit.kind == "person":
        values["person_column"] = unit.person_column
        values["max_rows_per_person"] = unit.max_rows_per_person
    return TextOptions(**values)
