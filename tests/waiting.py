"""Waiting in tests: for a condition or an event, never for a wall-clock budget.

Tests share their machine (CI runners, other engines, a compiler): every step may take many times longer than on
a quiet machine, and a test must still pass. HANG_S bounds a wait only to report a hang: nothing that works takes
that long, however busy the machine. Speed targets are figures printed by the scripts in benchmarks/."""

from __future__ import annotations

import time
from typing import Callable

HANG_S = 300.0


def wait_until(condition: Callable[[], object], what: str, interval_s: float = 0.05) -> None:
    """Return once `condition()` is true; AssertionError naming `what` if it is still false after HANG_S."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < deadline, f"{what}: still not so after {HANG_S:g} s (a hang)"
        time.sleep(interval_s)
