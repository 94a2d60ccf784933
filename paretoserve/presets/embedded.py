"""The embedded engine: `paretoserve engine` (llama.cpp through llama-cpp-python) run by this same Python."""

from __future__ import annotations

from paretoserve.engine.config import KV_TOKENS, MAX_BATCH
from paretoserve.engine.repack import REPACK_MODES
from paretoserve.engine_process import embedded_engine_cmd
from paretoserve.presets.knobs import EngineKnobs, EnginePreset, gguf_file


def embedded_argv(k: EngineKnobs) -> list[str]:
    args = ["--model", k.model, "--max-batch", str(k.max_batch), "--threads", str(k.threads)]
    if k.kv_tokens is not None:
        args += ["--kv-tokens", str(k.kv_tokens)]
    if k.ctx_per_seq is not None:
        args += ["--ctx-per-seq", str(k.ctx_per_seq)]
    if k.repack != "auto":
        args += ["--repack", k.repack]
    return embedded_engine_cmd(k.port, "127.0.0.1", *args)


EMBEDDED = EnginePreset(
    name="embedded", argv=embedded_argv, max_batch=MAX_BATCH, kv_tokens=KV_TOKENS, repack_modes=REPACK_MODES,
    takes_ctx_per_seq=True, resumes_streams=True, prepare=gguf_file, api_key_env="PARETOSERVE_API_KEY")
