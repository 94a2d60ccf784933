"""Model geometry: the bundled GGUF against its file and the engine's KV allocation; Hugging Face configs."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from paretoserve.geometry import GeometryError, geometry_from_hf_config, load_geometry
from paretoserve.gguf_header import read_header
from paretoserve.model import resolve_model
from paretoserve.sweep.import_vllm import kv_bytes_per_token

CONFIGS = Path(__file__).parents[1] / "data" / "model-configs"


@pytest.fixture(scope="module")
def bundled():
    return load_geometry("default")


def test_bundled_geometry_is_gemma_3_270m(bundled):
    g = bundled
    assert (g.layers, g.hidden, g.heads, g.kv_heads, g.head_dim, g.ffn, g.vocab) == (18, 640, 4, 1, 256, 2048, 262144)
    assert g.sliding_window == 512 and g.local_layers == 15  # llama.cpp: every 6th layer of Gemma 3 is global
    assert g.tied_embeddings and g.ffn_matrices == 3


def test_bundled_weight_bytes_fill_the_file_data_section(bundled):
    path = resolve_model("default").path
    header = read_header(path)
    data_bytes = path.stat().st_size - header.data_offset
    # Tensors are aligned to 32 bytes, so the data section is the weights plus at most 31 bytes per tensor.
    assert 0 <= data_bytes - bundled.weight_bytes < 32 * len(header.tensors)
    # Token embeddings: 262,144 x 640 in Q8_0 (34 bytes per 32 weights), read again as the tied LM head.
    assert bundled.params("lm_head") * bundled.bytes_per_param["lm_head"] == 262144 * 640 // 32 * 34


def test_bundled_kv_bytes_per_token_is_18_kib(bundled):
    # 2 (K, V) x 18 layers x 1 KV head x 256 x 2 bytes (f16): every layer keeps the full context in llama.cpp.
    assert bundled.kv_bytes_per_token(2) == 18 * 1024


@pytest.mark.integration
def test_kv_bytes_per_token_match_the_engine_allocation(bundled):
    """Serialise one sequence's KV state from the real engine at 8 and 16 tokens: the growth per token is
    K and V of every layer (18,432 bytes) plus a few bytes of llama.cpp cell metadata (24 here: position and
    sequence count per cell, Gemma 3's sliding and global layers being two caches)."""
    import llama_cpp

    from paretoserve.engine.config import EngineConfig
    from paretoserve.engine.llama_runner import LlamaRunner

    assert llama_cpp.llama_context_default_params().swa_full  # the engine allocates the full context in all layers
    spec = resolve_model("default")
    runner = LlamaRunner(EngineConfig(model_path=spec.path, model_name=spec.name, max_batch=1, kv_tokens=256,
                                      threads=1))
    try:
        seq = types.SimpleNamespace(slot=0)
        sizes = []
        for start in (0, 8):
            runner.decode([types.SimpleNamespace(seq=seq, tokens=[2] + [100] * 7 if start == 0 else [100] * 8,
                                                 pos=start, wants_logits=True)])
            sizes.append(llama_cpp.llama_state_seq_get_size(runner.ctx, 0))
        assert runner.kv_cells == 256
    finally:
        runner.close()
    per_token = (sizes[1] - sizes[0]) / 8
    assert bundled.kv_bytes_per_token(2) <= per_token <= bundled.kv_bytes_per_token(2) + 32


def test_opt_configs_give_the_published_sizes():
    for name, params in (("opt-1.3b", 1.3e9), ("opt-2.7b", 2.7e9)):
        config = json.loads((CONFIGS / f"{name}.json").read_text())
        g = geometry_from_hf_config(config, name)
        assert g.ffn_matrices == 2 and g.bytes_per_param["mlp"] == 2.0  # fc1, fc2 in fp16
        assert abs(g.weight_bytes / 2 / params - 1) < 0.03  # the published parameter counts, rounded
        assert g.kv_bytes_per_token(2) == kv_bytes_per_token(config)  # same figure as `import vllm` uses


def test_a_config_missing_a_field_names_it(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}))
    with pytest.raises(GeometryError, match="intermediate_size or ffn_dim"):
        load_geometry(str(path))


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"nope" * 10)
    with pytest.raises(GeometryError, match="--model"):
        load_geometry(str(path))
