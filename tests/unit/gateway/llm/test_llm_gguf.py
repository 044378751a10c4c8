"""The GGUF header reader on files built here byte by byte (no model needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safesynth.gateway.llm.errors import ModelError, ModelFileInvalid, ModelNotFound
from safesynth.gateway.llm.gguf import GGML_TYPES, GGUFArray, read_gguf_header


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def build_gguf(
    *,
    version: int = 3,
    tensors: list[tuple[str, tuple[int, ...], int]] | None = None,
    alignment: int = 32,
    extra_kv: bytes = b"",
    extra_kv_count: int = 0,
) -> bytes:
    """A minimal but complete GGUF file: metadata, tensor infos, padding and zeroed tensor data."""
    tensors = tensors if tensors is not None else [("w", (64, 2), 0), ("q", (32, 4), 3)]
    kvs = [
        _str("general.architecture") + struct.pack("<I", 8) + _str("llama"),
        _str("general.name") + struct.pack("<I", 8) + _str("tiny"),
        _str("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", 256),
        _str("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", alignment),
        _str("tokenizer.ggml.tokens")
        + struct.pack("<I", 9)
        + struct.pack("<I", 8)
        + struct.pack("<Q", 3)
        + _str("a")
        + _str("b")
        + _str("c"),
        _str("llama.rope.scale") + struct.pack("<I", 6) + struct.pack("<f", 1.5),
    ]
    body = b"".join(kvs) + extra_kv
    infos = b""
    offset = 0
    sizes = []
    for name, shape, type_id in tensors:
        _, block, size = GGML_TYPES.get(type_id, ("?", 1, 1))
        n_bytes = -(-_prod(shape) // block) * size
        infos += _str(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<I", type_id) + struct.pack("<Q", offset)
        sizes.append(n_bytes)
        offset += -(-n_bytes // alignment) * alignment
    head = b"GGUF" + struct.pack("<I", version) + struct.pack("<Q", len(tensors))
    head += struct.pack("<Q", len(kvs) + extra_kv_count) + body + infos
    padding = (-len(head)) % alignment
    return head + b"\0" * padding + b"\0" * offset


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_reads_header_facts(tmp_path: Path) -> None:
    header = read_gguf_header(_write(tmp_path, build_gguf()))
    assert header.version == 3
    assert header.tensor_count == 2
    assert header.kv_count == 6
    assert header.architecture == "llama"
    assert header.name == "tiny"
    assert header.arch_int("context_length") == 256
    assert header.metadata["tokenizer.ggml.tokens"] == GGUFArray(8, 3)
    assert header.metadata["llama.rope.scale"] == pytest.approx(1.5)
    assert header.n_parameters == 64 * 2 + 32 * 4
    assert header.dominant_type in {"F32", "Q4_1"}
    assert [t.type_name for t in header.tensors] == ["F32", "Q4_1"]
    assert header.tensors[1].n_bytes == 4 * 20  # four Q4_1 blocks of 20 bytes
    assert header.data_offset % 32 == 0


def test_valid_end_constant(tmp_path: Path) -> None:
    assert read_gguf_header(_write(tmp_path, _VALID)).data_end == _VALID_END


def test_file_exactly_long_enough_is_valid_and_one_byte_less_is_not(tmp_path: Path) -> None:
    data = build_gguf(tensors=[("w", (10,), 0)])  # 40 bytes of data, padded to 64 by alignment
    header = read_gguf_header(_write(tmp_path, data))
    exact = data[: header.data_end]
    assert read_gguf_header(_write(tmp_path, exact, "exact.gguf")).data_end == len(exact)
    with pytest.raises(ModelFileInvalid, match="truncated"):
        read_gguf_header(_write(tmp_path, exact[:-1], "short.gguf"))


def test_missing_file_is_model_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFound) as info:
        read_gguf_header(missing)
    assert info.value.code == "model_not_found"
    assert str(missing) in str(info.value)
    assert "SAFESYNTH_MODEL_PATH" in str(info.value)


def test_directory_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="not a regular file"):
        read_gguf_header(tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GG", "not a GGUF file"),
        (b"hello world, this is text\n" * 10, "not a GGUF file"),
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 64, "unsupported GGUF version 1"),
        (b"GGUF" + struct.pack("<I", 3 << 24) + b"\0" * 64, "big-endian"),
        (b"GGUF" + struct.pack("<I", 3), "truncated"),
        (b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 2**40, 1), "corrupt"),
    ],
)
def test_invalid_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ModelFileInvalid, match=message) as info:
        read_gguf_header(path)
    assert info.value.code == "model_file_invalid"
    assert info.value.path == str(path)


def test_unknown_value_type_and_bad_alignment(tmp_path: Path) -> None:
    bad_type = _str("x") + struct.pack("<I", 99)
    with pytest.raises(ModelFileInvalid, match="unknown metadata value type 99"):
        read_gguf_header(_write(tmp_path, build_gguf(extra_kv=bad_type, extra_kv_count=1)))
    with pytest.raises(ModelFileInvalid, match="power of two"):
        read_gguf_header(_write(tmp_path, build_gguf(alignment=24), "align.gguf"))


def test_too_many_dimensions(tmp_path: Path) -> None:
    data = build_gguf(tensors=[("w", (1, 1, 1, 1, 1), 0)])
    with pytest.raises(ModelFileInvalid, match="5 dimensions"):
        read_gguf_header(_write(tmp_path, data))


def test_unknown_tensor_type_checks_offset_only(tmp_path: Path) -> None:
    header = read_gguf_header(_write(tmp_path, build_gguf(tensors=[("w", (8,), 0), ("x", (8,), 250)])))
    assert header.tensors[1].type_name == "type250"
    assert header.tensors[1].n_bytes is None


_VALID = build_gguf()
_VALID_END = 976  # checked below: bytes the header's tensor data needs (the rest is alignment padding)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=_VALID_END - 1))
def test_every_truncation_is_a_typed_error(tmp_path: Path, cut: int) -> None:
    """Any cut before the end of the declared tensor data is refused (the trailing padding is optional)."""
    with pytest.raises(ModelFileInvalid):
        read_gguf_header(_write(tmp_path, _VALID[:cut]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0, max_value=len(_VALID) - 1), value=st.integers(0, 255))
def test_corruption_never_escapes_as_another_exception(tmp_path: Path, position: int, value: int) -> None:
    data = bytearray(_VALID)
    data[position] = value
    try:
        header = read_gguf_header(_write(tmp_path, bytes(data)))
    except ModelError:
        return
    assert header.data_end <= len(data)
