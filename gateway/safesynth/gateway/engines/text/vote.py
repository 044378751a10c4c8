"""The ONLY place where private texts are read: the inputs of the two noisy mechanisms.

:class:`PrivateCorpus` takes the private table, keeps the texts (sanitised, truncated to the public
length bound, grouped by public label) and answers exactly two questions, each of which is the input
of a Gaussian mechanism and of nothing else:

* :meth:`PrivateCorpus.label_counts` - how many rows carry each public label (L2 sensitivity 1 per
  row: a row has one label);
* :meth:`PrivateCorpus.vote_histogram` - for one label, how many private texts have each candidate
  among their ``k`` nearest neighbours, each text contributing ``1/sqrt(k)`` to each of its ``k``
  distinct neighbours, so that one text's contribution has L2 norm exactly 1.

With a person-level privacy unit, at most ``max_rows_per_person`` rows per person are kept (the first
ones in table order) and the sensitivity is that number (triangle inequality), see
:attr:`PrivateCorpus.sensitivity`.

Nothing in this module raises on the *content* of the private texts: undecodable bytes are replaced,
missing values become empty texts, overlong texts are truncated to the public bound, rows whose label
is not one of the public labels are dropped. An error here would be an output that no noise protects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.text.embed import Embedder, Matrix, top_k_neighbours

__all__ = ["PrivateCorpus", "sanitize_text"]


def sanitize_text(value: object, max_chars: int) -> str:
    """A private cell as a bounded text: bytes decoded with replacement, None/NaN empty, truncated."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, float) and math.isnan(value):
        return ""
    else:
        text = str(value)
    # lone surrogates (from "surrogateescape" decoding upstream) are not valid UTF-8 either
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text[:max_chars]


class PrivateCorpus:
    """The private texts, grouped by public label; read only by the two histogram inputs."""

    def __init__(self, texts_by_label: Mapping[str | None, Sequence[str]], sensitivity: int = 1) -> None:
        self._texts: dict[str | None, list[str]] = {k: list(v) for k, v in texts_by_label.items()}
        self._embedded: dict[str | None, Matrix] = {}
        self._sensitivity = sensitivity

    @classmethod
    def from_frame(
        cls,
        data: Any,
        *,
        text_column: str,
        label_column: str | None,
        labels: Sequence[str] | None,
        max_chars: int,
        person_column: str | None = None,
        max_rows_per_person: int = 1,
    ) -> PrivateCorpus:
        """Extract the corpus from a pandas DataFrame (the column names are public, from the schema)."""
        texts = [sanitize_text(v, max_chars) for v in data[text_column].tolist()]
        if label_column is None:
            row_labels: list[str | None] = [None] * len(texts)
        else:
            row_labels = [None if _missing(v) else str(v) for v in data[label_column].tolist()]
        keep = [True] * len(texts)
        if person_column is not None:
            seen: dict[str, int] = {}
            for i, person in enumerate(data[person_column].tolist()):
                key = repr(person)
                seen[key] = seen.get(key, 0) + 1
                keep[i] = seen[key] <= max_rows_per_person
        keys: list[str | None] = list(labels) if labels is not None else [None]
        grouped: dict[str | None, list[str]] = {lab: [] for lab in keys}
        for text, label, kept in zip(texts, row_labels, keep, strict=True):
            if not kept:
                continue
            group = label if label_column is not None else None
            if group in grouped:
                grouped[group].append(text)
        sensitivity = max_rows_per_person if person_column is not None else 1
        return cls(grouped, sensitivity=sensitivity)

    @property
    def sensitivity(self) -> int:
        """L2 sensitivity of each histogram input (1 for a row-level unit)."""
        return self._sensitivity

    def label_counts(self, labels: Sequence[str | None]) -> npt.NDArray[np.float64]:
        """Rows per label, in the order given: the input of the noisy label histogram."""
        return np.array([len(self._texts.get(lab, [])) for lab in labels], dtype=np.float64)

    def vote_histogram(
        self,
        label: str | None,
        candidate_embeddings: Matrix,
        *,
        embedder: Embedder,
        k: int,
        penalty: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Votes of this label's private texts for the candidates: the input of the noisy histogram.

        Each private text adds ``1/sqrt(k_eff)`` to each of its ``k_eff = min(k, n_candidates)``
        nearest candidates (distinct), so its contribution vector has L2 norm exactly 1. ``penalty``
        (a function of the public candidates only, e.g. the hubness correction) shifts the candidates'
        similarities before the nearest ones are chosen.
        """
        n_cand = candidate_embeddings.shape[0]
        hist = np.zeros(n_cand, dtype=np.float64)
        texts = self._texts.get(label, [])
        if n_cand == 0 or not texts:
            return hist
        if label not in self._embedded:
            self._embedded[label] = embedder.embed(texts)
        k_eff = min(k, n_cand)
        neighbours = top_k_neighbours(self._embedded[label], candidate_embeddings, k_eff, penalty=penalty)
        np.add.at(hist, neighbours.ravel(), 1.0 / math.sqrt(k_eff))
        return hist


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
