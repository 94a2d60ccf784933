"""SGLang's server (`python -m sglang.launch_server`), which needs an accelerator: checked here with a fake.

Knobs: batch cap -> `--max-running-requests`, KV budget -> `--max-total-tokens`, context ->
`--context-length`, the replica's memory share -> `--mem-fraction-static`; `--enable-metrics` always.
"""

from __future__ import annotations

import importlib.util
import sys

from paretoserve.limits import IntRange
from paretoserve.model import PACKAGED_MODELS
from paretoserve.presets.knobs import EngineKnobs, EnginePreset, PresetError

SEQS = IntRange(1, 65536)
KV_TOKENS = IntRange(16, 1 << 30)


def check_sglang() -> None:
    if importlib.util.find_spec("sglang") is None:
        raise PresetError("--engine sglang: SGLang is not installed in this Python (pip install 'sglang[all]', "
                          "on a machine with a GPU)")


def sglang_argv(k: EngineKnobs) -> list[str]:
    if k.model in PACKAGED_MODELS:
        raise PresetError("--engine sglang: SGLang serves HF models; give --model an HF model directory")
    argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", k.model, "--host", "127.0.0.1",
            "--port", str(k.port), "--max-running-requests", str(k.max_batch),
            "--mem-fraction-static", f"{k.mem_fraction:.3f}", "--enable-metrics"]
    if k.kv_tokens is not None:
        argv += ["--max-total-tokens", str(k.kv_tokens)]
    if k.ctx_per_seq is not None:
        argv += ["--context-length", str(k.ctx_per_seq)]
    return argv


SGLANG = EnginePreset(name="sglang", argv=sglang_argv, max_batch=SEQS, kv_tokens=KV_TOKENS,
                      metrics_flag="--enable-metrics", takes_ctx_per_seq=True, check=check_sglang,
                      api_key_flag="--api-key")  # SGLang's server reads no key from its environment
