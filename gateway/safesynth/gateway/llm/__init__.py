"""The on-premise llama.cpp runner: one model per process, typed errors, measured calls.

Importing this package does not import llama_cpp or numpy; they load with the first runner.
"""

from safesynth.gateway.llm.errors import (
    GenerationFailed,
    InvalidJsonSchema,
    InvalidRequest,
    JsonOutputInvalid,
    LlamaCppUnavailable,
    LLMError,
    ModelError,
    ModelFileInvalid,
    ModelLoadFailed,
    ModelNotFound,
    PromptTooLong,
)
from safesynth.gateway.llm.model_file import ModelInfo, bundled_model_path, inspect_model, resolve_model_path
from safesynth.gateway.llm.results import Generation, NextToken, TokenLogProb, Usage
from safesynth.gateway.llm.runner import BatchResult, EmbeddingResult, Runner, RunnerConfig, get_runner

__all__ = [
    "BatchResult",
    "EmbeddingResult",
    "Generation",
    "GenerationFailed",
    "InvalidJsonSchema",
    "InvalidRequest",
    "JsonOutputInvalid",
    "LLMError",
    "LlamaCppUnavailable",
    "ModelError",
    "ModelFileInvalid",
    "ModelInfo",
    "ModelLoadFailed",
    "ModelNotFound",
    "NextToken",
    "PromptTooLong",
    "Runner",
    "RunnerConfig",
    "TokenLogProb",
    "Usage",
    "bundled_model_path",
    "get_runner",
    "inspect_model",
    "resolve_model_path",
]
