"""Telling a quiet machine from a busy one: /proc/stat arithmetic, warnings, and --wait-quiet's wait."""

import pytest

from paretoserve.bench import quiet

STAT = "cpu  1000 0 500 8000 100 0 0 400 0 0\ncpu0 500 0 250 4000 50 0 0 200 0 0\nintr 1\n"


def test_the_cpu_line_of_proc_stat_in_seconds(monkeypatch):
    monkeypatch.setattr(quiet, "_ticks_per_second", lambda: 100.0)
    t = quiet.machine_cpu(STAT)
    assert (t.busy_s, t.steal_s, t.total_s) == (15.0, 4.0, 100.0)
    assert quiet.machine_cpu("intr 1\n") is None


def test_other_processes_are_what_is_busy_beyond_ours_and_steal_its_share():
    before, after = quiet.CpuTimes(10.0, 1.0, 100.0), quiet.CpuTimes(30.0, 3.0, 140.0)
    assert quiet.others_busy_cores(before, after, wall_s=10.0, ours_cpu_s=15.0) == pytest.approx(0.5)
    assert quiet.others_busy_cores(before, after, wall_s=10.0, ours_cpu_s=25.0) == 0.0  # never negative
    assert quiet.steal_fraction(before, after) == pytest.approx(2 / 40)


def test_a_busy_or_stolen_machine_is_a_warning_and_a_quiet_one_is_not():
    assert quiet.quiet_warnings(0.1, 0.01) == []
    busy = quiet.quiet_warnings(0.8, 0.2)
    assert "0.80 cores busy" in busy[0] and "--wait-quiet" in busy[0] and "stole 20%" in busy[1]


def test_wait_quiet_waits_for_a_quiet_window_and_gives_up_in_time(monkeypatch):
    busy = iter([0.0, 1.0, 1.0, 2.0, 2.0, 2.05])  # busy seconds at each reading: 1 core, then 0, then 0.05
    monkeypatch.setattr(quiet, "machine_cpu", lambda: quiet.CpuTimes(next(busy), 0.0, 0.0))
    monkeypatch.setattr(quiet, "_cpu_of", lambda pids: 0.0)
    monkeypatch.setattr(quiet.time, "sleep", lambda s: None)
    said = []
    assert quiet.wait_quiet(60.0, say=said.append) == pytest.approx(0.05)
    assert len(said) == 1 and "waiting up to 60 s" in said[0]
    monkeypatch.setattr(quiet, "machine_cpu", lambda: quiet.CpuTimes(next(iter_busy), 0.0, 0.0))
    iter_busy = iter([0.0, 1.0])
    said.clear()
    assert quiet.wait_quiet(0.0, say=said.append) == pytest.approx(1.0)
    assert "measuring anyway" in said[0]
