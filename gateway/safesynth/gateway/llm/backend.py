"""The thin layer over llama-cpp-python: import it, silence its logs, load a validated GGUF.

llama.cpp's CPU backend here is built with OpenMP (libgomp). libgomp's default wait policy spins
between the many barriers of each token's graph; when other processes compete for the cores, a
spinning thread waits for a descheduled one and generation slows down 10-30x (measured: a 24-token
completion took 22-46 s instead of 0.6-1.5 s at load average 9 on 2 cores). Unless the operator set
it, ``OMP_WAIT_POLICY=PASSIVE`` is put in the environment before llama.cpp (and so libgomp) loads.

llama.cpp writes its logs to stderr from C. Here they go to the Python logger
``safesynth.gateway.llm.llama_cpp`` at DEBUG instead, and the last error lines are kept so that a
refused model file becomes a typed error that says what llama.cpp objected to.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from safesynth.gateway.llm.errors import LlamaCppUnavailable, ModelLoadFailed
from safesynth.gateway.llm.gguf import read_gguf_header

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["cpu_count", "import_llama_cpp", "llama_cpp_version", "load_llama", "recent_llama_errors"]

_LOG = logging.getLogger("safesynth.gateway.llm.llama_cpp")
_GGML_LOG_ERROR = 4  # ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
_setup_lock = threading.Lock()
_callback: Any = None  # keeps the ctypes callback alive for the life of the process
_load_lock = threading.Lock()
OMP_POLICY_ENV = "OMP_WAIT_POLICY"


def cpu_count() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def import_llama_cpp() -> ModuleType:
    """Import ``llama_cpp`` once, routing llama.cpp's C logs to Python logging (DEBUG)."""
    global _callback
    os.environ.setdefault(OMP_POLICY_ENV, "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - the gateway extra always has it
        raise LlamaCppUnavailable(
            f"llama-cpp-python is not installed ({exc}); "
            "install the gateway extra: pip install 'safesynth[gateway]'"
        ) from exc
    with _setup_lock:
        if _callback is None:

            @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
            def _route(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
                message = text.decode("utf-8", "replace").rstrip()
                if level == _GGML_LOG_ERROR and message:
                    _recent_errors.append(message)
                if message:
                    _LOG.debug("%s", message)

            _callback = _route
            llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    return llama_cpp


def llama_cpp_version() -> str:
    """Version of the installed llama-cpp-python."""
    return str(import_llama_cpp().__version__)


def recent_llama_errors() -> list[str]:
    """The last error lines llama.cpp logged (for error messages)."""
    return list(_recent_errors)


def load_llama(path: Path, **params: Any) -> Llama:
    """Validate the GGUF header, then load it with llama.cpp (``verbose=False``).

    Raises ModelNotFound / ModelFileInvalid before llama.cpp sees a bad file, and ModelLoadFailed if
    llama.cpp still refuses it.
    """
    read_gguf_header(path)
    llama_cpp = import_llama_cpp()
    with _load_lock:
        _recent_errors.clear()
        try:
            llama: Llama = llama_cpp.Llama(model_path=str(path), verbose=False, **params)
        except (ValueError, RuntimeError, OSError) as exc:
            detail = "; ".join(recent_llama_errors()) or str(exc)
            raise ModelLoadFailed(
                str(path),
                f"llama.cpp could not load it ({detail})",
                "use a GGUF model of an architecture this llama-cpp-python supports, or unset "
                "SAFESYNTH_MODEL_PATH to use the bundled model",
            ) from exc
    return llama
