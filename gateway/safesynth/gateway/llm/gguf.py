"""A small, defensive reader of GGUF headers (metadata and tensor table, never the tensor data).

llama.cpp may abort the whole process on some malformed files, so the runner validates a file here
first: the magic, the version, every length against the bytes that remain, and that the file is long
enough to hold the tensor data its header declares. Only then is the file handed to llama.cpp.

The format (little-endian, versions 2 and 3): ``"GGUF"``, ``uint32 version``, ``uint64 tensor_count``,
``uint64 kv_count``, the metadata key/value pairs, the tensor infos (name, dims, type, offset), padding
to ``general.alignment`` (default 32), then the tensor data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from safesynth.gateway.llm.errors import ModelFileInvalid, ModelNotFound

__all__ = [
    "GGML_TYPES",
    "GGUFArray",
    "GGUFHeader",
    "MetadataValue",
    "TensorInfo",
    "read_gguf_header",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_ARRAY_DEPTH = 2

#: ggml tensor type id -> (name, elements per block, bytes per block), from ggml's type traits.
GGML_TYPES: Mapping[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# GGUF metadata value types: id -> struct format (fixed-size scalars).
_SCALARS: Mapping[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING = 8
_ARRAY = 9


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array, summarised: its element type and length (the values are not kept)."""

    element_type: int
    length: int


MetadataValue = int | float | bool | str | GGUFArray


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def n_elements(self) -> int:
        """Number of elements (product of the dimensions)."""
        return math.prod(self.shape)

    @property
    def type_name(self) -> str:
        """ggml type name, or ``"type<N>"`` for a type this reader does not know."""
        known = GGML_TYPES.get(self.type_id)
        return known[0] if known else f"type{self.type_id}"

    @property
    def n_bytes(self) -> int | None:
        """Size of the tensor data in bytes, or None for an unknown type."""
        known = GGML_TYPES.get(self.type_id)
        if known is None:
            return None
        _, block, size = known
        return -(-self.n_elements // block) * size


@dataclass(frozen=True)
class GGUFHeader:
    """What the header of a GGUF file declares."""

    version: int
    tensor_count: int
    kv_count: int
    metadata: Mapping[str, MetadataValue]
    tensors: tuple[TensorInfo, ...] = field(repr=False)
    alignment: int
    data_offset: int
    data_end: int

    @property
    def architecture(self) -> str | None:
        """``general.architecture`` (e.g. ``"llama"``)."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        """``general.name``."""
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    def arch_int(self, key: str) -> int | None:
        """An integer ``<architecture>.<key>`` fact, e.g. ``arch_int("context_length")``."""
        value = self.metadata.get(f"{self.architecture}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def n_parameters(self) -> int:
        """Total number of tensor elements (the model's parameter count)."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def dominant_type(self) -> str | None:
        """The ggml type holding the most parameters (the effective quantization)."""
        totals: dict[str, int] = {}
        for tensor in self.tensors:
            totals[tensor.type_name] = totals.get(tensor.type_name, 0) + tensor.n_elements
        return max(totals, key=lambda k: totals[k]) if totals else None


class _Reader:
    """Bounded little-endian reads that raise ModelFileInvalid instead of reading past the end."""

    def __init__(self, stream: BinaryIO, size: int, path: str) -> None:
        self._stream = stream
        self.size = size
        self.pos = 0
        self._path = path

    def invalid(self, problem: str) -> ModelFileInvalid:
        return ModelFileInvalid(self._path, problem)

    def bytes(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.size - self.pos:
            raise self.invalid(
                f"truncated or corrupt GGUF header: {what} needs {n} bytes at offset {self.pos} "
                f"but the file has {self.size} bytes"
            )
        data = self._stream.read(n)
        if len(data) != n:
            raise self.invalid(f"short read of {what} at offset {self.pos}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or n > self.size - self.pos:
            raise self.invalid(
                f"truncated or corrupt GGUF header: {what} needs {n} bytes at offset {self.pos} "
                f"but the file has {self.size} bytes"
            )
        self._stream.seek(n, 1)
        self.pos += n

    def scalar(self, fmt: str, what: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.bytes(struct.calcsize(fmt), what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", what))

    def string(self, what: str) -> str:
        length = self.u64(f"length of {what}")
        raw = self.bytes(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.invalid(f"{what} is not valid UTF-8") from exc

    def skip_string(self, what: str) -> None:
        self.skip(self.u64(f"length of {what}"), what)

    def value(self, type_id: int, what: str, depth: int = 0) -> MetadataValue:
        if type_id in _SCALARS:
            return self.scalar(_SCALARS[type_id], what)
        if type_id == _STRING:
            return self.string(what)
        if type_id == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise self.invalid(f"{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
            element_type = self.u32(f"element type of {what}")
            length = self.u64(f"length of {what}")
            if element_type in _SCALARS:
                self.skip(length * struct.calcsize(_SCALARS[element_type]), what)
            elif element_type == _STRING:
                if length * 8 > self.size - self.pos:
                    raise self.invalid(f"{what}: array of {length} strings cannot fit in the file")
                for _ in range(length):
                    self.skip_string(f"element of {what}")
            elif element_type == _ARRAY:
                for _ in range(length):
                    self.value(_ARRAY, f"element of {what}", depth + 1)
            else:
                raise self.invalid(f"{what}: unknown array element type {element_type}")
            return GGUFArray(element_type, length)
        raise self.invalid(f"{what}: unknown metadata value type {type_id}")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Read and validate the header of the GGUF file at ``path``.

    Raises ModelNotFound if the file is missing or unreadable, ModelFileInvalid if it is not GGUF,
    is truncated, or is too short for the tensor data its header declares.
    """
    shown = str(path)
    try:
        if not path.is_file():
            raise ModelNotFound(shown, "no such file" if not path.exists() else "not a regular file")
        size = path.stat().st_size
        with path.open("rb") as stream:
            return _parse(_Reader(stream, size, shown))
    except PermissionError as exc:
        raise ModelNotFound(shown, f"cannot be read ({exc.strerror})") from exc
    except OSError as exc:
        raise ModelFileInvalid(shown, f"cannot be read ({exc})") from exc


def _parse(reader: _Reader) -> GGUFHeader:
    if reader.size == 0:
        raise reader.invalid("the file is empty, not a GGUF model")
    magic = reader.bytes(min(4, reader.size), "magic")
    if magic != GGUF_MAGIC:
        raise reader.invalid(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    version = reader.u32("version")
    if version not in SUPPORTED_VERSIONS:
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise reader.invalid(f"unsupported GGUF version {version}{hint}; supported: {SUPPORTED_VERSIONS}")
    tensor_count = reader.u64("tensor count")
    kv_count = reader.u64("metadata count")
    # Each key/value pair takes at least 12 bytes, each tensor info at least 24: bound the loops.
    if kv_count * 12 > reader.size or tensor_count * 24 > reader.size:
        raise reader.invalid(f"header declares {kv_count} metadata pairs and {tensor_count} tensors: corrupt")

    metadata: dict[str, MetadataValue] = {}
    for index in range(kv_count):
        key = reader.string(f"metadata key #{index}")
        type_id = reader.u32(f"value type of {key!r}")
        metadata[key] = reader.value(type_id, f"metadata {key!r}")

    tensors: list[TensorInfo] = []
    for index in range(tensor_count):
        name = reader.string(f"name of tensor #{index}")
        n_dims = reader.u32(f"dimension count of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise reader.invalid(f"tensor {name!r} has {n_dims} dimensions (1..{MAX_DIMS} allowed)")
        shape = tuple(reader.u64(f"dimension of tensor {name!r}") for _ in range(n_dims))
        type_id = reader.u32(f"type of tensor {name!r}")
        offset = reader.u64(f"offset of tensor {name!r}")
        tensors.append(TensorInfo(name, shape, type_id, offset))

    alignment_value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment_value, int)
        or alignment_value <= 0
        or alignment_value & (alignment_value - 1)
    ):
        raise reader.invalid(f"general.alignment {alignment_value!r} is not a power of two")
    alignment = alignment_value
    data_offset = -(-reader.pos // alignment) * alignment
    data_end = data_offset
    for tensor in tensors:
        if tensor.offset % alignment:
            raise reader.invalid(
                f"tensor {tensor.name!r} offset {tensor.offset} is not aligned to {alignment}"
            )
        end = data_offset + tensor.offset + (tensor.n_bytes or 1)
        data_end = max(data_end, end)
    if data_end > reader.size:
        raise reader.invalid(
            f"truncated: the header declares tensor data up to byte {data_end} but the file has "
            f"{reader.size} bytes (an interrupted download or copy?)"
        )
    return GGUFHeader(
        version=version,
        tensor_count=tensor_count,
        kv_count=kv_count,
        metadata=metadata,
        tensors=tuple(tensors),
        alignment=alignment,
        data_offset=data_offset,
        data_end=data_end,
    )
