"""Records of what a runner call produced and cost: Generation, Usage, NextToken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Generation", "NextToken", "TokenLogProb", "Usage"]


def _rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class Generation:
    """One generated text with its token counts and timing.

    ``seconds`` is the wall time of the call (lock wait excluded); ``prompt_seconds`` and
    ``eval_seconds`` are llama.cpp's own timers for prompt processing and token generation.
    ``tokens_per_second`` is generated tokens per wall second. ``json`` holds the parsed value when
    the call was constrained by a JSON schema. ``finish_reason`` is ``"stop"`` or ``"length"``.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    tokens_per_second: float
    finish_reason: str
    prompt_seconds: float = 0.0
    eval_seconds: float = 0.0
    cached_prompt_tokens: int = 0
    seed: int | None = None
    json: Any = None

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def prompt_tokens_per_second(self) -> float:
        """Prompt tokens processed per second of llama.cpp prompt time (0 if not measured)."""
        return _rate(self.prompt_tokens - self.cached_prompt_tokens, self.prompt_seconds)

    @property
    def eval_tokens_per_second(self) -> float:
        """Generated tokens per second of llama.cpp generation time (0 if not measured)."""
        return _rate(self.completion_tokens, self.eval_seconds)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the text, counts and timings."""
        return {
            "text": self.text,
            "json": self.json,
            "finish_reason": self.finish_reason,
            "usage": Usage.of([self]).to_json(),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Usage:
    """Token counts and timing aggregated over one or more calls."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    prompt_seconds: float = 0.0
    eval_seconds: float = 0.0
    cached_prompt_tokens: int = 0

    @classmethod
    def of(cls, generations: Iterable[Generation], *, wall_seconds: float | None = None) -> Usage:
        """Sum the generations; ``wall_seconds`` overrides the summed time (for a parallel batch)."""
        items = list(generations)
        seconds = sum(g.seconds for g in items) if wall_seconds is None else wall_seconds
        return cls(
            calls=len(items),
            prompt_tokens=sum(g.prompt_tokens for g in items),
            completion_tokens=sum(g.completion_tokens for g in items),
            seconds=seconds,
            prompt_seconds=sum(g.prompt_seconds for g in items),
            eval_seconds=sum(g.eval_seconds for g in items),
            cached_prompt_tokens=sum(g.cached_prompt_tokens for g in items),
        )

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per wall second."""
        return _rate(self.completion_tokens, self.seconds)

    @property
    def prompt_tokens_per_second(self) -> float:
        """Prompt tokens evaluated per second of llama.cpp prompt time (cached prefixes excluded)."""
        return _rate(self.prompt_tokens - self.cached_prompt_tokens, self.prompt_seconds)

    @property
    def eval_tokens_per_second(self) -> float:
        """Generated tokens per second of llama.cpp generation time."""
        return _rate(self.completion_tokens, self.eval_seconds)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "seconds": round(self.seconds, 6),
            "tokens_per_second": round(self.tokens_per_second, 3),
            "prompt_tokens_per_second": round(self.prompt_tokens_per_second, 3),
            "eval_tokens_per_second": round(self.eval_tokens_per_second, 3),
        }

    def summary(self) -> str:
        """One human line, e.g. for stderr."""
        return (
            f"usage: {self.calls} call(s), {self.prompt_tokens} prompt + {self.completion_tokens} "
            f"completion tokens in {self.seconds:.3f} s ({self.tokens_per_second:.1f} tok/s generated, "
            f"{self.prompt_tokens_per_second:.1f} tok/s prompt)"
        )


@dataclass(frozen=True)
class TokenLogProb:
    """A token of the vocabulary with its log-probability."""

    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after a prompt: raw logits over the vocabulary and the top tokens."""

    logits: npt.NDArray[np.float32]
    top: tuple[TokenLogProb, ...]
    prompt_tokens: int
    seconds: float
