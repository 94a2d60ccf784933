"""Model geometry: layer shapes, weight bytes and KV cache bytes per token, from GGUF metadata or a Hugging Face
config.json. The one place that knows how big a token's KV cache entry is:

    KV bytes per token = layers x KV heads x (key length + value length) x bytes per element

(llama.cpp allocates every layer for the full context; vLLM's `auto` cache dtype is the model's dtype).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from paretoserve.gguf_header import GgufError, read_header
from paretoserve.limits import UserError
from paretoserve.model import ModelError, resolve_model

COMPONENT_PARAMS = ("attention", "mlp", "lm_head", "embeddings")
# Bytes per element of the dtype names GGUF, Hugging Face (torch_dtype), vLLM (cache_dtype) and the flags use.
DTYPE_BYTES = {"float32": 4.0, "fp32": 4.0, "float": 4.0, "float16": 2.0, "fp16": 2.0, "f16": 2.0, "half": 2.0,
               "bfloat16": 2.0, "bf16": 2.0, "fp8": 1.0, "float8": 1.0, "int8": 1.0, "q8_0": 34 / 32, "int4": 0.5,
               "q4_k_m": 4.5 / 8}
KV_CACHE_ELEMENT_BYTES = 2.0  # llama.cpp's default KV cache type is f16; a config.json without torch_dtype: fp16
# llama.cpp hard-codes which layers slide for these architectures (llama-model.cpp, set_swa_pattern):
# with pattern n, every n-th layer attends globally and the others within the window.
GGUF_SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
# Hugging Face model types whose MLP is two matrices (fc1, fc2) rather than gated (gate, up, down).
PLAIN_MLP_MODEL_TYPES = {"opt", "gpt2", "gpt_neox", "gptj", "bloom", "falcon", "phi", "starcoder2", "gpt_bigcode"}
HF_KV_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads")


class GeometryError(UserError):
    """The model file or config cannot give the geometry; the message names what is missing."""


@dataclass(frozen=True)
class KvShape:
    """What one token keeps in the KV cache: a key and a value vector per KV head in every layer."""

    layers: int
    kv_heads: int
    key_dim: int
    value_dim: int

    def layer_bytes_per_token(self, element_bytes: float = KV_CACHE_ELEMENT_BYTES) -> float:
        """One layer's K and V of one token."""
        return self.kv_heads * (self.key_dim + self.value_dim) * element_bytes

    def bytes_per_token(self, element_bytes: float = KV_CACHE_ELEMENT_BYTES) -> int:
        """Every layer's K and V of one token."""
        return int(self.layers * self.kv_heads * (self.key_dim + self.value_dim) * element_bytes)


def kv_shape_from_gguf(meta: dict) -> KvShape | None:
    """The KV shape from GGUF metadata (key and value lengths default to the embedding width / heads); None
    when the metadata lacks the layer or head count."""
    arch = meta.get("general.architecture")
    layers, heads = meta.get(f"{arch}.block_count"), meta.get(f"{arch}.attention.head_count")
    if not layers or not heads:
        return None
    head_dim = int(meta.get(f"{arch}.embedding_length", 0)) // int(heads)
    return KvShape(layers=int(layers), kv_heads=int(meta.get(f"{arch}.attention.head_count_kv") or heads),
                   key_dim=int(meta.get(f"{arch}.attention.key_length") or head_dim),
                   value_dim=int(meta.get(f"{arch}.attention.value_length") or head_dim))


def kv_bytes_per_token_gguf(path: str | Path) -> int | None:
    """KV cache bytes per token of a GGUF file in llama.cpp's default f16 cache; None when the geometry is unknown."""
    try:
        shape = kv_shape_from_gguf(read_header(path).metadata)
    except GgufError:
        return None
    return shape.bytes_per_token() if shape else None


def hf_text_config(config: dict) -> dict:
    """The part of a Hugging Face config.json that describes the decoder (`text_config` of multimodal models)."""
    return config.get("text_config", config) if "num_hidden_layers" not in config else config


def kv_shape_from_hf_config(config: dict) -> KvShape:
    """The KV shape from a Hugging Face config.json (head dim: `head_dim`, else hidden size / heads); the
    GeometryError says which of HF_KV_KEYS is missing."""
    cfg = hf_text_config(config)
    try:
        layers, hidden, heads = (int(cfg[k]) for k in HF_KV_KEYS)
    except (KeyError, TypeError, ValueError) as exc:
        raise GeometryError(f"lacks {exc} (needs {', '.join(HF_KV_KEYS)})") from exc
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    return KvShape(layers=layers, kv_heads=int(cfg.get("num_key_value_heads") or heads), key_dim=head_dim,
                   value_dim=head_dim)


def hf_dtype_bytes(config: dict) -> float:
    """Bytes per element of the config's torch_dtype (fp16 where it names none or one not in DTYPE_BYTES)."""
    dtype = str(hf_text_config(config).get("torch_dtype") or config.get("torch_dtype") or "float16").lower()
    return DTYPE_BYTES.get(dtype, KV_CACHE_ELEMENT_BYTES)


@dataclass(frozen=True)
class ModelGeometry:
    """Shapes of a decoder-only transformer and how many bytes its weights take per parameter.

    `bytes_per_param` holds one figure per component (attention projections, mlp, lm_head,
    embeddings) from the actual tensor types; `weight_bytes` is everything held in memory.
    """

    name: str
    architecture: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    ffn_matrices: int  # 3 for gated MLPs (gate, up, down), 2 for plain ones (fc1, fc2)
    vocab: int
    tied_embeddings: bool
    sliding_window: int | None
    local_layers: int  # layers that attend only within sliding_window
    bytes_per_param: dict
    weight_bytes: int
    source: str
    value_dim: int | None = None  # value length per KV head where it differs from head_dim (GGUF value_length)

    def params(self, component: str) -> int:
        """Matrix parameters a token multiplies with in one component (attention, mlp, lm_head, embeddings)."""
        if component == "attention":
            return self.layers * (2 * self.hidden * self.heads * self.head_dim
                                  + 2 * self.hidden * self.kv_heads * self.head_dim)
        if component == "mlp":
            return self.layers * self.ffn_matrices * self.hidden * self.ffn
        if component in ("lm_head", "embeddings"):
            return self.vocab * self.hidden
        raise KeyError(component)

    def kv_shape(self) -> KvShape:
        return KvShape(self.layers, self.kv_heads, self.head_dim, self.value_dim or self.head_dim)

    def kv_bytes_per_token(self, kv_dtype_bytes: float = KV_CACHE_ELEMENT_BYTES) -> int:
        """KV cache bytes one token takes when every layer keeps it (K and V, all KV heads), as llama.cpp allocates."""
        return self.kv_shape().bytes_per_token(kv_dtype_bytes)

    def with_dtype(self, dtype: str) -> "ModelGeometry":
        """The same model with every weight stored as `dtype` (a what-if: fp16, bf16, fp8, int8, int4...)."""
        per_param = dtype_bytes(dtype)
        total = (self.params("attention") + self.params("mlp") + self.params("embeddings")
                 + (0 if self.tied_embeddings else self.params("lm_head")))
        return replace(self, bytes_per_param={c: per_param for c in COMPONENT_PARAMS},
                       weight_bytes=int(total * per_param))


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of a dtype name; the error lists the names known."""
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise GeometryError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def load_geometry(model: str, cache_dir: str | None = None) -> ModelGeometry:
    """Geometry of `model`: 'default' (the bundled GGUF), a .gguf file or a Hugging Face config.json."""
    path = Path(model).expanduser()
    if model != "default" and path.suffix == ".json":
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GeometryError(f"--model {path}: cannot read it as JSON ({exc})") from exc
        return geometry_from_hf_config(config, str(path))
    try:
        spec = resolve_model(model, cache_dir)
        return geometry_from_gguf(spec.path)
    except (ModelError, GgufError) as exc:
        message = str(exc)
        raise GeometryError(message if message.startswith("--model") else f"--model: {message}") from exc


def geometry_from_gguf(path: str | Path) -> ModelGeometry:
    """Read layers, widths, heads, vocabulary and per-tensor byte counts from a GGUF file."""
    header = read_header(path)
    meta = header.metadata
    arch = meta.get("general.architecture")

    def field(key: str, default=None):
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise GeometryError(f"--model {path}: the GGUF metadata lacks {arch}.{key}")
        return value

    layers, hidden = int(field("block_count")), int(field("embedding_length"))
    heads = int(field("attention.head_count"))
    kv = kv_shape_from_gguf(meta)
    if kv is None:
        raise GeometryError(f"--model {path}: the GGUF metadata gives no layers or heads ({arch}.block_count, "
                            f"{arch}.attention.head_count)")
    ffn = field("feed_forward_length")
    ffn = int(max(ffn) if isinstance(ffn, list) else ffn)
    tensors = {t.name: t for t in header.tensors}
    embedding = tensors.get("token_embd.weight")
    if embedding is None:
        raise GeometryError(f"--model {path}: no token_embd.weight tensor")
    vocab = int(meta.get(f"{arch}.vocab_size") or embedding.n_elements // hidden)
    tied = "output.weight" not in tensors
    groups = {c: [0, 0] for c in COMPONENT_PARAMS}  # bytes, elements
    for t in header.tensors:
        component = _gguf_component(t.name)
        if component:
            groups[component][0] += t.n_bytes
            groups[component][1] += t.n_elements
    if tied:
        groups["lm_head"] = groups["embeddings"]
    gated = any(name.endswith("ffn_gate.weight") for name in tensors)
    window = meta.get(f"{arch}.attention.sliding_window")
    return ModelGeometry(
        name=str(meta.get("general.name") or Path(path).stem), architecture=str(arch), layers=layers,
        hidden=hidden, heads=heads, kv_heads=kv.kv_heads, head_dim=kv.key_dim, value_dim=kv.value_dim, ffn=ffn,
        ffn_matrices=3 if gated else 2,
        vocab=vocab, tied_embeddings=tied, sliding_window=int(window) if window else None,
        local_layers=_gguf_local_layers(meta, str(arch), layers) if window else 0,
        bytes_per_param={c: (b / n if n else 0.0) for c, (b, n) in groups.items()},
        weight_bytes=sum(t.n_bytes for t in header.tensors), source=str(path))


def _gguf_component(name: str) -> str | None:
    if name == "token_embd.weight":
        return "embeddings"
    if name == "output.weight":
        return "lm_head"
    if not name.startswith("blk.") or "norm" in name:
        return None
    if ".attn_" in name:
        return "attention"
    if ".ffn_" in name:
        return "mlp"
    return None


def _gguf_local_layers(meta: dict, arch: str, layers: int) -> int:
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return sum(1 for sliding in pattern if sliding)
    every = GGUF_SWA_PATTERN.get(arch)
    return sum(1 for i in range(layers) if i % every < every - 1) if every else layers


def geometry_from_hf_config(config: dict, source: str = "config.json") -> ModelGeometry:
    """Geometry from a Hugging Face config.json (no hub access); weights in its torch_dtype (default fp16)."""
    cfg = hf_text_config(config)
    try:
        layers, hidden, heads = (int(cfg[k]) for k in HF_KV_KEYS)
        ffn = int(cfg.get("intermediate_size") or cfg.get("ffn_dim") or cfg["n_inner"])
        vocab = int(cfg["vocab_size"])
    except KeyError as exc:
        raise GeometryError(f"--model {source}: the config lacks {exc.args[0]} (needs num_hidden_layers, "
                            "hidden_size, num_attention_heads, intermediate_size or ffn_dim, vocab_size)") from None
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"--model {source}: a geometry field is not a number ({exc})") from None
    model_type = str(cfg.get("model_type") or config.get("model_type") or "")
    kv = kv_shape_from_hf_config(config)
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    local = 0
    if window:
        if isinstance(cfg.get("layer_types"), list):
            local = sum(1 for t in cfg["layer_types"] if t == "sliding_attention")
        elif cfg.get("sliding_window_pattern"):
            local = layers - layers // int(cfg["sliding_window_pattern"])
        else:
            local = layers
    geometry = ModelGeometry(
        name=str(config.get("_name_or_path") or Path(source).stem), architecture=model_type or "unknown",
        layers=layers, hidden=hidden, heads=heads, kv_heads=kv.kv_heads, head_dim=kv.key_dim, ffn=ffn,
        ffn_matrices=2 if model_type in PLAIN_MLP_MODEL_TYPES else 3, vocab=vocab,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
        sliding_window=int(window) if window else None, local_layers=local, bytes_per_param={}, weight_bytes=0,
        source=source)
    dtype = str(cfg.get("torch_dtype") or config.get("torch_dtype") or "float16")
    return geometry.with_dtype(dtype if dtype.lower() in DTYPE_BYTES else "float16")
