"""What a sweep ran on: versions, CPU, cores, memory and GPUs, recorded once in sweep.json."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import psutil

from paretoserve.engine.config import available_cores
from paretoserve.engine.repack import KERNEL_FLAGS, cpu_flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[dict]:
    """Name and total memory of each NVIDIA GPU; empty when NVML is absent (CPU machines)."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library, or no GPU: all mean "no GPU here"
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append({"index": i, "name": name.decode() if isinstance(name, bytes) else name,
                        "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)})
        return out
    finally:
        pynvml.nvmlShutdown()


def collect_environment() -> dict:
    """A JSON-ready description of this machine and the software that measured it."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_features": sorted(cpu_flags() & KERNEL_FLAGS),  # what llama.cpp's kernels (and its AMX crash) depend on
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": available_cores(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "gpus": _gpus(),
        "versions": {name: _version(name) for name in
                     ("paretoserve", "llama-cpp-python", "vllm", "sglang", "numpy", "httpx")},
    }
