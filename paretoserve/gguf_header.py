"""Read a GGUF file's metadata and tensor table without touching the tensor data.

gguf.GGUFReader builds Python objects for every tokenizer entry, which takes ~25 s on a
262k-token vocabulary on a 2-core machine; this reader skips arrays it does not need and
takes the tensor type sizes from the gguf package's own table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

GGUF_MAGIC = b"GGUF"
SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                  12: "<d"}
STRING_TYPE, ARRAY_TYPE = 8, 9
DEFAULT_ALIGNMENT = 32  # GGUF's default; general.alignment overrides it
LONGEST_ARRAY_KEPT = 64  # longer arrays (tokenizer vocabularies) are skipped, not decoded


class GgufError(ValueError):
    """The file is not a GGUF file this reader understands."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: its name, element count, ggml type name, size in bytes and shape (ggml order)."""

    name: str
    n_elements: int
    type_name: str
    n_bytes: int
    dims: tuple[int, ...] = ()  # ne[0] first: the row length, then the row count of a 2-D weight


@dataclass(frozen=True)
class GgufHeader:
    """Metadata key/values (short arrays as lists, long ones as None), the tensor table, and where the data starts."""

    metadata: dict
    tensors: list[TensorInfo]
    data_offset: int  # bytes from the start of the file to the first tensor's data


def read_header(path: str | Path) -> GgufHeader:
    """Parse the metadata and tensor infos of the GGUF file at `path`."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise GgufError(f"{path} is not a GGUF file (its first bytes are not b'GGUF')")
            version = _unpack(f, "<I")
            if version < 2:
                raise GgufError(f"{path}: GGUF version {version} is too old (2 or later is read)")
            n_tensors, n_kv = _unpack(f, "<Q"), _unpack(f, "<Q")
            metadata = {}
            for _ in range(n_kv):
                key = _string(f)
                metadata[key] = _value(f, _unpack(f, "<I"))
            tensors = [_tensor_info(f) for _ in range(n_tensors)]
            alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
            data_offset = -(-f.tell() // alignment) * alignment
    except (OSError, struct.error, UnicodeDecodeError) as exc:
        raise GgufError(f"cannot read the GGUF header of {path}: {exc}") from exc
    return GgufHeader(metadata=metadata, tensors=tensors, data_offset=data_offset)


def _unpack(f: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise struct.error("file ends inside the header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    return f.read(_unpack(f, "<Q")).decode("utf-8")


def _value(f: BinaryIO, value_type: int):
    if value_type == STRING_TYPE:
        return _string(f)
    if value_type in SCALAR_FORMATS:
        return _unpack(f, SCALAR_FORMATS[value_type])
    if value_type != ARRAY_TYPE:
        raise GgufError(f"unknown GGUF value type {value_type}")
    item_type, count = _unpack(f, "<I"), _unpack(f, "<Q")
    if count > LONGEST_ARRAY_KEPT and item_type in SCALAR_FORMATS:
        f.seek(count * struct.calcsize(SCALAR_FORMATS[item_type]), 1)
        return None
    if count > LONGEST_ARRAY_KEPT and item_type == STRING_TYPE:
        for _ in range(count):
            f.seek(_unpack(f, "<Q"), 1)
        return None
    items = [_value(f, item_type) for _ in range(count)]
    return items if count <= LONGEST_ARRAY_KEPT else None


def _tensor_info(f: BinaryIO) -> TensorInfo:
    import gguf  # for its quantisation tables only: a large module, imported once a file is read

    name = _string(f)
    dims = [_unpack(f, "<Q") for _ in range(_unpack(f, "<I"))]
    type_id = _unpack(f, "<I")
    _unpack(f, "<Q")  # offset of the data: not needed
    try:
        quant = gguf.GGMLQuantizationType(type_id)
        block_elements, block_bytes = gguf.GGML_QUANT_SIZES[quant]
    except (ValueError, KeyError) as exc:
        raise GgufError(f"tensor {name} has a ggml type ({type_id}) this gguf package does not know") from exc
    n_elements = 1
    for dim in dims:
        n_elements *= dim
    return TensorInfo(name=name, n_elements=n_elements, type_name=quant.name,
                      n_bytes=n_elements // block_elements * block_bytes, dims=tuple(dims))
