"""NVIDIA GPUs through NVML (the optional `nvidia-ml-py` package, imported as `pynvml`).

Without the package, a driver or a GPU, `NvmlReader.open()` returns None and nothing else changes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuReading:
    """All visible GPUs together at one instant."""

    memory_used_bytes: int
    util_percent: float  # mean over the GPUs
    power_w: float  # sum over the GPUs
    energy_j: float | None  # sum of the cumulative energy counters; None without a counter (pre-Volta)


class NvmlReader:
    """Reads memory used, utilisation, power and the energy counter of every visible GPU."""

    def __init__(self, nvml, handles: list, has_energy_counter: bool, names: list[str]) -> None:
        self._nvml = nvml
        self._handles = handles
        self.has_energy_counter = has_energy_counter
        self.names = names

    @classmethod
    def open(cls) -> "NvmlReader | None":
        try:
            import pynvml as nvml
        except ImportError:
            return None
        try:
            nvml.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no usable GPU here
            return None
        try:
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            if not handles:
                nvml.nvmlShutdown()
                return None
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
            counter = True
            for h in handles:
                try:
                    nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                except nvml.NVMLError:
                    counter = False
            return cls(nvml, handles, counter, names)
        except nvml.NVMLError:
            nvml.nvmlShutdown()
            return None

    def read(self) -> GpuReading | None:
        nvml = self._nvml
        try:
            memory = sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles)
            util = sum(nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles) / len(self._handles)
            power = sum(nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0  # mW -> W
            energy = None
            if self.has_energy_counter:
                energy = sum(nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) / 1000.0  # mJ
        except nvml.NVMLError:
            return None
        return GpuReading(int(memory), float(util), float(power), energy)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
