"""Disjoint CPU cores for each replica, and the tiny exec wrapper that applies them.

`python -m paretoserve.serve.pinning CORES -- CMD...` pins itself to CORES, asks the kernel to
SIGKILL it when the thread that started it dies (so a supervisor killed with SIGKILL leaves no
orphan engines), then execs CMD: the engine starts already pinned, before it creates any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

from paretoserve.serve.config import PlanError

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
    return [sys.executable, "-m", "paretoserve.serve.pinning", spec, "--", *cmd]


def _spans(cores: list[int]) -> str:
    return "cores " + ",".join(map(str, cores)) if cores else "no cores"


def main(argv: list[str]) -> None:
    spec, sep, cmd = argv[0], argv[1], argv[2:]
    if sep != "--" or not cmd:
        sys.exit("usage: python -m paretoserve.serve.pinning CORES|- -- CMD...")
    if spec != "-":
        os.sched_setaffinity(0, {int(c) for c in spec.split(",")})
    # Not Linux: the supervisor's own SIGTERM/SIGKILL still stops the replica.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.exit(f"cannot run {cmd[0]}: {exc.strerror or exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
