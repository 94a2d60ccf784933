"""Flags shared by several subcommands and their translation into config objects."""

from __future__ import annotations

import argparse
import signal
import socket

from paretoserve.engine.config import DEFAULT_CTX_PER_SEQ, KV_LAYOUTS, EngineConfig
from paretoserve.engine.repack import REPACK_MODES
from paretoserve.limits import UserError
from paretoserve.model import DEFAULT_MODEL, resolve_model
from paretoserve.presets import ENGINE_NAMES


class UsageError(UserError):
    """A user mistake found by the CLI itself: printed as one line naming the flag, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C through every `finally` that stops an engine."""


def stop_on_sigterm(signum, frame) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C; `paretoserve` then exits with 143 instead of 130."""
    raise Terminated


def interrupted_status(exc: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + the signal's number: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def add_model_arg(group, files: str = "GGUF file", also: str = "", many: str = "") -> None:
    """--model, for every command that loads or names a model: `files` it takes besides 'default', and `also`
    what this command does with it; with `many` (what several mean) it may be repeated, a list (None: not given)."""
    help = (f"{files}, 'default' for the bundled Gemma 3 270M Q4_K_M{also}, or 'smollm2' for SmolLM2 135M Q4_1 "
            f"(the smollm2 extra) (default: {DEFAULT_MODEL}){many}")
    if many:
        group.add_argument("--model", action="append", default=None, help=help)
    else:
        group.add_argument("--model", default=DEFAULT_MODEL, help=help)


def add_cache_dir_arg(group, holds: str = "the bundled model is assembled") -> None:
    group.add_argument("--cache-dir", default=None,
                       help=f"where {holds} (default: $PARETOSERVE_CACHE_DIR, else $XDG_CACHE_HOME/paretoserve)")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    add_model_arg(parser)
    add_cache_dir_arg(parser)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine knobs")
    group.add_argument("--max-batch", type=int, default=EngineConfig.max_batch,
                       help="batch cap: most concurrent sequences (default: %(default)s)")
    group.add_argument("--kv-tokens", type=int, default=None,
                       help="KV cache cells shared by all sequences (default: max-batch x ctx-per-seq)")
    group.add_argument("--ctx-per-seq", type=int, default=None,
                       help=f"longest prompt + max_tokens of one request (default: {DEFAULT_CTX_PER_SEQ}, or what "
                            "--kv-tokens leaves each sequence)")
    group.add_argument("--kv-layout", choices=KV_LAYOUTS, default=EngineConfig.kv_layout,
                       help="split: a KV stream per sequence (fast); unified: one shared pool (default: %(default)s)")
    group.add_argument("--threads", type=int, default=EngineConfig.threads,
                       help="llama.cpp threads; 0 = all usable cores")
    group.add_argument("--max-queue", type=int, default=EngineConfig.max_queue,
                       help="waiting requests before 429 (default: %(default)s)")
    group.add_argument("--max-step-tokens", type=int, default=None,
                       help="tokens per llama_decode: decode tokens + prefill chunks (default: 512, or --max-batch "
                            "when larger)")
    add_repack_arg(group)


def add_engine_choice(group, engine_cmd: bool = True) -> None:
    """--engine, for every command that starts engines: a preset of paretoserve/presets; `engine_cmd`: the command
    also takes --engine-cmd for any other engine."""
    other = "; --engine-cmd starts any other" if engine_cmd else ""
    group.add_argument("--engine", choices=ENGINE_NAMES, default="embedded",
                       help="which engine each replica runs: the embedded llama.cpp engine, llama-server (the "
                            f"llama-server extra), vllm (the vllm extra) or sglang{other} (default: %(default)s)")


def add_repack_arg(group) -> None:
    """--repack, for every command that starts the embedded engine."""
    group.add_argument("--repack", choices=REPACK_MODES, default="auto",
                       help="llama.cpp weight repacking: all (llama.cpp's default), no-amx (CPU_REPACK only; "
                            "embedded engine), off (none, llama-server's --no-repack); auto = no AMX where "
                            "llama.cpp would use AMX, which crashes, else all (default: auto)")


def add_server_args(parser: argparse.ArgumentParser, port: int = 8000) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="port to bind (default: %(default)s)")


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """Resolve the model and check every engine knob (ModelError or ConfigError name the flag)."""
    spec = resolve_model(args.model, args.cache_dir)
    return EngineConfig(model_path=spec.path, model_name=spec.name, max_batch=args.max_batch,
                        kv_tokens=args.kv_tokens, ctx_per_seq=args.ctx_per_seq, kv_layout=args.kv_layout,
                        threads=args.threads, max_queue=args.max_queue, max_step_tokens=args.max_step_tokens,
                        repack=args.repack)


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to --host/--port, so a taken port is one line before any model loads or engine starts."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be in [0, 65535]; got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--port {port} on {host} cannot be used: {exc.strerror or exc}") from exc
    return sock
