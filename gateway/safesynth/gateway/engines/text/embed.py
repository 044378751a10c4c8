"""Public embedding spaces for the nearest-neighbour vote: nothing here is fitted on private data.

* :class:`HashingEmbedder` - scikit-learn's ``HashingVectorizer`` (stateless: the feature map is a
  fixed hash function) over word unigrams/bigrams and character 3-5-grams, each block L2-normalised,
  concatenated and normalised again; sparse.
* :class:`ModelEmbedder` - the llama.cpp model's own pooled embeddings (``runner.embed``), L2-normalised.

Both return rows of unit L2 norm, so cosine similarity is a dot product. :func:`top_k_neighbours`
finds, for each query row, the ``k`` most similar candidates (chunked, so memory stays bounded).

Hubness: in a sparse lexical space a long, generic candidate shares some n-gram with almost every
text and becomes the nearest neighbour of many of them, so plain nearest-neighbour votes favour long
generic texts (measured on a validation split of the SMS/sentiment training data: the vote-selected
half of the candidates was *farther* from real texts than a random half). :func:`hubness_penalty` is the
CSLS correction (Conneau et al. ICLR 2018): a candidate's mean similarity to its nearest other
candidates, subtracted (halved) from its similarity to each query. It is computed from the public
candidates alone, so it changes which candidate a private text votes for but not the L2 norm of the
text's contribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = [
    "EMBEDDINGS",
    "Embedder",
    "EmbeddingRunner",
    "HashingEmbedder",
    "Matrix",
    "ModelEmbedder",
    "hubness_penalty",
    "make_embedder",
    "top_k_neighbours",
]

#: A dense array or a scipy sparse matrix with unit-norm rows.
Matrix = Any

#: The embedding names a request may choose.
EMBEDDINGS: tuple[str, ...] = ("hashing", "model")


class EmbeddingRunner(Protocol):
    """The part of the LLM runner the model embedder uses."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Rows of unit L2 norm, one per text."""
        ...


class Embedder(Protocol):
    """A fixed, public map from texts to unit-norm vectors."""

    @property
    def name(self) -> str:
        """A stable name recorded in the release report."""
        ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One unit-norm row per text (an empty text gives a zero row)."""
        ...


class HashingEmbedder:
    """Word and character n-gram hashing (stateless, so it cannot learn from private data)."""

    def __init__(self, n_features: int = 2**18) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self._n_features = n_features
        common: dict[str, Any] = {"n_features": n_features, "alternate_sign": False, "lowercase": True}
        self._words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), norm="l2", **common)
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), norm="l2", **common)

    @property
    def name(self) -> str:
        """Recorded in the release report."""
        return f"hashing/v1(words1-2+char_wb3-5,n_features={self._n_features})"

    def embed(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Sparse rows of unit norm (zero rows for texts without any feature)."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        docs = list(texts)
        stacked = sp.hstack([self._words.transform(docs), self._chars.transform(docs)], format="csr")
        return normalize(stacked, norm="l2", copy=False)


class ModelEmbedder:
    """The llama.cpp model's own embeddings (pre-trained on public data, never fitted here)."""

    def __init__(self, runner: EmbeddingRunner, model_name: str, batch_size: int = 64) -> None:
        self._runner = runner
        self._model_name = model_name
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        """Recorded in the release report."""
        return f"model/v1({self._model_name})"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Dense rows of unit norm; empty texts are embedded as a single space."""
        docs = [t if t.strip() else " " for t in texts]
        if not docs:
            return np.zeros((0, 1), dtype=np.float32)
        parts = [
            np.asarray(self._runner.embed(docs[i : i + self._batch_size]), dtype=np.float32)
            for i in range(0, len(docs), self._batch_size)
        ]
        out = np.vstack(parts)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def make_embedder(name: str, runner: EmbeddingRunner | None, model_name: str = "") -> Embedder:
    """The embedder called ``name`` (one of :data:`EMBEDDINGS`)."""
    if name == "hashing":
        return HashingEmbedder()
    if name == "model":
        if runner is None:
            raise ValueError("the model embedding needs a runner")
        return ModelEmbedder(runner, model_name)
    raise ValueError(f"unknown embedding {name!r}; choose one of {', '.join(EMBEDDINGS)}")


def _dense(block: Matrix) -> npt.NDArray[np.float64]:
    if hasattr(block, "toarray"):
        return np.asarray(block.toarray(), dtype=np.float64)
    return np.asarray(block, dtype=np.float64)


def hubness_penalty(candidates: Matrix, neighbours: int = 10, chunk: int = 512) -> npt.NDArray[np.float64]:
    """CSLS penalty of each candidate: half its mean cosine similarity to its ``neighbours`` most similar
    OTHER candidates (0 for a lone candidate). Reads the candidates only (public)."""
    n = candidates.shape[0]
    out = np.zeros(n, dtype=np.float64)
    k = min(neighbours, n - 1)
    if k <= 0:
        return out
    cand_t = candidates.T
    for start in range(0, n, chunk):
        sims = _dense(candidates[start : start + chunk] @ cand_t)
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # not its own neighbour
        top = np.partition(sims, n - k, axis=1)[:, n - k :]
        out[start : start + sims.shape[0]] = 0.5 * top.mean(axis=1)
    return out


def top_k_neighbours(
    queries: Matrix,
    candidates: Matrix,
    k: int,
    chunk: int = 512,
    penalty: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.int64]:
    """For each query row, the indices of its ``k`` most similar candidate rows (cosine similarity,
    minus ``penalty[j]`` for candidate ``j`` when given, e.g. :func:`hubness_penalty`).

    Ties are broken towards the lower candidate index (deterministic). Returns an array of shape
    (n_queries, k); ``k`` must be between 1 and the number of candidates.
    """
    n_queries = queries.shape[0]
    n_cand = candidates.shape[0]
    if not 1 <= k <= n_cand:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({n_cand})")
    out = np.empty((n_queries, k), dtype=np.int64)
    cand_t = candidates.T
    for start in range(0, n_queries, chunk):
        sims = _dense(queries[start : start + chunk] @ cand_t)
        if penalty is not None:
            sims -= penalty[None, :]
        # stable sort on -similarity: equal similarities keep the lower index first
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        out[start : start + sims.shape[0]] = order
    return out
