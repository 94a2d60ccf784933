"""The embedded engine's knobs, checked once when the config is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paretoserve.engine.repack import REPACK_MODES
from paretoserve.limits import IntRange, UserError

DEFAULT_CTX_PER_SEQ = 2048  # the ShareGPT filter of the papers: prompt + output <= 2048
DEFAULT_STEP_TOKENS = 512  # tokens per llama_decode unless --max-batch needs more
KV_LAYOUTS = ("split", "unified")

# The engine's ranges, stated here only: serve, sweep and tune check their flags for this engine against them.
MAX_BATCH = IntRange(1, 4096)
KV_TOKENS = IntRange(16, 1 << 26)
CTX_PER_SEQ = IntRange(16, 1 << 20)  # 16: the smallest context llama.cpp is given
MAX_QUEUE = IntRange(0, 1 << 20)
MAX_STEP_TOKENS_HIGH = 1 << 16


class ConfigError(UserError):
    """A knob outside its allowed range; the message names the flag and the range."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    return len(os.sched_getaffinity(0))


def threads_range() -> IntRange:
    """0 (every core) up to the cores this process may use: more llama.cpp threads than cores wait on each other."""
    return IntRange(0, available_cores(), "0 = every core; at most the cores this process may use")


def ctx_for(input_tokens: int, output_tokens: int) -> int:
    """The context one request needs: its prompt, a BOS token and its output, at least the engine's smallest."""
    return max(CTX_PER_SEQ.low, input_tokens + 1 + output_tokens)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to start; flags map one to one onto these fields."""

    model_path: Path
    model_name: str
    max_batch: int = 64  # batch cap: concurrent sequences decoded together
    kv_tokens: int | None = None  # KV cells shared by all sequences; None = max_batch x ctx_per_seq
    ctx_per_seq: int | None = None  # longest prompt + max_tokens; None = what kv_tokens leaves each sequence
    kv_layout: str = "split"  # split: one KV stream per sequence; unified: one pool any sequence may fill
    threads: int = 0  # 0 = every core this process may use
    max_queue: int = 1024  # requests waiting for a slot before new ones get 429
    max_step_tokens: int | None = None  # tokens per llama_decode (decode tokens + prefill chunks); None = 512,
    # or --max-batch when larger, so every batch cap the engine allows runs with the default
    repack: str = "auto"  # llama.cpp's weight repacking: auto | all | no-amx | off (see engine/repack.py)

    def __post_init__(self) -> None:
        MAX_BATCH.check("--max-batch", self.max_batch, ConfigError)
        if self.kv_layout not in KV_LAYOUTS:
            raise ConfigError(f"--kv-layout must be one of {', '.join(KV_LAYOUTS)}; got {self.kv_layout!r}")
        if self.ctx_per_seq is not None:
            CTX_PER_SEQ.check("--ctx-per-seq", self.ctx_per_seq, ConfigError)
        kv_tokens = self.kv_tokens if self.kv_tokens is not None else \
            self.max_batch * (self.ctx_per_seq or DEFAULT_CTX_PER_SEQ)
        self._set("kv_tokens", kv_tokens)
        KV_TOKENS.check("--kv-tokens", kv_tokens, ConfigError)
        room = kv_tokens // self.max_batch if self.kv_layout == "split" else kv_tokens
        ctx_per_seq = self.ctx_per_seq if self.ctx_per_seq is not None else room
        self._set("ctx_per_seq", ctx_per_seq)
        if room < CTX_PER_SEQ.low:
            raise ConfigError(f"--kv-tokens {kv_tokens} leaves each sequence {room} tokens with --kv-layout "
                              f"{self.kv_layout} and --max-batch {self.max_batch}; at least {CTX_PER_SEQ.low} are "
                              "needed: raise --kv-tokens or lower --max-batch")
        if ctx_per_seq > room:
            raise ConfigError(
                f"--ctx-per-seq {ctx_per_seq} does not fit: --kv-tokens {kv_tokens} leaves each sequence "
                f"{room} tokens with --kv-layout {self.kv_layout} and --max-batch {self.max_batch}; raise "
                "--kv-tokens, lower --ctx-per-seq or --max-batch, or use --kv-layout unified")
        threads_range().check("--threads", self.threads, ConfigError)
        MAX_QUEUE.check("--max-queue", self.max_queue, ConfigError)
        if self.max_step_tokens is None:
            self._set("max_step_tokens", max(DEFAULT_STEP_TOKENS, self.max_batch))
        IntRange(self.max_batch, MAX_STEP_TOKENS_HIGH, "at least --max-batch, so every running sequence decodes "
                 "each step").check("--max-step-tokens", self.max_step_tokens, ConfigError)
        if self.repack not in REPACK_MODES:
            raise ConfigError(f"--repack must be one of {', '.join(REPACK_MODES)}; got {self.repack!r}")
        if self.threads == 0:
            self._set("threads", available_cores())

    def _set(self, name: str, value: int) -> None:
        object.__setattr__(self, name, value)

    # kv_tokens, ctx_per_seq and max_step_tokens are resolved by __post_init__: never None once built.
    @property
    def kv_cells(self) -> int:
        """KV cells shared by all sequences (tokens)."""
        return _resolved(self.kv_tokens)

    @property
    def seq_ctx(self) -> int:
        """The longest prompt + max_tokens of one sequence (tokens)."""
        return _resolved(self.ctx_per_seq)

    @property
    def step_tokens(self) -> int:
        """Tokens per llama_decode."""
        return _resolved(self.max_step_tokens)


def _resolved(value: int | None) -> int:
    if value is None:
        raise AssertionError("EngineConfig.__post_init__ resolves every optional size")
    return value

