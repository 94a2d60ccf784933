import subprocess
import sys

import pytest

from paretoserve.serve.config import PlanError
from paretoserve.serve.pinning import assign_cores, pinned_cmd, threads_for, usable_cores
from tests.waiting import HANG_S


def test_cores_are_disjoint_and_consecutive():
    assert assign_cores(2, 2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3)]
    assert assign_cores(3, 1, [4, 6, 8]) == [(4,), (6,), (8,)]


def test_a_plan_needing_more_cores_is_refused_with_the_arithmetic():
    with pytest.raises(PlanError, match=r"needs 4 cores \(2 replicas x 2 threads\).* 2 .*--threads-per-replica"):
        assign_cores(2, 2, [0, 1])


def test_threads_zero_shares_the_cores_evenly():
    assert threads_for(2, 0, [0, 1, 2, 3]) == 2
    assert threads_for(3, 0, [0, 1]) == 1
    assert threads_for(2, 3, [0, 1]) == 3


@pytest.mark.integration
def test_the_wrapper_pins_before_the_command_runs():
    core = usable_cores()[-1]
    probe = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]
    out = subprocess.run(pinned_cmd(probe, (core,)), capture_output=True, text=True, timeout=HANG_S)
    assert out.stdout.strip() == f"[{core}]"
    assert out.stderr == ""  # no runpy RuntimeWarning: the wrapper imports nothing of the package


@pytest.mark.integration
def test_the_wrapper_reports_a_missing_command():
    out = subprocess.run(pinned_cmd(["/no/such/engine"], None), capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode != 0 and "cannot run /no/such/engine" in out.stderr
