"""Engines as named presets (`--engine embedded|llama-server|vllm|sglang`): each knows how to start its
engine from paretoserve's knobs, its health and metrics paths, and what installs it."""

from __future__ import annotations

from paretoserve.model import GGUF_ENGINES
from paretoserve.presets.embedded import EMBEDDED
from paretoserve.presets.knobs import EngineKnobs, EnginePreset, PresetError
from paretoserve.presets.llama_server import LLAMA_SERVER
from paretoserve.presets.sglang import SGLANG
from paretoserve.presets.vllm import VLLM

PRESETS = (EMBEDDED, LLAMA_SERVER, VLLM, SGLANG)
ENGINE_NAMES = tuple(p.name for p in PRESETS)

__all__ = ["ENGINE_NAMES", "GGUF_ENGINES", "PRESETS", "EngineKnobs", "EnginePreset", "PresetError", "preset"]


def preset(name: str) -> EnginePreset:
    """The preset called `name`; PresetError naming --engine and the choices otherwise."""
    for p in PRESETS:
        if p.name == name:
            return p
    raise PresetError(f"--engine must be one of {', '.join(ENGINE_NAMES)}; got {name!r}")
