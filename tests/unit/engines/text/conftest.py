"""Fixtures of the text-engine tests: a deterministic fake runner (for code AROUND the model only)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

_VOCAB = [
    "call",
    "free",
    "prize",
    "win",
    "now",
    "txt",
    "claim",
    "cash",
    "offer",
    "reply",
    "stop",
    "mobile",
    "ok",
    "see",
    "you",
    "later",
    "home",
    "dinner",
    "love",
    "lol",
    "meet",
    "tonight",
    "sorry",
    "late",
    "work",
    "going",
    "great",
    "movie",
    "good",
    "bad",
    "food",
    "service",
    "film",
    "phone",
]


@dataclass(frozen=True)
class FakeGeneration:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float = 0.001
    tokens_per_second: float = 1000.0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class FakeInfo:
    path: Path
    sha256: str


@dataclass
class FakeRunner:
    """Writes words drawn from a fixed public vocabulary, determined by (prompt, seed); records prompts."""

    prompts: list[str] = field(default_factory=list)
    info: FakeInfo = FakeInfo(Path("/models/fake.gguf"), "0" * 64)

    def generate_batch(
        self,
        prompts: Sequence[str | Sequence[Mapping[str, str]]],
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[FakeGeneration]:
        out = []
        for i, prompt in enumerate(prompts):
            key = json.dumps(prompt, sort_keys=True)
            self.prompts.append(key)
            digest = int(hashlib.sha256(f"{key}|{seed}|{i}".encode()).hexdigest()[:12], 16)
            rnd = random.Random(digest)
            n = min(max_tokens, rnd.randint(3, 12))
            words = [rnd.choice(_VOCAB) for _ in range(n)]
            out.append(FakeGeneration(" ".join(words), prompt_tokens=len(key) // 4, completion_tokens=n))
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for t in texts:
            v = np.zeros(16)
            for w in t.split():
                v[int(hashlib.sha256(w.encode()).hexdigest()[:4], 16) % 16] += 1
            n = np.linalg.norm(v)
            rows.append(v / n if n else v)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), 16)


@pytest.fixture
def fake_runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def sms_schema() -> DatasetSchema:
    return DatasetSchema(
        columns=(
            ColumnSpec(name="label", kind=ColumnKind.CATEGORICAL, categories=("ham", "spam")),
            ColumnSpec(name="text", kind=ColumnKind.TEXT, description="SMS text messages", max_length=160),
        )
    )


def _sms_frame(n_ham: int = 60, n_spam: int = 20, seed: int = 0) -> Any:
    import pandas as pd

    rnd = random.Random(seed)
    ham = ["ok see you later " + rnd.choice(["home", "dinner", "tonight", "lol"]) for _ in range(n_ham)]
    spam = ["win free cash prize call now " + rnd.choice(["txt", "claim", "reply"]) for _ in range(n_spam)]
    return pd.DataFrame({"label": ["ham"] * n_ham + ["spam"] * n_spam, "text": ham + spam})


@pytest.fixture
def make_sms() -> Any:
    """A factory of small labelled SMS-like tables: make_sms(n_ham, n_spam, seed)."""
    return _sms_frame


@pytest.fixture
def runner_factory() -> Any:
    """The FakeRunner class (to make several independent runners in one test)."""
    return FakeRunner
