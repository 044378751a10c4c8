"""The private corpus: the only reader of private texts, with unit L2 contributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.gateway.engines.text.embed import HashingEmbedder, top_k_neighbours
from safesynth.gateway.engines.text.vote import PrivateCorpus, sanitize_text

_EMB = HashingEmbedder(n_features=2**12)
_CANDIDATES = ["free prize call now", "see you at home", "the movie was great", "bad food and service"]
_CAND_EMB = _EMB.embed(_CANDIDATES)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.text(min_size=0, max_size=40), min_size=0, max_size=12),
    st.text(min_size=0, max_size=40),
    st.integers(1, 6),
)
def test_adding_one_text_changes_the_histogram_by_l2_norm_exactly_one(
    texts: list[str], extra: str, k: int
) -> None:
    before = PrivateCorpus({None: texts}).vote_histogram(None, _CAND_EMB, embedder=_EMB, k=k)
    after = PrivateCorpus({None: [*texts, extra]}).vote_histogram(None, _CAND_EMB, embedder=_EMB, k=k)
    assert math.isclose(float(np.linalg.norm(after - before)), 1.0, rel_tol=1e-9)


def test_each_text_votes_for_its_nearest_candidate() -> None:
    corpus = PrivateCorpus({"a": ["call now to claim your free prize", "see you at home tonight"]})
    hist = corpus.vote_histogram("a", _CAND_EMB, embedder=_EMB, k=1)
    assert hist.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_top_k_is_deterministic_on_ties() -> None:
    ids = top_k_neighbours(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), 2)
    assert ids.tolist() == [[2, 0]]


def test_label_counts_and_unknown_labels_dropped() -> None:
    frame = pd.DataFrame({"t": ["a", "b", "c", "d"], "y": ["x", "y", "x", "zzz"]})
    corpus = PrivateCorpus.from_frame(
        frame, text_column="t", label_column="y", labels=("x", "y"), max_chars=10
    )
    assert corpus.label_counts(["x", "y"]).tolist() == [2.0, 1.0]


def test_sanitize_bad_bytes_missing_values_and_long_texts() -> None:
    assert sanitize_text(b"caf\xe9 ok", 100) == "caf\ufffd ok"
    assert sanitize_text(None, 100) == ""
    assert sanitize_text(float("nan"), 100) == ""
    assert sanitize_text("x" * 100_000, 280) == "x" * 280
    assert sanitize_text("a\udcffb", 10) == "a?b"


def test_person_unit_keeps_at_most_m_rows_and_reports_sensitivity() -> None:
    frame = pd.DataFrame({"t": ["a", "b", "c", "d"], "p": [1, 1, 1, 2]})
    corpus = PrivateCorpus.from_frame(
        frame,
        text_column="t",
        label_column=None,
        labels=None,
        max_chars=10,
        person_column="p",
        max_rows_per_person=2,
    )
    assert corpus.label_counts([None]).tolist() == [3.0]
    assert corpus.sensitivity == 2


def test_empty_corpus_votes_nothing() -> None:
    hist = PrivateCorpus({None: []}).vote_histogram(None, _CAND_EMB, embedder=_EMB, k=1)
    assert hist.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_hubness_penalty_matches_a_hand_computed_reference() -> None:
    import numpy as np

    from safesynth.gateway.engines.text.embed import hubness_penalty

    cands = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # similarities: c0-c1 0.6, c0-c2 0, c1-c2 0.8; with 1 neighbour: half the best other similarity
    np.testing.assert_allclose(hubness_penalty(cands, neighbours=1), [0.3, 0.4, 0.4])
    # with 2 neighbours: half the mean of both others
    np.testing.assert_allclose(hubness_penalty(cands, neighbours=2), [0.15, 0.35, 0.2])
    np.testing.assert_allclose(hubness_penalty(cands[:1]), [0.0])


def test_the_penalty_moves_votes_but_each_text_still_has_norm_one() -> None:
    import numpy as np

    from safesynth.gateway.engines.text.embed import HashingEmbedder, hubness_penalty
    from safesynth.gateway.engines.text.vote import PrivateCorpus

    embedder = HashingEmbedder()
    cands = embedder.embed(["call me now please", "the the the a a a of of and to call", "free prize"])
    texts = ["call me", "free prize now", "a the of"]
    corpus = PrivateCorpus({None: texts})
    for penalty in (None, hubness_penalty(cands), np.array([0.0, 10.0, 0.0])):
        one = PrivateCorpus({None: texts[:2]})
        full = corpus.vote_histogram(None, cands, embedder=embedder, k=2, penalty=penalty)
        less = one.vote_histogram(None, cands, embedder=embedder, k=2, penalty=penalty)
        assert np.linalg.norm(full - less) == pytest.approx(1.0)
    # a huge penalty on the generic candidate takes every vote away from it
    hist = corpus.vote_histogram(None, cands, embedder=embedder, k=1, penalty=np.array([0.0, 10.0, 0.0]))
    assert hist[1] == 0.0 and hist.sum() == pytest.approx(3.0)
