"""The embedded engine's knobs, checked once when the config is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paretoserve.engine.repack import REPACK_MODES


DEFAULT_CTX_PER_SEQ = 2048  # the ShareGPT filter of the papers: prompt + output <= 2048
KV_LAYOUTS = ("split", "unified")


class ConfigError(ValueError):
    """A knob outside its allowed range; the message names the flag and the range."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    return len(os.sched_getaffinity(0))


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
    max_step_tokens: int = 512  # tokens per llama_decode (decode tokens + prefill chunks)
    repack: str = "auto"  # llama.cpp's weight repacking: auto | all | no-amx | off (see engine/repack.py)

    def __post_init__(self) -> None:
        _check_range("--max-batch", self.max_batch, 1, 4096)
        if self.kv_layout not in KV_LAYOUTS:
            raise ConfigError(f"--kv-layout must be one of {', '.join(KV_LAYOUTS)}; got {self.kv_layout!r}")
        if self.ctx_per_seq is not None:
            _check_range("--ctx-per-seq", self.ctx_per_seq, 16, 1 << 20)
        if self.kv_tokens is None:
            self._set("kv_tokens", self.max_batch * (self.ctx_per_seq or DEFAULT_CTX_PER_SEQ))
        _check_range("--kv-tokens", self.kv_tokens, 16, 1 << 26)
        room = self.kv_tokens // self.max_batch if self.kv_layout == "split" else self.kv_tokens
        if self.ctx_per_seq is None:
            self._set("ctx_per_seq", room)
        if room < 16:
            raise ConfigError(f"--kv-tokens {self.kv_tokens} leaves each sequence {room} tokens with --kv-layout "
                              f"{self.kv_layout} and --max-batch {self.max_batch}; at least 16 are needed: raise "
                              "--kv-tokens or lower --max-batch")
        if self.ctx_per_seq > room:
            raise ConfigError(
                f"--ctx-per-seq {self.ctx_per_seq} does not fit: --kv-tokens {self.kv_tokens} leaves each sequence "
                f"{room} tokens with --kv-layout {self.kv_layout} and --max-batch {self.max_batch}; raise "
                "--kv-tokens, lower --ctx-per-seq or --max-batch, or use --kv-layout unified")
        _check_range("--threads", self.threads, 0, 1024)
        _check_range("--max-queue", self.max_queue, 0, 1 << 20)
        _check_range("--max-step-tokens", self.max_step_tokens, self.max_batch, 1 << 16,
                     why="at least --max-batch, so every running sequence decodes each step")
        if self.repack not in REPACK_MODES:
            raise ConfigError(f"--repack must be one of {', '.join(REPACK_MODES)}; got {self.repack!r}")
        if self.threads == 0:
            self._set("threads", available_cores())

    def _set(self, name: str, value: int) -> None:
        object.__setattr__(self, name, value)


def _check_range(flag: str, value: int, low: int, high: int, why: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        reason = f" ({why})" if why else ""
        raise ConfigError(f"{flag} must be an integer in [{low}, {high}]{reason}; got {value!r}")
