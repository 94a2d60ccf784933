"""KV cache bytes per token of a GGUF model, from the few metadata keys that give its geometry.

Only the metadata is read, and reading stops as soon as the geometry keys are found (they come
before the tokenizer's 262k-entry arrays in llama.cpp's files); long arrays are skipped unread.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
KV_CACHE_ELEMENT_BYTES = 2  # llama.cpp's default KV cache type is f16


def _read(f: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise struct.error("the file ends inside its metadata")
    return struct.unpack(fmt, data)[0]


def _skip_or_read(f: BinaryIO, value_type: int):
    """The value of one metadata entry; arrays are skipped (None)."""
    if value_type == STRING:
        return f.read(_read(f, "<Q")).decode("utf-8", "replace")
    if value_type in SCALARS:
        return _read(f, SCALARS[value_type])
    if value_type != ARRAY:
        raise struct.error(f"unknown GGUF value type {value_type}")
    item_type, count = _read(f, "<I"), _read(f, "<Q")
    if item_type in SCALARS:
        f.seek(count * struct.calcsize(SCALARS[item_type]), 1)
    else:
        for _ in range(count):
            _skip_or_read(f, item_type)
    return None


def gguf_geometry(path: str | Path) -> dict | None:
    """Layers, KV heads, key/value head sizes of a GGUF model; None when the file cannot be read."""
    wanted = ("block_count", "attention.head_count", "attention.head_count_kv", "attention.key_length",
              "attention.value_length", "embedding_length")
    found: dict = {}
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF" or _read(f, "<I") < 2:
                return None
            _read(f, "<Q")  # tensor count
            arch = None
            for _ in range(_read(f, "<Q")):
                key = f.read(_read(f, "<Q")).decode("utf-8", "replace")
                value = _skip_or_read(f, _read(f, "<I"))
                if key == "general.architecture":
                    arch = value
                elif arch and key.startswith(arch + ".") and key[len(arch) + 1:] in wanted:
                    found[key[len(arch) + 1:]] = value
                if len(found) == len(wanted):
                    break
    except (OSError, struct.error):
        return None
    return found if "block_count" in found else None


def kv_bytes_per_token_gguf(path: str | Path) -> int | None:
    """2 (K and V) x layers x KV heads x head size x 2 bytes (f16 cache); None when the geometry is unknown."""
    g = gguf_geometry(path)
    if g is None or not g.get("attention.head_count"):
        return None
    heads = int(g["attention.head_count"])
    kv_heads = int(g.get("attention.head_count_kv") or heads)
    head_dim = int(g.get("embedding_length", 0)) // heads
    key_len = int(g.get("attention.key_length") or head_dim)
    value_len = int(g.get("attention.value_length") or head_dim)
    return int(g["block_count"]) * kv_heads * (key_len + value_len) * KV_CACHE_ELEMENT_BYTES
