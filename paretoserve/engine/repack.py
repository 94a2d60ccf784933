"""Which of llama.cpp's weight-repacking buffers the engine uses on this CPU (`--repack`).

At load, llama.cpp copies quantised weights into "extra" CPU buffer types whose layout its faster
kernels read: CPU_REPACK (interleaved rows for the AVX2 / NEON kernels) and, in a build made on a CPU
with AMX, an AMX buffer listed first. On Xeons with AMX the first matmul on the AMX buffer faults
(llama.cpp issue 20824), so there the engine keeps CPU_REPACK and drops only AMX: it turns the extra
buffers off and places the weights CPU_REPACK takes in it by tensor-name overrides.

Modes: `all` is llama.cpp's default (every extra buffer, AMX included); `no-amx` is CPU_REPACK only;
`off` is none (llama-server's `--no-repack`); `auto` is `no-amx` where this llama.cpp build would
use AMX and `all` elsewhere.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from paretoserve.gguf_header import TensorInfo
from paretoserve.limits import UserError

REPACK_MODES = ("auto", "all", "no-amx", "off")
AMX_FLAGS = frozenset({"amx_int8", "amx_bf16", "amx_tile", "amx_fp16"})
# The CPU features llama.cpp's kernels choose by, recorded in sweep.json so advice knows the machine measured.
KERNEL_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                          "avx512_fp16", "avx_vnni", "asimd", "asimddp", "i8mm", "sve"}) | AMX_FLAGS
AMX_BUFFER = "AMX"  # ggml_backend_buft_name of the AMX extra buffer type
REPACK_BUFFER = "CPU_REPACK"

# What CPU_REPACK takes on x86 (llama.cpp ggml-cpu/repack.cpp, ggml_repack_get_optimal_repack_type):
# 2-D matmul weights of these types whose row count is a multiple of 8, by the CPU feature they need.
X86_REPACK_TYPES = {"avx2": ("Q4_0", "Q4_K", "IQ4_NL", "MXFP4"), "avx512f": ("Q2_K",)}
REPACK_ROWS_MULTIPLE = 8
# The token embedding is read by GET_ROWS, which CPU_REPACK cannot run; a tied output matrix shares its name.
NOT_REPACKED = ("token_embd.weight",)


class RepackError(UserError):
    """An unknown --repack mode."""


@dataclass(frozen=True)
class RepackChoice:
    """The resolved mode (`all`, `no-amx` or `off`) and why it was chosen, for the engine's banner."""

    mode: str
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`) from /proc/cpuinfo text; empty where unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_amx(flags: Iterable[str]) -> bool:
    """Whether the CPU reports any AMX feature."""
    return not AMX_FLAGS.isdisjoint(flags)


def choose_repack(requested: str, flags: frozenset[str], extra_buffers: Sequence[str] | None) -> RepackChoice:
    """Resolve `--repack` from the CPU's flags and the extra buffer types llama.cpp offers here.

    `extra_buffers` is None when this llama-cpp-python cannot list them: then the CPU's flags decide,
    and an AMX CPU gets `off`, the one setting known to work there without the list.
    """
    if requested not in REPACK_MODES:
        raise RepackError(f"--repack must be one of {', '.join(REPACK_MODES)}; got {requested!r}")
    if requested != "auto":
        return RepackChoice(requested, "set by --repack")
    if extra_buffers is None:
        if has_amx(flags):
            return RepackChoice("off", "the CPU has AMX and this llama.cpp cannot list its buffer types "
                                       "(llama.cpp issue 20824)")
        return RepackChoice("all", "the CPU has no AMX")
    if AMX_BUFFER in extra_buffers:
        return RepackChoice("no-amx", "this llama.cpp build repacks into AMX, whose first matmul faults "
                                      "(llama.cpp issue 20824): CPU_REPACK only")
    return RepackChoice("all", "no AMX buffer in this llama.cpp build")


def repack_patterns(tensors: Iterable[TensorInfo], flags: frozenset[str]) -> list[str]:
    """Regexes naming the weights CPU_REPACK takes on this CPU, one per tensor kind (`blk.N.<kind>`).

    Passed as llama.cpp tensor buffer-type overrides with the extra buffers off, they give the same
    placement as llama.cpp's own choice without AMX.
    """
    types = {t for feature, names in X86_REPACK_TYPES.items() if feature in flags for t in names}
    layers: dict[str, list[str]] = defaultdict(list)
    for tensor in tensors:
        if (tensor.type_name not in types or len(tensor.dims) != 2 or tensor.dims[1] % REPACK_ROWS_MULTIPLE
                or tensor.name in NOT_REPACKED):
            continue
        match = re.fullmatch(r"blk\.(\d+)\.(.+)", tensor.name)
        if match:
            layers[match.group(2)].append(match.group(1))
        else:
            layers[tensor.name] = []
    patterns = []
    for kind, numbers in sorted(layers.items()):
        name = re.escape(kind)
        patterns.append(f"^blk\\.({'|'.join(numbers)})\\.{name}$" if numbers else f"^{name}$")
    return patterns
