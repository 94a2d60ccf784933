"""Disjoint CPU cores for each replica, and the command line that starts a replica on its cores.

`pinned_cmd` wraps an engine's command in `python -I exec_pinned.py CORES -- CMD...`, which pins itself, arranges to
die with the thread that started it, and execs the engine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from paretoserve.serve.config import PlanError

EXEC_PINNED = str(Path(__file__).with_name("exec_pinned.py"))  # run as a script: see its docstring


def usable_cores() -> list[int]:
    """The cores this process may run on, sorted."""
    return sorted(os.sched_getaffinity(0))


def threads_for(replicas: int, threads_per_replica: int, cores: list[int]) -> int:
    """Threads each replica gets: the plan's, or with 0 the usable cores shared evenly (at least 1)."""
    return threads_per_replica or max(1, len(cores) // replicas)


def assign_cores(replicas: int, threads: int, cores: list[int]) -> list[tuple[int, ...]]:
    """`threads` consecutive usable cores for each replica, none shared; refuses a plan that needs too many."""
    need = replicas * threads
    if need > len(cores):
        raise PlanError(f"the plan needs {need} cores ({replicas} replicas x {threads} threads) but this process "
                        f"may use {len(cores)} ({_spans(cores)}); lower --replicas or --threads-per-replica "
                        f"(replicas x threads <= {len(cores)}), or pass --no-pin to share cores")
    return [tuple(cores[i * threads:(i + 1) * threads]) for i in range(replicas)]


def pinned_cmd(cmd: list[str], cores: tuple[int, ...] | None) -> list[str]:
    """`cmd` wrapped so that it runs on `cores` only (None: not pinned) and dies with its supervisor."""
    spec = ",".join(map(str, cores)) if cores else "-"
    return [sys.executable, "-I", EXEC_PINNED, spec, "--", *cmd]


def _spans(cores: list[int]) -> str:
    return "cores " + ",".join(map(str, cores)) if cores else "no cores"

