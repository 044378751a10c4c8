"""The runner: one loaded GGUF model per path per process, safe for concurrent callers.

A ``Runner`` holds ``pool_size`` llama.cpp instances of the same model (default 1, or
``$SAFESYNTH_LLM_POOL``). Each instance serves one call at a time (it sits in a queue while free, so
holding it is the per-instance lock); a second instance lets two calls run in parallel, each with half
the threads. Embeddings use a separate
instance created lazily with ``embedding=True`` and mean pooling.

Every call returns its token counts and timing (``Generation`` / ``Usage`` / ``NextToken``). A call
without a seed gets a fresh random one (recorded in ``Generation.seed``); with ``temperature=0`` the
output is greedy and deterministic.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from safesynth.gateway.llm.backend import cpu_count, import_llama_cpp, load_llama
from safesynth.gateway.llm.errors import (
    GenerationFailed,
    InvalidJsonSchema,
    InvalidRequest,
    JsonOutputInvalid,
    PromptTooLong,
)
from safesynth.gateway.llm.model_file import ModelInfo, inspect_model, resolve_model_path
from safesynth.gateway.llm.results import Generation, NextToken, TokenLogProb, Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

__all__ = [
    "POOL_ENV",
    "THREADS_ENV",
    "BatchResult",
    "ChatMessages",
    "EmbeddingResult",
    "Runner",
    "RunnerConfig",
    "get_runner",
]

ChatMessages = Sequence[Mapping[str, str]]
_SEED_LIMIT = 2**32 - 1  # 0xFFFFFFFF is llama.cpp's "random seed" marker


THREADS_ENV = "SAFESYNTH_LLM_THREADS"
POOL_ENV = "SAFESYNTH_LLM_POOL"


def _env_int(name: str) -> int | None:
    configured = os.environ.get(name, "").strip()
    if not configured:
        return None
    try:
        value = int(configured)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be a positive integer, got {configured!r}") from exc
    if value < 1:
        raise InvalidRequest(f"{name} must be a positive integer, got {configured!r}")
    return value


@dataclass(frozen=True)
class RunnerConfig:
    """How to load the model.

    ``pool_size=None`` means ``$SAFESYNTH_LLM_POOL`` if set, else 1 instance. ``n_threads=None`` means
    ``$SAFESYNTH_LLM_THREADS`` if set, else all cores divided among the pool's instances. For
    batch-heavy work on few cores, 2 instances x 1 thread was the fastest layout measured (see
    benchmarks/results/llm_runner.md); one instance with all cores gives the lowest single-call latency
    on an idle machine.
    """

    n_ctx: int = 2048
    n_batch: int = 512
    n_threads: int | None = None
    pool_size: int | None = None
    embedding_ctx: int = 512

    def instances(self) -> int:
        """Number of llama.cpp instances for generation."""
        if self.pool_size is not None:
            if self.pool_size < 1:
                raise InvalidRequest(f"pool_size must be >= 1, got {self.pool_size}")
            return self.pool_size
        return _env_int(POOL_ENV) or 1

    def threads_per_instance(self) -> int:
        """Threads each llama.cpp instance uses."""
        if self.n_threads is not None:
            return max(1, self.n_threads)
        return _env_int(THREADS_ENV) or max(1, cpu_count() // self.instances())


class BatchResult(list[Generation]):
    """The generations of a batch, in prompt order, plus ``usage`` (aggregate; wall time of the batch)."""

    usage: Usage


@dataclass(frozen=True)
class EmbeddingResult:
    """Embeddings (n x d, float32, L2-normalised, mean-pooled) with their token count and time."""

    vectors: npt.NDArray[np.float32]
    prompt_tokens: int
    seconds: float


class _Slot:
    """One llama.cpp instance; used by one caller at a time."""

    def __init__(self, llama: Llama) -> None:
        self.llama = llama

    def perf_reset(self) -> None:
        llama_cpp = import_llama_cpp()
        llama_cpp.llama_perf_context_reset(self.llama.ctx)

    def perf(self) -> tuple[float, int, float, int]:
        """(prompt seconds, prompt tokens evaluated, eval seconds, tokens evaluated) since the reset."""
        data = import_llama_cpp().llama_perf_context(self.llama.ctx)
        return data.t_p_eval_ms / 1000.0, int(data.n_p_eval), data.t_eval_ms / 1000.0, int(data.n_eval)


def _check_sampling(max_tokens: int, temperature: float, top_p: float, seed: int | None) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise InvalidRequest(f"temperature must be >= 0, got {temperature!r}")
    if not math.isfinite(top_p) or not 0 < top_p <= 1:
        raise InvalidRequest(f"top_p must be in (0, 1], got {top_p!r}")
    if seed is not None and (isinstance(seed, bool) or not 0 <= seed < _SEED_LIMIT):
        raise InvalidRequest(f"seed must be an integer in [0, {_SEED_LIMIT}), got {seed!r}")


def _fresh_seed() -> int:
    return secrets.randbelow(_SEED_LIMIT)


class Runner:
    """A loaded GGUF model: completion, chat, JSON-constrained output, batches, embeddings, logits."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, config: RunnerConfig | None = None
    ) -> None:
        """Load the model at ``path`` (None: ``$SAFESYNTH_MODEL_PATH`` or the bundled model).

        Raises ModelNotFound / ModelFileInvalid / ModelLoadFailed naming the path and the fix.
        """
        self.config = config or RunnerConfig()
        self.path: Path = resolve_model_path(path)
        started = time.perf_counter()
        threads = self.config.threads_per_instance()
        self._slots = [
            _Slot(
                load_llama(
                    self.path,
                    n_ctx=self.config.n_ctx,
                    n_batch=self.config.n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                )
            )
            for _ in range(self.config.instances())
        ]
        self.load_seconds = time.perf_counter() - started
        self._free: queue.Queue[_Slot] = queue.Queue()
        for slot in self._slots:
            self._free.put(slot)
        first = self._slots[0].llama
        self.n_ctx: int = first.n_ctx()
        self.n_vocab: int = first.n_vocab()
        self.metadata: Mapping[str, str] = dict(first.metadata)
        self._grammars: dict[str, LlamaGrammar] = {}
        self._grammar_lock = threading.Lock()
        self._embedder: _Slot | None = None
        self._embed_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._totals = Usage(calls=0, prompt_tokens=0, completion_tokens=0, seconds=0.0)
        self._info: ModelInfo | None = None
        _live.add(self)

    # ------------------------------------------------------------------ facts

    @property
    def info(self) -> ModelInfo:
        """Size, sha256 and GGUF header facts of the model file (computed once)."""
        if self._info is None:
            self._info = inspect_model(self.path)
        return self._info

    @property
    def pool_size(self) -> int:
        """Number of llama.cpp instances serving generation calls."""
        return len(self._slots)

    @property
    def total_usage(self) -> Usage:
        """Token counts and time summed over every generation call of this runner."""
        with self._stats_lock:
            return self._totals

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text`` (special tokens such as ``<|im_start|>`` are recognised)."""
        tokens: list[int] = self._slots[0].llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        return tokens

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` (without a BOS token)."""
        return len(self.tokenize(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of token ids."""
        raw: bytes = self._slots[0].llama.detokenize(list(tokens))
        return raw.decode("utf-8", "replace")

    def format_chat(self, messages: ChatMessages) -> str:
        """The prompt string the model's chat template makes of ``messages`` (ready for an answer)."""
        from llama_cpp import llama_chat_format

        template = self.metadata.get("tokenizer.chat_template")
        if not template:
            raise InvalidRequest(
                f"model {self.path} has no chat template; use complete() with a plain prompt"
            )
        llama = self._slots[0].llama
        eos = llama.token_eos()
        bos = llama.token_bos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        )
        response = formatter(messages=cast(Any, _messages(messages)))
        return str(response.prompt)

    # ------------------------------------------------------------------ generation

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
    ) -> Generation:
        """Continue ``prompt`` (raw text, no chat template).

        With ``json_schema`` the output is constrained by a llama.cpp grammar made from the schema
        and ``Generation.json`` holds the parsed value (JsonOutputInvalid if max_tokens cut it short).
        """
        _check_sampling(max_tokens, temperature, top_p, seed)
        grammar = self.grammar(json_schema) if json_schema is not None else None

        def call(llama: Llama, call_seed: int) -> Any:
            return llama.create_completion(
                prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=call_seed,
                stop=list(stop or []),
                grammar=grammar,
            )

        return self._run(call, seed, json_schema is not None, lambda r: r["choices"][0]["text"])

    def chat(
        self,
        messages: ChatMessages,
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
    ) -> Generation:
        """Answer a conversation (``[{"role": "system"|"user"|"assistant", "content": ...}, ...]``)
        formatted with the model's own chat template."""
        _check_sampling(max_tokens, temperature, top_p, seed)
        grammar = self.grammar(json_schema) if json_schema is not None else None
        payload = _messages(messages)

        def call(llama: Llama, call_seed: int) -> Any:
            return llama.create_chat_completion(
                messages=cast(Any, payload),
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=call_seed,
                stop=list(stop or []),
                grammar=grammar,
            )

        return self._run(
            call, seed, json_schema is not None, lambda r: r["choices"][0]["message"]["content"] or ""
        )

    def generate_batch(
        self,
        prompts: Sequence[str | ChatMessages],
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
        system: str | None = None,
    ) -> BatchResult:
        """Chat-generate for many prompts; results in prompt order with aggregate ``usage``.

        A string prompt is one user message (after ``system``, if given); a sequence of messages is
        used as is. With ``seed``, prompt ``i`` uses ``seed + i`` (so equal prompts still differ and
        the batch is reproducible). Calls are spread over the instance pool; with one instance they
        run back to back on the same context, which reuses the KV cache of a shared prompt prefix.
        """
        _check_sampling(max_tokens, temperature, top_p, seed)
        conversations = [_as_conversation(p, system) for p in prompts]
        started = time.perf_counter()

        def one(index: int) -> Generation:
            item_seed = None if seed is None else (seed + index) % _SEED_LIMIT
            return self.chat(
                conversations[index],
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=item_seed,
                stop=stop,
                json_schema=json_schema,
            )

        if self.pool_size == 1 or len(conversations) < 2:
            generations = [one(i) for i in range(len(conversations))]
        else:
            with ThreadPoolExecutor(max_workers=self.pool_size, thread_name_prefix="safesynth-llm") as pool:
                generations = list(pool.map(one, range(len(conversations))))
        result = BatchResult(generations)
        result.usage = Usage.of(generations, wall_seconds=time.perf_counter() - started)
        return result

    # ------------------------------------------------------------------ logits and embeddings

    def next_token(self, prompt: str, *, top_k: int = 10) -> NextToken:
        """Logits over the vocabulary for the token after ``prompt`` (raw text, tokenized as
        ``complete`` does), and the ``top_k`` most likely tokens with their log-probabilities."""
        import numpy as np

        if top_k < 0:
            raise InvalidRequest(f"top_k must be >= 0, got {top_k}")
        llama_cpp = import_llama_cpp()
        with self._acquire() as slot:
            started = time.perf_counter()
            llama = slot.llama
            tokens = _prompt_tokens(llama, prompt)
            if not tokens:
                raise InvalidRequest("next_token needs a non-empty prompt")
            if len(tokens) >= self.n_ctx:
                raise PromptTooLong(f"prompt has {len(tokens)} tokens; the context window is {self.n_ctx}")
            llama.reset()  # type: ignore[no-untyped-call]
            try:
                llama.eval(tokens)
            except RuntimeError as exc:
                raise GenerationFailed(f"llama.cpp failed to evaluate the prompt: {exc}") from exc
            pointer = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
            logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float32, copy=True)
            seconds = time.perf_counter() - started
        wide = logits.astype(np.float64)
        peak = float(wide.max())
        log_norm = peak + math.log(float(np.exp(wide - peak).sum()))
        k = min(top_k, self.n_vocab)
        order = np.argsort(-wide, kind="stable")[:k]
        top = tuple(TokenLogProb(int(t), self.detokenize([int(t)]), float(wide[t] - log_norm)) for t in order)
        return NextToken(logits=logits, top=top, prompt_tokens=len(tokens), seconds=seconds)

    def next_token_logits(self, prompt: str) -> npt.NDArray[np.float32]:
        """Logits (length = vocabulary size) for the token after ``prompt``."""
        return self.next_token(prompt, top_k=0).logits

    def embed_with_usage(self, texts: Sequence[str]) -> EmbeddingResult:
        """Mean-pooled, L2-normalised embeddings of ``texts`` (batched), with token count and time.

        Uses a separate ``embedding=True`` instance loaded on first use. Empty texts are embedded
        as a single space; texts longer than the embedding context are truncated.
        """
        import numpy as np

        items = [t if t.strip() else " " for t in texts]
        slot = self._embedding_slot()
        with self._embed_lock:
            started = time.perf_counter()
            if not items:
                vectors = np.zeros((0, slot.llama.n_embd()), dtype=np.float32)
                return EmbeddingResult(vectors, 0, 0.0)
            try:
                raw, n_tokens = slot.llama.embed(items, normalize=False, truncate=True, return_count=True)
            except (RuntimeError, ValueError) as exc:
                raise GenerationFailed(f"llama.cpp failed to embed: {exc}") from exc
            seconds = time.perf_counter() - started
        matrix = np.asarray(raw, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised = (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return EmbeddingResult(normalised, int(n_tokens), seconds)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts``: an (n x d) float32 array, rows L2-normalised."""
        return self.embed_with_usage(texts).vectors

    # ------------------------------------------------------------------ grammar

    def grammar(self, json_schema: Mapping[str, Any]) -> LlamaGrammar:
        """The llama.cpp grammar for a JSON schema (validated once, cached)."""
        from llama_cpp.llama_grammar import LlamaGrammar

        try:
            key = json.dumps(json_schema, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidJsonSchema(f"the JSON schema is not JSON-serialisable: {exc}") from exc
        with self._grammar_lock:
            cached = self._grammars.get(key)
            if cached is not None:
                return cached
            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:  # the converter raises bare Exception/KeyError/... on bad input
                raise InvalidJsonSchema(f"cannot turn the JSON schema into a grammar: {exc!r}") from exc
            self._validate_grammar(grammar)
            self._grammars[key] = grammar
            return grammar

    def _validate_grammar(self, grammar: LlamaGrammar) -> None:
        # llama.cpp returns NULL for a grammar it cannot parse; adding NULL to a sampler chain would crash.
        llama_cpp = import_llama_cpp()
        vocab = self._slots[0].llama._model.vocab
        sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not sampler:
            raise InvalidJsonSchema("llama.cpp rejected the grammar made from the JSON schema")
        llama_cpp.llama_sampler_free(sampler)

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _acquire(self) -> Iterator[_Slot]:
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    def _embedding_slot(self) -> _Slot:
        with self._embed_lock:
            if self._embedder is None:
                llama_cpp = import_llama_cpp()
                self._embedder = _Slot(
                    load_llama(
                        self.path,
                        embedding=True,
                        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                        n_ctx=self.config.embedding_ctx,
                        n_batch=self.config.embedding_ctx,
                        n_ubatch=self.config.embedding_ctx,
                        n_threads=self.config.threads_per_instance() * self.pool_size,
                        n_threads_batch=self.config.threads_per_instance() * self.pool_size,
                    )
                )
            return self._embedder

    def _run(
        self,
        call: Callable[[Llama, int], Any],
        seed: int | None,
        parse_json: bool,
        text_of: Callable[[Any], str],
    ) -> Generation:
        call_seed = _fresh_seed() if seed is None else seed
        with self._acquire() as slot:
            slot.perf_reset()
            started = time.perf_counter()
            try:
                response = call(slot.llama, call_seed)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise PromptTooLong(f"{exc}; shorten the prompt or raise n_ctx") from exc
                raise GenerationFailed(f"llama.cpp generation failed: {exc}") from exc
            except RuntimeError as exc:
                raise GenerationFailed(f"llama.cpp generation failed: {exc}") from exc
            seconds = time.perf_counter() - started
            prompt_seconds, n_prompt_eval, eval_seconds, _ = slot.perf()
        usage = response["usage"]
        text = text_of(response)
        prompt_tokens = int(usage["prompt_tokens"])
        completion_tokens = int(usage["completion_tokens"])
        generation = Generation(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=seconds,
            tokens_per_second=completion_tokens / seconds if seconds > 0 else 0.0,
            finish_reason=str(response["choices"][0].get("finish_reason") or "stop"),
            prompt_seconds=prompt_seconds,
            eval_seconds=eval_seconds,
            cached_prompt_tokens=max(0, prompt_tokens - n_prompt_eval) if n_prompt_eval else 0,
            seed=call_seed,
            json=_parse_json(text, completion_tokens) if parse_json else None,
        )
        with self._stats_lock:
            self._totals = Usage(
                calls=self._totals.calls + 1,
                prompt_tokens=self._totals.prompt_tokens + prompt_tokens,
                completion_tokens=self._totals.completion_tokens + completion_tokens,
                seconds=self._totals.seconds + seconds,
                prompt_seconds=self._totals.prompt_seconds + prompt_seconds,
                eval_seconds=self._totals.eval_seconds + eval_seconds,
                cached_prompt_tokens=self._totals.cached_prompt_tokens + generation.cached_prompt_tokens,
            )
        return generation

    def close(self) -> None:
        """Free the llama.cpp instances (idempotent; the runner is unusable afterwards)."""
        for slot in self._slots:
            slot.llama.close()
        if self._embedder is not None:
            self._embedder.llama.close()


def _messages(messages: ChatMessages) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InvalidRequest(
                f"each chat message needs string 'role' and 'content', got {dict(message)!r}"
            )
        out.append({"role": role, "content": content})
    if not out:
        raise InvalidRequest("a chat needs at least one message")
    return out


def _as_conversation(prompt: str | ChatMessages, system: str | None) -> ChatMessages:
    if isinstance(prompt, str):
        head = [{"role": "system", "content": system}] if system is not None else []
        return [*head, {"role": "user", "content": prompt}]
    return prompt


def _prompt_tokens(llama: Llama, prompt: str) -> list[int]:
    """Tokenize ``prompt`` exactly as ``create_completion`` does (BOS if the model adds one)."""
    tokens: list[int] = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    bos = llama.token_bos()
    if llama._model.add_bos_token() and bos != -1:
        tokens = [bos, *tokens]
    return tokens


def _parse_json(text: str, completion_tokens: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonOutputInvalid(
            f"schema-constrained output is not complete JSON after {completion_tokens} tokens ({exc.msg}); "
            "raise max_tokens",
            text,
        ) from exc


_runners: dict[Path, Runner] = {}
_runners_lock = threading.Lock()
_live: weakref.WeakSet[Runner] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Free llama.cpp while its module is intact: Llama.__del__ during interpreter teardown raises
    # "'NoneType' object is not callable" noise on stderr.
    for runner in list(_live):
        runner.close()


def get_runner(path: str | os.PathLike[str] | None = None, config: RunnerConfig | None = None) -> Runner:
    """The process-wide runner for ``path`` (None: ``$SAFESYNTH_MODEL_PATH`` or the bundled model).

    The model is loaded once per resolved path; ``config`` only applies to that first load.
    Thread-safe: concurrent first calls load the model once.
    """
    resolved = resolve_model_path(path)
    with _runners_lock:
        runner = _runners.get(resolved)
        if runner is None:
            runner = Runner(resolved, config)
            _runners[resolved] = runner
        return runner
