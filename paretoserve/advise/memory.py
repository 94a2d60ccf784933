"""KV memory B_opt needs, the default allocation it is compared to, and the memory that frees.

    kv_need_bytes  = peak KV use measured at B_opt   (else bytes/token x tokens/sequence x B_opt)
    freed_bytes    = default KV allocation - kv_need_bytes
    freed_fraction = freed_bytes / device memory

vLLM sizes one KV cache from its memory fraction whatever the batch cap, so there the default
allocation is the largest cache the sweep's runs allocated and B_opt's need is the share of it that
B_opt filled (the paper's arithmetic). The embedded engine sizes its cache per point
(max_batch x ctx_per_seq), so there the need is the tokens B_opt used and the default is the
cache `paretoserve engine` allocates with its default flags.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from paretoserve.advise.table import AdviseError, Point, SweepTable
from paretoserve.engine.config import DEFAULT_CTX_PER_SEQ, EngineConfig

UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*$")
ENGINE_DEFAULT_MAX_BATCH = EngineConfig.max_batch  # the dataclass field's default


def parse_size(text: str, flag: str = "--device-memory") -> int:
    """'64GiB' -> 68719476736, '80GB' -> 80e9, '1234' -> 1234 bytes."""
    match = SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in UNITS or float(match.group(1)) <= 0:
        raise AdviseError(f"{flag}: cannot read {text!r} as a size; give bytes or a number with a unit "
                          "(B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024), "
                          "e.g. 64GiB, 80GB")
    return int(float(match.group(1)) * UNITS[unit])


class MemoryPart(BaseModel):
    part: str  # weights | kv_needed | kv_freed | rest
    bytes: float  # device memory this part takes
    fraction: float  # of device memory


class MemoryAdvice(BaseModel):
    """All sizes in bytes; fractions of device memory unless named otherwise."""

    device_memory_bytes: int | None  # --device-memory, else the sweep's GPU memory, else its RAM; None: unknown
    device_memory_source: str  # where device_memory_bytes came from, in words
    kv_bytes_per_token: int | None  # as a vLLM import recorded it, else from the model's GGUF; None: unknown
    kv_need_bytes: float | None  # peak KV use at B_opt, else bytes/token x tokens/sequence x B_opt; None: unknown
    kv_need_source: str  # how kv_need_bytes was found ('measured: ...', 'geometry: ...', 'unknown: ...')
    kv_need_fraction: float | None  # share of the default KV allocation B_opt needs
    default_kv_bytes: float | None  # vLLM: the largest cache the sweep allocated; else the engine defaults' cache
    default_kv_source: str  # how default_kv_bytes was found, in words
    freed_bytes: float | None  # default_kv_bytes - kv_need_bytes, at least 0
    freed_fraction: float | None  # freed_bytes / device_memory_bytes
    weights_bytes: float | None  # vLLM: weights plus activations and runtime buffers
    weights_source: str  # how weights_bytes was found, in words; 'unknown' where it is None
    breakdown: list[MemoryPart]  # weights, kv_needed, kv_freed and the rest; empty when device memory is unknown


def device_memory(table: SweepTable, override: str | int | None) -> tuple[int | None, str]:
    """Device memory in bytes: the flag, else the sweep's environment (GPU memory, else RAM)."""
    if override is not None:
        size = int(override) if isinstance(override, int) else parse_size(override)
        return size, "--device-memory"
    if table.device_memory_bytes:
        return table.device_memory_bytes, f"sweep environment ({table.device_name or 'device'})"
    return None, "unknown: give --device-memory"


def _utilisation(singles: list[Point]) -> float | None:
    values = {p.gpu_memory_utilization for p in singles}
    return values.pop() if len(values) == 1 and None not in values else None


def memory_advice(table: SweepTable, point: Point, device_bytes: int | None, device_source: str) -> MemoryAdvice:
    """The memory arithmetic for B_opt's `point`; every figure is None where its inputs are not measured."""
    singles = table.singles()
    per_token = table.kv_bytes_per_token
    utilisation = _utilisation(singles)
    budgets = [p.kv_budget_bytes for p in singles if p.kv_budget_bytes]
    if utilisation is not None and budgets:  # vLLM: one cache sized by a memory fraction
        largest = max(b for b in budgets if b is not None)
        default_kv: float | None = largest
        default_source = ("measured: the largest KV cache the sweep's engine allocated "
                          f"(memory fraction {utilisation:g})")
        weights = utilisation * device_bytes - largest if device_bytes else None
        weights_source = "memory fraction x device memory - KV cache (weights, activations, runtime)"
        if weights is not None and weights <= 0:  # the device memory given is smaller than what the engine used
            weights_source = (f"unknown: {utilisation:g} x device memory is less than the KV cache allocated; "
                              "check --device-memory (GB vs GiB)")
            weights = None
        fraction = point.kv_peak_fraction
        need = fraction * largest if fraction is not None else None
        need_source = "measured: peak KV cache use at B_opt, as a share of the cache"
    else:
        default_tokens = ENGINE_DEFAULT_MAX_BATCH * DEFAULT_CTX_PER_SEQ
        default_kv = default_tokens * per_token if per_token else None
        default_source = (f"paretoserve engine defaults: --max-batch {ENGINE_DEFAULT_MAX_BATCH} x --ctx-per-seq "
                          f"{DEFAULT_CTX_PER_SEQ} = {default_tokens} tokens")
        weights, weights_source = table.weights_bytes, "model file size (mapped weights)"
        need, need_source = point.kv_peak_bytes, "measured: peak KV cache use at B_opt"
        fraction = need / default_kv if need is not None and default_kv else None
    if need is None:
        tokens = table.ctx_per_seq or point.tokens_per_request
        if per_token and tokens:
            need = per_token * tokens * point.batch
            need_source = f"geometry: {per_token} B/token x {tokens:.0f} tokens/sequence x B_opt"
            fraction = need / default_kv if default_kv else None
        else:
            need_source = "unknown: no KV use measured and no model geometry (--model-config at import)"
    freed = max(0.0, default_kv - need) if default_kv is not None and need is not None else None
    return MemoryAdvice(
        device_memory_bytes=device_bytes, device_memory_source=device_source, kv_bytes_per_token=per_token,
        kv_need_bytes=need, kv_need_source=need_source, kv_need_fraction=fraction, default_kv_bytes=default_kv,
        default_kv_source=default_source, freed_bytes=freed,
        freed_fraction=freed / device_bytes if freed is not None and device_bytes else None,
        weights_bytes=weights, weights_source=weights_source if weights is not None else "unknown",
        breakdown=breakdown(device_bytes, weights, need, freed))


def breakdown(device_bytes: int | None, weights: float | None, need: float | None,
              freed: float | None) -> list[MemoryPart]:
    """Device memory split into weights, KV needed, KV freed and the rest; parts not known are left out."""
    if not device_bytes:
        return []
    parts = {"weights": weights, "kv_needed": need, "kv_freed": freed}
    known = {k: v for k, v in parts.items() if v is not None}
    known["rest"] = max(0.0, device_bytes - sum(known.values()))
    return [MemoryPart(part=k, bytes=v, fraction=v / device_bytes) for k, v in known.items()]


def fits(per_replica_bytes: float, available_bytes: float) -> int:
    """How many replicas of `per_replica_bytes` fit in `available_bytes` (0 when none)."""
    return int(available_bytes // per_replica_bytes) if per_replica_bytes > 0 else 0
