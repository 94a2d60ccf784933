"""Ready-to-run launch lines for the advice: embedded engine, `paretoserve serve`, llama-server and vLLM."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from pydantic import BaseModel

from paretoserve.advise.memory import MemoryAdvice
from paretoserve.advise.replicas import ReplicaPlan
from paretoserve.advise.table import SweepTable
from paretoserve.engine.config import DEFAULT_CTX_PER_SEQ
from paretoserve.engine.repack import cpu_flags, has_amx
from paretoserve.hf_export import cached_model
from paretoserve.limits import UserError
from paretoserve.model import GGUF_ENGINES, names_gguf
from paretoserve.presets import ENGINE_NAMES
from paretoserve.presets.vllm import CPU_BLOCK_TOKENS, GPU_BLOCK_TOKENS
from paretoserve.presets.vllm import kv_tokens_for as kv_tokens_for_vllm


class Commands(BaseModel):
    """One shell line per target; `kv_tokens` is the KV budget per replica they set, in tokens."""

    kv_tokens: int  # B_opt x ctx_per_seq: what the engine and llama-server lines set
    ctx_per_seq: int  # tokens of context per sequence: the sweep's, else the engine's default
    engine: str  # `paretoserve engine` at B_opt
    serve: str  # `paretoserve serve --plan` for the replica plan
    llama_server: str  # llama-server with B_opt slots (-np)
    vllm: str  # `vllm serve` at B_opt; --gpu-memory-utilization 0.90, or an import's weights + KV need
    vllm_kv_bytes: str | None  # the same with --kv-cache-memory-bytes, where the KV need in bytes is known


def _exported(model: str) -> Path | None:
    try:
        return cached_model(model)
    except UserError:  # the GGUF file is no longer on this machine
        return None


def _line(*argv: object) -> str:
    return shlex.join(str(a) for a in argv)


def kv_tokens_for(batch: int, ctx_per_seq: int) -> int:
    """Tokens of KV cache one engine needs for `batch` sequences: each may fill its whole context."""
    return batch * ctx_per_seq


def commands(table: SweepTable, b_opt: int, plan: ReplicaPlan, memory: MemoryAdvice,
             advice_path: str = "advice.json") -> Commands:
    """Launch lines for B_opt on one engine and for the replica plan behind `paretoserve serve`."""
    gguf = table.engine in GGUF_ENGINES
    model = table.model if table.model and gguf else "MODEL"
    hf_model = table.model if table.model and not gguf else "MODEL"
    ctx = table.ctx_per_seq or DEFAULT_CTX_PER_SEQ
    threads = plan.threads_per_replica
    engine = _line("paretoserve", "engine", "--model", model, "--max-batch", b_opt, "--kv-tokens",
                   kv_tokens_for(b_opt, ctx), "--ctx-per-seq", ctx, *(["--threads", threads] if threads else []))
    # The plan served by the engine the sweep measured (an imported vLLM run: the vllm preset).
    engine_flag = ["--engine", table.engine] if table.engine in ENGINE_NAMES and table.engine != "embedded" else []
    serve = _line("paretoserve", "serve", "--plan", advice_path, *engine_flag, "--model", model if gguf else hf_model,
                  "--replicas", plan.replicas,
                  "--max-batch", plan.max_batch, "--kv-tokens", kv_tokens_for(plan.max_batch, ctx),
                  *(["--threads-per-replica", threads] if threads else []), "--port", 8000)
    # llama-server built on a CPU with AMX crashes in its AMX buffer (llama.cpp issue 20824): no repacking there.
    amx = has_amx(table.cpu_features if table.cpu_features is not None else cpu_flags())
    llama = _line("llama-server", "-m", model if model != "default" else "MODEL.gguf", "-np", b_opt, "-c",
                  kv_tokens_for(b_opt, ctx), *(["-t", threads] if threads else []), *(["--no-repack"] if amx else []),
                  "--port", 8080)
    # a vLLM sweep of the bundled model (or a GGUF) ran its HF export: the directory, where it is on this machine
    vllm_model = hf_model
    if table.engine == "vllm" and table.model and names_gguf(table.model):
        vllm_model = str(_exported(table.model) or "MODEL")
    utilisation = 0.9
    if memory.device_memory_bytes and memory.weights_bytes is not None and memory.kv_need_bytes is not None \
            and table.imported_from:
        # weights (with activations) + the KV B_opt needs, rounded up to the next percent of the device
        utilisation = math.ceil(100 * (memory.weights_bytes + memory.kv_need_bytes) / memory.device_memory_bytes) / 100
    vllm = _line("vllm", "serve", vllm_model, "--max-num-seqs", b_opt, "--gpu-memory-utilization", f"{utilisation:.2f}")
    kv_bytes = None
    if table.engine == "vllm" and not table.on_gpu and memory.kv_bytes_per_token:
        # measured with vLLM on a CPU: B_opt sequences in its 128-token blocks, as the preset sized them
        kv_bytes = _line("vllm", "serve", vllm_model, "--max-num-seqs", b_opt, "--kv-cache-memory-bytes",
                         kv_tokens_for_vllm(b_opt, ctx, CPU_BLOCK_TOKENS) * memory.kv_bytes_per_token)
    elif memory.kv_need_bytes is not None and memory.kv_bytes_per_token:
        blocks = math.ceil(memory.kv_need_bytes / memory.kv_bytes_per_token / GPU_BLOCK_TOKENS)
        kv_bytes = _line("vllm", "serve", vllm_model, "--max-num-seqs", b_opt, "--kv-cache-memory-bytes",
                         blocks * GPU_BLOCK_TOKENS * memory.kv_bytes_per_token)
    return Commands(kv_tokens=kv_tokens_for(b_opt, ctx), ctx_per_seq=ctx, engine=engine, serve=serve,
                    llama_server=llama, vllm=vllm, vllm_kv_bytes=kv_bytes)
