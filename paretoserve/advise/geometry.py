"""KV cache bytes per token of a GGUF model, from the metadata keys that give its geometry."""

from __future__ import annotations

from pathlib import Path

from paretoserve.gguf_header import GgufError, read_header

KV_CACHE_ELEMENT_BYTES = 2  # llama.cpp's default KV cache type is f16


def kv_bytes_per_token_gguf(path: str | Path) -> int | None:
    """2 (K and V) x layers x KV heads x head size x 2 bytes (f16 cache); None when the geometry is unknown."""
    try:
        meta = read_header(path).metadata
    except GgufError:
        return None
    arch = meta.get("general.architecture")
    layers, heads = meta.get(f"{arch}.block_count"), meta.get(f"{arch}.attention.head_count")
    if not layers or not heads:
        return None
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv") or heads)
    head_dim = int(meta.get(f"{arch}.embedding_length", 0)) // int(heads)
    key_len = int(meta.get(f"{arch}.attention.key_length") or head_dim)
    value_len = int(meta.get(f"{arch}.attention.value_length") or head_dim)
    return int(layers) * kv_heads * (key_len + value_len) * KV_CACHE_ELEMENT_BYTES
