"""Load a GGUF model into llama.cpp with the weight placement `--repack` chooses for this CPU."""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

from paretoserve.engine.repack import REPACK_BUFFER, RepackChoice, choose_repack, cpu_flags, repack_patterns
from paretoserve.gguf_header import read_header

GGML_BACKEND_DEVICE_TYPE_CPU = 0


class LlamaError(RuntimeError):
    """llama.cpp refused to load a model or to decode a batch."""


class _BuftOverride(ctypes.Structure):
    """llama.h's llama_model_tensor_buft_override: a tensor-name regex and the buffer type it gets."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def extra_buffer_types() -> dict[str, int] | None:
    """llama.cpp's extra CPU buffer types by name (`AMX`, `CPU_REPACK`, ...) as ggml pointers.

    None when this llama-cpp-python build cannot list them (an older ggml without the entry point).
    """
    llama_cpp.llama_backend_init()
    try:
        from llama_cpp import _ggml

        lib = _ggml.libggml
        signatures = {"ggml_backend_dev_by_type": ([ctypes.c_int], ctypes.c_void_p),
                      "ggml_backend_dev_backend_reg": ([ctypes.c_void_p], ctypes.c_void_p),
                      "ggml_backend_reg_get_proc_address": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p),
                      "ggml_backend_buft_name": ([ctypes.c_void_p], ctypes.c_char_p)}
        fns = {}
        for name, (argtypes, restype) in signatures.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, restype
            fns[name] = fn
    except (ImportError, AttributeError, OSError):
        return None
    device = fns["ggml_backend_dev_by_type"](GGML_BACKEND_DEVICE_TYPE_CPU)
    if not device:
        return None
    address = fns["ggml_backend_reg_get_proc_address"](fns["ggml_backend_dev_backend_reg"](device),
                                                       b"ggml_backend_dev_get_extra_bufts")
    if not address:
        return None
    listed = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)(device)
    found = {}
    i = 0
    while listed and listed[i]:
        found[fns["ggml_backend_buft_name"](listed[i]).decode()] = listed[i]
        i += 1
    return found


def resolve_repack(requested: str) -> RepackChoice:
    """`--repack` resolved for this CPU and this llama.cpp build (no model needed)."""
    if requested != "auto":  # already decided (the engine's CLI resolves it once): nothing to look up
        return choose_repack(requested, frozenset(), [])
    buffers = extra_buffer_types()
    return choose_repack(requested, cpu_flags(), None if buffers is None else list(buffers))


def load_model(path: Path, choice: RepackChoice) -> int:
    """Load the model at `path` with the weight placement of `choice`; returns llama.cpp's model pointer."""
    params = llama_cpp.llama_model_default_params()
    overrides = None  # kept alive until the load has read it
    if choice.mode != "all":
        if not hasattr(params, "use_extra_bufts"):
            raise LlamaError(f"llama-cpp-python {llama_cpp.__version__} cannot turn weight repacking off "
                             f"(--repack {choice.mode}: {choice.reason}); install a newer llama-cpp-python")
        params.use_extra_bufts = False
        buffers = extra_buffer_types() or {}
        if choice.mode == "no-amx" and REPACK_BUFFER in buffers:
            patterns = repack_patterns(read_header(path).tensors, cpu_flags())
            overrides = (_BuftOverride * (len(patterns) + 1))(
                *[_BuftOverride(p.encode(), buffers[REPACK_BUFFER]) for p in patterns], _BuftOverride(None, None))
            params.tensor_buft_overrides = ctypes.cast(overrides, ctypes.c_void_p)
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    del overrides
    if not model:
        raise LlamaError(f"llama.cpp could not load the model {path}")
    return model
