"""This machine's CPU for the roofline: memory read bandwidth measured once with numpy (and cached), peak FLOP/s
from core count, clock and vector width in /proc/cpuinfo."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretoserve.engine.config import available_cores
from paretoserve.model import cache_dir

CACHE_FILE = "cpu-bandwidth.json"
FMA_UNITS_PER_CORE = 2  # two FMA pipes per core on x86 server cores since Haswell / Zen; /proc/cpuinfo does not say


@dataclass(frozen=True)
class CpuProbeConfig:
    """How to probe: where the cache lives, whether to measure again, and the size of the measurement."""

    cache_dir: str | None = None
    remeasure: bool = False
    array_bytes: int = 512 << 20  # far larger than any L3 cache, so reads come from DRAM
    repeats: int = 5
    cpuinfo_path: str = "/proc/cpuinfo"
    meminfo_path: str = "/proc/meminfo"


@dataclass(frozen=True)
class CpuInfo:
    """What the probe found: model, usable cores, vector width (bits), clock (GHz), bandwidth (bytes/s), memory."""

    model: str
    cores: int
    vector_bits: int
    ghz: float
    fma_units: int
    memory_bytes: int
    bandwidth_bytes_per_s: float
    threads: int
    measured_at: str

    @property
    def peak_flops(self) -> float:
        """fp32 FMA peak in FLOP/s: cores x FMA units x lanes x 2 x clock."""
        return self.cores * self.fma_units * (self.vector_bits // 32) * 2 * self.ghz * 1e9


def probe_cpu(config: CpuProbeConfig) -> CpuInfo:
    """Read /proc/cpuinfo and /proc/meminfo; take the bandwidth from the cache unless absent, stale or `remeasure`."""
    text = _read(config.cpuinfo_path)
    model, flags, ghz = _cpuinfo_fields(text)
    cores = available_cores()
    memory = _mem_total(_read(config.meminfo_path))
    identity = {"model": model, "cores": cores, "memory_bytes": memory}
    cache = Path(cache_dir(config.cache_dir)) / CACHE_FILE
    cached = _load_cache(cache)
    if not config.remeasure and cached and all(cached.get(k) == v for k, v in identity.items()):
        bandwidth, measured_at = cached["bandwidth_bytes_per_s"], cached["measured_at"]
    else:
        bandwidth = measure_read_bandwidth(config.array_bytes, cores, config.repeats)
        measured_at = time.strftime("%Y-%m-%d %H:%M:%S")
        _save_cache(cache, {**identity, "bandwidth_bytes_per_s": bandwidth, "threads": cores,
                            "measured_at": measured_at})
    return CpuInfo(model=model, cores=cores, vector_bits=_vector_bits(flags), ghz=ghz, fma_units=FMA_UNITS_PER_CORE,
                   memory_bytes=memory, bandwidth_bytes_per_s=bandwidth, threads=cores, measured_at=measured_at)


def measure_read_bandwidth(array_bytes: int, threads: int, repeats: int) -> float:
    """Best read bandwidth (bytes/s) over `repeats` passes of a numpy max, one slice per thread in parallel."""
    data = np.ones(max(array_bytes // 8, threads * 1024), dtype=np.int64)
    slices = np.array_split(data, threads)
    best = 0.0
    for _ in range(repeats):
        # An int64 max is the cheapest reduction per byte here (a float sum is ~20 % slower); it releases the GIL.
        workers = [threading.Thread(target=np.max, args=(part,)) for part in slices]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, data.nbytes / (time.perf_counter() - start))
    return best


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpuinfo_fields(text: str) -> tuple[str, set[str], float]:
    model, flags, mhz = "unknown CPU", set[str](), 0.0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and not mhz:
            with contextlib.suppress(ValueError):
                mhz = float(value)
    return model, flags, (mhz / 1000 if mhz else 2.0)  # 2 GHz when the kernel does not say: a modest guess


def _vector_bits(flags: set[str]) -> int:
    if "avx512f" in flags:
        return 512
    if "avx2" in flags or "avx" in flags:
        return 256
    return 128  # SSE / NEON


def _mem_total(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _load_cache(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _save_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only means measuring again next time
