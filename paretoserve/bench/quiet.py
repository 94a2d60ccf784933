"""Whether the machine was quiet while it was measured: CPU time of the whole machine from /proc/stat, so that
what other processes used (all busy time minus the engine's and this client's) and the hypervisor's steal
can be told apart from the engine's own work.

On a 2-core VM a second busy process cut a two-thread decode to 2-18 tok/s: the largest error seen, and
invisible in the figures themselves.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

OTHER_CORES_WARN = 0.25  # cores busy with other processes, on average, worth a warning
STEAL_WARN = 0.05  # share of CPU time the hypervisor gave other guests, worth a warning
QUIET_CORES = 0.15  # what --wait-quiet waits for: other processes below this many busy cores
QUIET_WINDOW_S = 1.0  # --wait-quiet judges the machine over windows this long


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU seconds of the whole machine, all cores added up."""

    busy_s: float  # user, nice, system, irq, softirq (guest time is inside user)
    steal_s: float
    total_s: float  # busy + idle + iowait + steal


def machine_cpu(text: str | None = None) -> CpuTimes | None:
    """The `cpu` line of /proc/stat (or `text`) in seconds; None where it cannot be read (not Linux)."""
    if text is None:
        try:
            text = Path("/proc/stat").read_text()
        except OSError:
            return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) >= 9:
            user, nice, system, idle, iowait, irq, softirq, steal = (float(v) for v in fields[1:9])
            tick = _ticks_per_second()
            busy = user + nice + system + irq + softirq
            return CpuTimes(busy / tick, steal / tick, (busy + idle + iowait + steal) / tick)
    return None


def _ticks_per_second() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def others_busy_cores(before: CpuTimes, after: CpuTimes, wall_s: float, ours_cpu_s: float) -> float:
    """Cores other processes kept busy on average between two readings: all busy time less `ours_cpu_s` (the
    engine's and this client's CPU seconds over the same span), never below 0."""
    if wall_s <= 0:
        return 0.0
    return max(0.0, (after.busy_s - before.busy_s - ours_cpu_s) / wall_s)


def steal_fraction(before: CpuTimes, after: CpuTimes) -> float | None:
    """Share of the machine's CPU time stolen by the hypervisor between two readings."""
    total = after.total_s - before.total_s
    return (after.steal_s - before.steal_s) / total if total > 0 else None


def quiet_warnings(other_cores: float | None, steal: float | None) -> list[str]:
    """What makes a run's figures doubtful because the machine was busy with something else."""
    out = []
    if other_cores is not None and other_cores > OTHER_CORES_WARN:
        out.append(f"other processes kept {other_cores:.2f} cores busy during the run: the figures may be low; "
                   "measure on a quiet machine or use --wait-quiet")
    if steal is not None and steal > STEAL_WARN:
        out.append(f"the hypervisor stole {steal:.0%} of the CPU time during the run: the figures may be low")
    return out


def wait_quiet(timeout_s: float, ours: list[int] | tuple[int, ...] = (), say=print) -> float | None:
    """Wait, up to `timeout_s`, for a window of QUIET_WINDOW_S in which other processes (all but this one and
    `ours`) keep fewer than QUIET_CORES cores busy. Returns their busy cores in the last window, or None when
    /proc/stat cannot be read; says once what it waits for, and when it gives up."""
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        before, own_before = machine_cpu(), _cpu_of(ours)
        time.sleep(QUIET_WINDOW_S)
        after, own_after = machine_cpu(), _cpu_of(ours)
        if before is None or after is None:
            return None
        busy = others_busy_cores(before, after, QUIET_WINDOW_S, own_after - own_before)
        if busy < QUIET_CORES:
            return busy
        if time.monotonic() >= deadline:
            say(f"--wait-quiet: other processes still keep {busy:.2f} cores busy after {timeout_s:g} s; "
                "measuring anyway")
            return busy
        if not said:
            say(f"--wait-quiet: other processes keep {busy:.2f} cores busy; waiting up to {timeout_s:g} s for "
                f"fewer than {QUIET_CORES:g}")
            said = True


def _cpu_of(pids: list[int] | tuple[int, ...]) -> float:
    """CPU seconds of this process and `pids` (and their children): what is not 'other processes'."""
    total = 0.0
    for pid in (psutil.Process().pid, *pids):
        try:
            proc = psutil.Process(pid)
            for p in (proc, *proc.children(recursive=True)):
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total
