"""Energy of a run: measured by a counter where one exists, else estimated from CPU time, and always labelled.

energy_source:
- "nvml": the GPUs' cumulative energy counters (NVML, Volta and later), end minus start; GPU energy only.
- "rapl": the CPU packages' RAPL counters in /sys/class/powercap (whole packages, not only the engine).
- "estimated": the engine processes' CPU time (user + system, children included) times a per-core
  power figure: `DEFAULT_WATTS_PER_CORE`, or `--watts-per-core`. Idle power, memory and the rest of
  the machine are not counted. This is the only option on machines without counters, such as VMs.
- "none": turned off (`--energy none`), or nothing to measure or estimate from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from paretoserve.bench.gpu import NvmlReader

# Green Algorithms' default for an unknown CPU: 12 W per core ("Any" in its TDP_cpu.csv; Lannelongue,
# Grealey & Inouye, "Green Algorithms", Advanced Science 2021). Current server parts draw less per
# core at full load (e.g. 64-core AMD EPYC 9554: 360 W TDP / 64 = 5.6 W): pass your CPU's
# TDP / cores with --watts-per-core for a closer figure.
DEFAULT_WATTS_PER_CORE = 12.0
POWERCAP = Path("/sys/class/powercap")


class EnergySourceError(ValueError):
    """--energy asked for a source this machine lacks; the message says what exists."""


class RaplReader:
    """Cumulative joules of all CPU packages, with the counters' wrap-around undone."""

    def __init__(self, domains: list[Path]) -> None:
        self._domains = domains
        self._last: dict[Path, int] = {}
        self._total_uj = 0

    @classmethod
    def open(cls, root: Path = POWERCAP) -> "RaplReader | None":
        """None unless at least one package domain's energy_uj is readable (it needs root on most systems)."""
        try:
            candidates = sorted(p for p in root.iterdir() if re.fullmatch(r"intel-rapl:\d+", p.name))
        except OSError:
            return None
        domains = []
        for path in candidates:
            try:
                name = (path / "name").read_text().strip()
                int((path / "energy_uj").read_text())
            except (OSError, ValueError):
                continue
            if name.startswith("package"):
                domains.append(path)
        return cls(domains) if domains else None

    def read(self) -> float:
        for path in self._domains:
            raw = int((path / "energy_uj").read_text())
            last = self._last.get(path)
            if last is not None:
                delta = raw - last
                if delta < 0:  # wrapped
                    delta += int((path / "max_energy_range_uj").read_text())
                self._total_uj += delta
            self._last[path] = raw
        return self._total_uj / 1e6


@dataclass(frozen=True)
class EnergyPlan:
    source: str  # nvml | rapl | estimated | none
    watts_per_core: float | None = None  # for "estimated"
    note: str = ""


def choose_source(requested: str, gpu: NvmlReader | None, rapl: RaplReader | None, have_engine_pids: bool,
                  watts_per_core: float | None) -> EnergyPlan:
    """auto: an NVML counter, else RAPL, else the CPU-time estimate, else none."""
    watts = watts_per_core if watts_per_core is not None else DEFAULT_WATTS_PER_CORE
    nvml_ok = gpu is not None and gpu.has_energy_counter
    if requested == "none":
        return EnergyPlan("none", note="turned off with --energy none")
    if requested == "nvml" and not nvml_ok:
        why = "no NVIDIA GPU or nvidia-ml-py is not installed" if gpu is None else "the GPU has no energy counter"
        raise EnergySourceError(f"--energy nvml: {why}; use auto, rapl, estimated or none")
    if requested == "rapl" and rapl is None:
        raise EnergySourceError(f"--energy rapl: no readable RAPL package counter under {POWERCAP} (it usually "
                                "needs root; VMs have none); use auto, estimated or none")
    if requested == "estimated" and not have_engine_pids:
        raise EnergySourceError("--energy estimated: no engine process to take CPU time from; give --engine-pid "
                                "PID (the URL is not local, or nothing listens on its port here)")
    if requested == "nvml" or (requested == "auto" and nvml_ok):
        return EnergyPlan("nvml", note="GPU energy counters (NVML), all visible GPUs; CPU and host not included")
    if requested == "rapl" or (requested == "auto" and rapl is not None):
        return EnergyPlan("rapl", note="CPU package counters (RAPL): whole packages, client included")
    if have_engine_pids:
        return EnergyPlan("estimated", watts, note=f"estimated: engine CPU time x {watts:g} W per busy core "
                                                   "(--watts-per-core); no energy counter on this machine")
    return EnergyPlan("none", note="no energy counter and no local engine process to estimate from "
                                   "(give --engine-pid)")


def energy_between(plan: EnergyPlan, first, last) -> float | None:
    """Joules between two samples (sampler.Sample) under `plan`; None when a reading is missing."""
    if plan.source == "nvml":
        a, b = first.gpu_energy_j, last.gpu_energy_j
    elif plan.source == "rapl":
        a, b = first.rapl_energy_j, last.rapl_energy_j
    elif plan.source == "estimated":
        a, b = first.engine_cpu_s, last.engine_cpu_s
        if a is None or b is None:
            return None
        return (b - a) * plan.watts_per_core
    else:
        return None
    return None if a is None or b is None else b - a
