"""Membership attacks on text columns: verbatim copies, long n-gram overlap, nearest neighbours.

Texts are normalised (lower case, collapsed whitespace). The embedding space is public: a
:class:`sklearn.feature_extraction.text.HashingVectorizer` (word 1-2-grams), which has no fitted state,
so nothing is learned from private text.

* ``text_exact``: the record's text appears verbatim in the release;
* ``text_ngram``: the share of the record's word 8-grams found in the release (a text shorter than
  eight words counts as one gram);
* ``text_nn``: cosine similarity to the most similar synthetic text;
* ``text_nn_calibrated``: that similarity minus the similarity to the most similar reference text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["NGRAM", "exact_in", "hashing_vectors", "max_similarity", "ngram_overlap", "ngram_set"]

NGRAM = 8
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def exact_in(texts: Sequence[str], release: Sequence[str]) -> B:
    """Which non-empty ``texts`` occur verbatim in ``release``."""
    pool = {t for t in release if t}
    return np.asarray([bool(t) and t in pool for t in texts], dtype=np.bool_)


def _grams(text: str) -> list[str]:
    words = text.split()
    if not words:
        return []
    if len(words) < NGRAM:
        return [" ".join(words)]
    return [" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)]


def ngram_set(texts: Sequence[str]) -> set[int]:
    """Hashes of every word 8-gram in ``texts``."""
    out: set[int] = set()
    for t in texts:
        out.update(hash(g) for g in _grams(t))
    return out


def ngram_overlap(texts: Sequence[str], grams: set[int]) -> F64:
    """Per text: the share of its 8-grams in ``grams`` (0 for an empty text)."""
    out = np.zeros(len(texts))
    for i, t in enumerate(texts):
        gs = _grams(t)
        if gs:
            out[i] = sum(hash(g) in grams for g in gs) / len(gs)
    return out


def hashing_vectors(texts: Sequence[str]):  # type: ignore[no-untyped-def]
    """L2-normalised sparse vectors in the public hashing space (no fitted state)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    return vec.transform(list(texts))


def max_similarity(queries, table, *, block: int = 512) -> F64:  # type: ignore[no-untyped-def]
    """Per query row: the largest cosine similarity to a row of ``table`` (0 if the table is empty)."""
    m = queries.shape[0]
    out = np.zeros(m)
    if table.shape[0] == 0:
        return out
    tt = table.T.tocsr()
    for lo in range(0, m, block):
        prod = (queries[lo : lo + block] @ tt).tocsr()
        out[lo : lo + block] = np.asarray(prod.max(axis=1).todense()).ravel()
    return np.clip(out, 0.0, 1.0)
