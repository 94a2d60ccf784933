"""What a replica's command is built from, and what a named engine preset knows about its engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from paretoserve.limits import IntRange, UserError
from paretoserve.model import resolve_model


class PresetError(UserError):
    """An engine preset that cannot run here or cannot take a knob; the message names the flag."""


@dataclass(frozen=True)
class EngineKnobs:
    """One replica's settings, in paretoserve's units, for a preset to map onto its engine's flags."""

    model: str  # what --model gave: 'default' or a path (a GGUF for llama.cpp engines, an HF directory for vLLM)
    port: int
    max_batch: int  # concurrent sequences
    kv_tokens: int | None  # KV cache of this replica in tokens; None = the engine's default
    ctx_per_seq: int | None  # longest prompt + output of one sequence (tokens); None = the engine's default
    threads: int  # CPU threads of this replica
    mem_fraction: float  # this replica's share of device memory (0..1)
    repack: str = "auto"  # llama.cpp's weight repacking: auto | all | no-amx | off


@dataclass(frozen=True)
class EnginePreset:
    """A named engine: how to start it, where it says it is ready, which metrics it serves.

    `argv` builds a replica's command line; `env` is added to its environment. `metrics_flag` is what
    makes the engine serve its metrics, where it does not by default (the preset passes it); `extra` is
    the paretoserve extra that installs the engine, and `check` says when it is not installed.
    """

    name: str
    argv: Callable[[EngineKnobs], list[str]]
    max_batch: IntRange
    kv_tokens: IntRange
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    env: dict[str, str] = field(default_factory=dict)
    extra: str | None = None
    metrics_flag: str | None = None
    # How it takes an API key: an environment variable (kept out of `ps`), else a flag; neither: it takes none.
    api_key_env: str | None = None
    api_key_flag: str | None = None
    repack_modes: tuple[str, ...] = ("auto",)  # the --repack values it can honour
    takes_ctx_per_seq: bool = False  # --ctx-per-seq sets its context per sequence
    resumes_streams: bool = False  # it has paretoserve's greedy-stream resume extension
    check: Callable[[], object] = lambda: None  # raises PresetError when the engine is not installed
    # --model (and --cache-dir) -> what the engine loads, built or exported once before the first start
    prepare: Callable[[str, str | None], str] = lambda model, cache: model


def gguf_file(model: str, cache: str | None = None) -> str:
    """The GGUF file a llama.cpp engine loads for --model ('default': the bundled one, built on first use)."""
    return str(resolve_model(model, cache).path)
