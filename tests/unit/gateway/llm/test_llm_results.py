"""Usage arithmetic, request validation and thread configuration (no model needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safesynth.gateway.llm import Generation, InvalidRequest, RunnerConfig, Usage
from safesynth.gateway.llm.errors import LLMError, ModelError, ModelFileInvalid, ModelNotFound
from safesynth.gateway.llm.runner import POOL_ENV, THREADS_ENV, _check_sampling


def _gen(prompt: int, completion: int, seconds: float, cached: int = 0) -> Generation:
    return Generation(
        text="x",
        prompt_tokens=prompt,
        completion_tokens=completion,
        seconds=seconds,
        tokens_per_second=completion / seconds,
        finish_reason="length",
        prompt_seconds=seconds / 4,
        eval_seconds=seconds / 2,
        cached_prompt_tokens=cached,
    )


def test_usage_sums_and_rates() -> None:
    usage = Usage.of([_gen(10, 20, 2.0), _gen(30, 40, 2.0, cached=10)])
    assert usage.calls == 2
    assert usage.prompt_tokens == 40 and usage.completion_tokens == 60 and usage.total_tokens == 100
    assert usage.seconds == pytest.approx(4.0)
    assert usage.tokens_per_second == pytest.approx(15.0)
    assert usage.prompt_tokens_per_second == pytest.approx(30 / 1.0)  # 10 of the 40 came from the cache
    assert usage.eval_tokens_per_second == pytest.approx(60 / 2.0)
    assert Usage.of([_gen(1, 1, 1.0)], wall_seconds=0.5).tokens_per_second == pytest.approx(2.0)
    assert "2 call(s), 40 prompt + 60 completion tokens" in usage.summary()
    assert usage.to_json()["total_tokens"] == 100


def test_empty_usage_has_zero_rates() -> None:
    usage = Usage.of([])
    assert usage.calls == 0 and usage.tokens_per_second == 0.0 and usage.prompt_tokens_per_second == 0.0


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), max_size=20))
def test_usage_is_additive(pairs: list[tuple[int, int]]) -> None:
    gens = [_gen(p, c, 1.0) for p, c in pairs]
    half = len(gens) // 2
    whole, left, right = Usage.of(gens), Usage.of(gens[:half]), Usage.of(gens[half:])
    assert whole.prompt_tokens == left.prompt_tokens + right.prompt_tokens
    assert whole.completion_tokens == left.completion_tokens + right.completion_tokens
    assert whole.calls == left.calls + right.calls


@pytest.mark.parametrize(
    ("max_tokens", "temperature", "top_p", "seed"),
    [
        (0, 0.5, 0.9, None),
        (True, 0.5, 0.9, None),
        (5, -0.1, 0.9, None),
        (5, float("nan"), 0.9, None),
        (5, 0.5, 0.0, None),
        (5, 0.5, 1.5, None),
        (5, 0.5, 0.9, -1),
        (5, 0.5, 0.9, 2**32),
    ],
)
def test_bad_sampling_parameters(max_tokens: int, temperature: float, top_p: float, seed: int | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        _check_sampling(max_tokens, temperature, top_p, seed)
    assert info.value.code == "invalid_request"


def test_good_sampling_parameters() -> None:
    _check_sampling(1, 0.0, 1.0, 0)
    _check_sampling(512, 2.0, 0.5, 2**32 - 2)


def test_threads_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RunnerConfig(n_threads=3).threads_per_instance() == 3
    monkeypatch.setenv(THREADS_ENV, "1")
    assert RunnerConfig().threads_per_instance() == 1
    assert RunnerConfig(n_threads=2).threads_per_instance() == 2
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(InvalidRequest, match=THREADS_ENV):
        RunnerConfig().threads_per_instance()
    monkeypatch.delenv(THREADS_ENV)
    assert RunnerConfig(pool_size=2).threads_per_instance() >= 1
    assert RunnerConfig().instances() == 1
    monkeypatch.setenv(POOL_ENV, "2")
    assert RunnerConfig().instances() == 2
    assert RunnerConfig(pool_size=3).instances() == 3
    monkeypatch.setenv(POOL_ENV, "0")
    with pytest.raises(InvalidRequest, match=POOL_ENV):
        RunnerConfig().instances()
    with pytest.raises(InvalidRequest, match="pool_size"):
        RunnerConfig(pool_size=0).instances()


def test_error_codes_are_stable_and_distinct() -> None:
    assert ModelNotFound.code == "model_not_found"
    assert ModelFileInvalid.code == "model_file_invalid"
    assert issubclass(ModelNotFound, ModelError) and issubclass(ModelError, LLMError)
    error = ModelFileInvalid("/x/y.gguf", "truncated")
    assert "/x/y.gguf" in str(error) and "fix:" in str(error) and error.path == "/x/y.gguf"
